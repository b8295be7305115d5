//! CTR-GCN's temporal modules, composed from ops with PyTorch's parameter names and
//! initialisation: the multi-scale temporal convolution (`MultiScale_TemporalConv`, no internal
//! residual) and `unit_tcn` as the strided blocks' residual (1×1 conv with stride (s, 1) + BN).
//!
//! The MS-TCN has four branches of width C_out/4, concatenated on the channel axis in order:
//! b0 and b1: 1×1 conv → BN → ReLU → temporal conv (k 5, dilation 1 / 2, stride s) → BN;
//! b2: 1×1 conv → BN → ReLU → max-pool (3, 1) with stride s → BN; b3: 1×1 conv with stride s → BN.
//! Each maps T frames to ⌊(T − 1)/s⌋ + 1.

use super::init::Init;
use super::layers::Conv;
use crate::engine::{Graph, TensorId};
use crate::ops::add::add_relu;
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::concat::{concat, split};
use crate::ops::relu::relu;
use crate::ops::reshape::reshape;
use crate::ops::temporal_conv::temporal_conv;
use crate::ops::temporal_max_pool::temporal_max_pool;
use crate::ops::temporal_subsample::conv1x1_strided;

/// Taps of the temporal convolutions.
pub const KERNEL: usize = 5;
/// Dilations of branches 0 and 1.
pub const DILATIONS: [usize; 2] = [1, 2];
/// Branches of an MS-TCN: one per dilation, the max-pool and the 1×1 one.
pub const BRANCHES: usize = DILATIONS.len() + 2;

/// How an MS-TCN's layers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcnInit {
    /// CTR-GCN's `weights_init`: convs kaiming_normal (fan_out) with zero bias, BNs
    /// γ ~ N(1, 0.02), β = 0.
    CtrGcn,
    /// PyTorch's defaults (InfoGCN never re-initialises its MS-TCN): convs and biases
    /// U(±1/√fan_in), BNs γ = 1, β = 0.
    PyTorch,
    /// HD-GCN's: CTR-GCN's `weights_init`, and each temporal conv without a bias of its own but
    /// with a separate zero `bias` (1, C, 1, 1) beside it (`{b}.3.bias`, before `{b}.3.conv`).
    HdGcn,
}

impl TcnInit {
    fn conv(self, g: &mut Graph, prefix: &str, shape: [usize; 4], init: &mut Init) -> Conv {
        match self {
            Self::CtrGcn | Self::HdGcn => Conv::kaiming(g, prefix, shape, init),
            Self::PyTorch => Conv::pytorch_default(g, prefix, shape, init),
        }
    }

    fn bn(self, g: &mut Graph, prefix: &str, channels: usize, init: &mut Init) -> BatchNorm {
        match self {
            Self::CtrGcn | Self::HdGcn => {
                BatchNorm::with_weight(g, prefix, init.normal(channels, 1.0, 0.02))
            }
            Self::PyTorch => BatchNorm::new(g, prefix, channels),
        }
    }
}

/// 1×1 conv → BN → ReLU, the entrance of branches 0 to 2.
#[derive(Debug, Clone, Copy)]
pub struct Entrance {
    pub conv: Conv,
    pub bn: BatchNorm,
}

impl Entrance {
    fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cb): (usize, usize),
        how: TcnInit,
        init: &mut Init,
    ) -> Self {
        Self {
            conv: how.conv(g, &format!("{prefix}.0"), [cb, cin, 1, 1], init),
            bn: how.bn(g, &format!("{prefix}.1"), cb, init),
        }
    }

    /// BN → ReLU of the entrance conv's output `h`.
    fn finish(&self, g: &mut Graph, h: TensorId, mode: Mode) -> TensorId {
        self.bn.apply_relu(g, h, mode)
    }
}

/// One MS-TCN branch; the doc of each variant gives its layers and their state-dict slots.
#[derive(Debug, Clone, Copy)]
pub enum Branch {
    /// Entrance → temporal conv (k 5, `dilation`, stride s) → BN (`.3.conv`, `.3.bn`).
    Temporal {
        entrance: Entrance,
        conv: Conv,
        dilation: usize,
        bn: BatchNorm,
    },
    /// Entrance → max-pool (3, 1) with stride s → BN (`.4`).
    Pool { entrance: Entrance, bn: BatchNorm },
    /// 1×1 conv with stride s (`.0`) → BN (`.1`).
    Pointwise { conv: Conv, bn: BatchNorm },
}

/// `MultiScale_TemporalConv(C_in, C_out, kernel_size=5, stride=s, dilations=[1, 2],
/// residual=False)`.
#[derive(Debug, Clone)]
pub struct MsTcn {
    pub branches: [Branch; BRANCHES],
    pub stride: usize,
    /// The 1×1 convs that read x at every frame, packed to run as one product: the entrances,
    /// and the pointwise branch's where it does not stride.
    pub shared: Conv,
}

impl MsTcn {
    /// Declares the parameters under `{prefix}.branches.{b}.…` in state-dict order, initialised
    /// from `init` as CTR-GCN does.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        channels: (usize, usize),
        stride: usize,
        init: &mut Init,
    ) -> Self {
        Self::new_with(g, prefix, channels, stride, TcnInit::CtrGcn, init)
    }

    /// As [`MsTcn::new`], initialised as `how` says.
    pub fn new_with(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        stride: usize,
        how: TcnInit,
        init: &mut Init,
    ) -> Self {
        assert!(
            cout % BRANCHES == 0,
            "MS-TCN output channels {cout} must split into {BRANCHES} branches"
        );
        let cb = cout / BRANCHES;
        let branch = |b: usize| format!("{prefix}.branches.{b}");
        let temporal = |g: &mut Graph, b: usize, init: &mut Init| {
            let entrance = Entrance::new(g, &branch(b), (cin, cb), how, init);
            let conv_prefix = format!("{}.3.conv", branch(b));
            let conv = if how == TcnInit::HdGcn {
                let bias = g.parameter(
                    &format!("{}.3.bias", branch(b)),
                    &[1, cb, 1, 1],
                    vec![0.0; cb],
                );
                let shape = [cb, cb, KERNEL, 1];
                let weight = init.kaiming_normal_fan_out(&shape);
                let weight = g.parameter(&format!("{conv_prefix}.weight"), &shape, weight);
                Conv { weight, bias }
            } else {
                how.conv(g, &conv_prefix, [cb, cb, KERNEL, 1], init)
            };
            Branch::Temporal {
                entrance,
                conv,
                dilation: DILATIONS[b],
                bn: how.bn(g, &format!("{}.3.bn", branch(b)), cb, init),
            }
        };
        let b0 = temporal(g, 0, init);
        let b1 = temporal(g, 1, init);
        let b2 = Branch::Pool {
            entrance: Entrance::new(g, &branch(2), (cin, cb), how, init),
            bn: how.bn(g, &format!("{}.4", branch(2)), cb, init),
        };
        let b3 = Branch::Pointwise {
            conv: how.conv(g, &format!("{}.0", branch(3)), [cb, cin, 1, 1], init),
            bn: how.bn(g, &format!("{}.1", branch(3)), cb, init),
        };
        let branches = [b0, b1, b2, b3];
        let shared: Vec<Conv> = branches
            .iter()
            .filter_map(|branch| match *branch {
                Branch::Temporal { entrance, .. } | Branch::Pool { entrance, .. } => {
                    Some(entrance.conv)
                }
                Branch::Pointwise { conv, .. } => (stride == 1).then_some(conv),
            })
            .collect();
        let shared = Conv::pack(g, &format!("{prefix}.branches.shared"), &shared);
        Self {
            branches,
            stride,
            shared,
        }
    }

    /// (B, C_in, T, V) → (B, C_out, ⌊(T − 1)/s⌋ + 1, V).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let s = self.stride;
        // Three entrances, and the pointwise conv where it does not stride, of equal widths.
        let parts = if s == 1 { BRANCHES } else { BRANCHES - 1 };
        let width = g.shape(self.shared.bias)[0] / parts;
        let stacked = self.shared.apply_1x1(g, x);
        let mut convolved = split(g, stacked, &vec![width; parts]).into_iter();
        let mut next = || convolved.next().expect("one output per shared conv");
        let outs: Vec<TensorId> = self
            .branches
            .iter()
            .map(|branch| match *branch {
                Branch::Temporal {
                    entrance,
                    conv,
                    dilation,
                    bn,
                } => {
                    let h = entrance.finish(g, next(), mode);
                    // HD-GCN's separate (1, C, 1, 1) bias is the same per-channel bias.
                    let channels = g.shape(conv.weight)[0];
                    let bias = reshape(g, conv.bias, &[channels]);
                    let h = temporal_conv(g, h, conv.weight, Some(bias), dilation, s);
                    bn.apply(g, h, mode)
                }
                Branch::Pool { entrance, bn } => {
                    let h = entrance.finish(g, next(), mode);
                    let h = temporal_max_pool(g, h, s);
                    bn.apply(g, h, mode)
                }
                Branch::Pointwise { conv, bn } => {
                    let h = match s {
                        1 => next(),
                        _ => conv1x1_strided(g, x, conv.weight, Some(conv.bias), s),
                    };
                    bn.apply(g, h, mode)
                }
            })
            .collect();
        concat(g, &outs)
    }
}

/// A block's residual: none, the block input where width and stride hold, else a strided 1×1
/// `unit_tcn` (`{block}.residual`).
pub enum BlockResidual {
    Zero,
    Identity,
    Unit(UnitTcn),
}

impl BlockResidual {
    /// The residual of a block (C_in → C_out, temporal stride `stride`) that has one if
    /// `present`; `unit` makes the strided unit where the shape changes (its initialisation is
    /// the backbone's).
    pub fn of(
        present: bool,
        (cin, cout): (usize, usize),
        stride: usize,
        unit: impl FnOnce() -> UnitTcn,
    ) -> Self {
        if !present {
            Self::Zero
        } else if cin == cout && stride == 1 {
            Self::Identity
        } else {
            Self::Unit(unit())
        }
    }

    /// ReLU of `y` plus the residual of the block input `x`: the end of a block.
    pub fn add_relu_to(&self, g: &mut Graph, y: TensorId, x: TensorId, mode: Mode) -> TensorId {
        match self {
            Self::Zero => relu(g, y),
            Self::Identity => add_relu(g, y, x),
            Self::Unit(unit) => {
                let r = unit.forward(g, x, mode);
                add_relu(g, y, r)
            }
        }
    }
}

/// `unit_tcn(C_in, C_out, kernel_size=k, stride=s)`: a k×1 conv with stride (s, 1) and padding
/// (k − 1)/2 (`{prefix}.conv`) and a BN (`{prefix}.bn`). With k = 1 it is the residual of blocks
/// whose TCN strides or widens; ST-GCN's TCN is k = 5, MS-AAGCN's k = 9.
#[derive(Debug, Clone, Copy)]
pub struct UnitTcn {
    pub conv: Conv,
    pub bn: BatchNorm,
    pub stride: usize,
}

impl UnitTcn {
    /// The conv is kaiming_normal (fan_out) with zero bias; the BN starts at γ = 1, β = 0.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        kernel: usize,
        stride: usize,
        init: &mut Init,
    ) -> Self {
        Self {
            conv: Conv::kaiming(g, &format!("{prefix}.conv"), [cout, cin, kernel, 1], init),
            bn: BatchNorm::new(g, &format!("{prefix}.bn"), cout),
            stride,
        }
    }

    /// (B, C_in, T, V) → (B, C_out, ⌊(T − 1)/s⌋ + 1, V).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let (w, b) = (self.conv.weight, Some(self.conv.bias));
        let h = if g.shape(w)[2] == 1 {
            conv1x1_strided(g, x, w, b, self.stride)
        } else {
            temporal_conv(g, x, w, b, 1, self.stride)
        };
        self.bn.apply(g, h, mode)
    }
}
