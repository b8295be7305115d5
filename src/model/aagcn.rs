//! MS-AAGCN as the SF-Head paper counts 2s-AGCN (3,797,088 parameters at NTU120): `model/aagcn.py`
//! of the 2s-AGCN repository with `adaptive=True, attention=True` (backbones spec §4). It shares
//! CTR-GCN's skeleton — `data_bn`, ten blocks of the same widths and strides, the residuals, the
//! head — and differs in the two units of a block:
//!
//! - `gcn1`: per subset i, θ = conv_a(x) and φ = conv_b(x) (1×1, C_in → C_out/4) give a
//!   per-sample V×V similarity S = tanh(θᵀφ / K) contracted over K = (C_out/4)·T; the adjacency
//!   PA_i + α·S (PA learnable from the skeleton's three subsets, α one scalar shared by the
//!   subsets, starting at 0) aggregates x over joints, then conv_d_i projects it. The subsets are
//!   summed, normalised by a BN with γ = 1e-6, added to `down` and passed through ReLU; then the
//!   spatial, temporal and channel attentions each rescale y ← y·g + y with a sigmoid gate g
//!   from a 1-D conv over the joints (kernel V, or V − 1 for even V), a 1-D conv over the frames
//!   (kernel 9) and a C → C/2 → C squeeze-excite;
//! - `tcn1`: one 9×1 temporal convolution (stride s) and a BN, without ReLU.
//!
//! SF-Head attaches after the attentions, before `tcn1`.
//!
//! Plain 2s-AGCN (`model/agcn.py`, 3,484,930 parameters at NTU120) has the same `tcn1` and a
//! `gcn1` without attention whose adjacency is A + PA + softmax over the rows of θᵀφ / K, with
//! A the skeleton's fixed subsets and PA learnable from 1e-6 ([`AgcnUnit`]).

use crate::engine::{Graph, TensorId};
use crate::model::init::Init;
use crate::model::layers::Conv;
use crate::model::unit_gcn::{Down, normalise_add_down};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::bmm::bmm;
use crate::ops::mul::scale;
use crate::ops::reduce::{broadcast_mul, mean};
use crate::ops::refine::refine;
use crate::ops::reshape::reshape;
use crate::ops::sigmoid::sigmoid;
use crate::ops::softmax::softmax;
use crate::ops::tanh::tanh;
use crate::ops::temporal_conv::temporal_conv;
use crate::ops::{add::add, linear::linear, relu::relu};

/// Adjacency subsets of a unit.
pub const SUBSETS: usize = 3;
/// The embedding width of θ and φ is C_out / this.
pub const EMBEDDING_DIVISOR: usize = 4;
/// The temporal kernel of `tcn1` and of the temporal attention.
pub const TEMPORAL_KERNEL: usize = 9;
/// The channel attention squeezes C to C / this.
pub const SQUEEZE: usize = 2;

/// The joint-attention kernel: V for odd V, V − 1 for even (an odd kernel keeps the length).
pub fn joint_kernel(joints: usize) -> usize {
    if joints.is_multiple_of(2) {
        joints - 1
    } else {
        joints
    }
}

/// A Linear layer's weight (C_out, C_in) and bias.
#[derive(Debug, Clone, Copy)]
pub struct Fc {
    pub weight: TensorId,
    pub bias: TensorId,
}

/// `unit_gcn` of `aagcn.py` with the adaptive graph and the STC attention.
#[derive(Debug, Clone)]
pub struct AaGcnUnit {
    /// (3, V, V), initialised to the skeleton's spatial subsets.
    pub pa: TensorId,
    /// (1), initialised to 0.
    pub alpha: TensorId,
    pub conv_d: Vec<Conv>,
    pub conv_a: Vec<Conv>,
    pub conv_b: Vec<Conv>,
    /// Temporal attention: Conv1d(C_out, 1, 9), weight (1, C_out, 9).
    pub conv_ta: Conv,
    /// Spatial attention: Conv1d(C_out, 1, k_V), weight (1, C_out, k_V).
    pub conv_sa: Conv,
    pub fc1c: Fc,
    pub fc2c: Fc,
    pub down: Option<Down>,
    pub bn: BatchNorm,
}

impl AaGcnUnit {
    /// Declares `{prefix}.PA`, `alpha`, `conv_d.{i}`, `conv_a.{i}`, `conv_b.{i}`, `conv_ta`,
    /// `conv_sa`, `fc1c`, `fc2c`, `down.{0,1}` and `bn` in state-dict order. The 2-D convs are
    /// kaiming_normal (fan out) with zero bias, except `conv_d`, drawn from N(0, 2/(C_out·C_in·3));
    /// `conv_sa` is xavier_normal, `fc1c` kaiming_normal (fan in), `conv_ta` and `fc2c` zero (so
    /// those gates start at ½), every bias zero; BNs start at γ = 1 except the output's 1e-6.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        adjacency: &[f32],
        joints: usize,
        init: &mut Init,
    ) -> Self {
        assert_eq!(
            adjacency.len(),
            SUBSETS * joints * joints,
            "{prefix}: the adjacency must be (3, {joints}, {joints})"
        );
        let pa = g.parameter(
            &format!("{prefix}.PA"),
            &[SUBSETS, joints, joints],
            adjacency.to_vec(),
        );
        let alpha = g.parameter(&format!("{prefix}.alpha"), &[1], vec![0.0]);
        let zeros = |n: usize| vec![0.0; n];
        let inter = cout / EMBEDDING_DIVISOR;
        let conv_d = subset_convs(g, prefix, "conv_d", (cin, cout), init);
        let conv_a = subset_convs(g, prefix, "conv_a", (cin, inter), init);
        let conv_b = subset_convs(g, prefix, "conv_b", (cin, inter), init);
        let conv_ta = Conv {
            weight: g.parameter(
                &format!("{prefix}.conv_ta.weight"),
                &[1, cout, TEMPORAL_KERNEL],
                zeros(cout * TEMPORAL_KERNEL),
            ),
            bias: g.parameter(&format!("{prefix}.conv_ta.bias"), &[1], zeros(1)),
        };
        let k_v = joint_kernel(joints);
        // xavier_normal of a (1, C, k) Conv1d weight: fan_in = C·k, fan_out = k.
        let xavier_std = (2.0 / ((cout + 1) * k_v) as f32).sqrt();
        let conv_sa = Conv {
            weight: g.parameter(
                &format!("{prefix}.conv_sa.weight"),
                &[1, cout, k_v],
                init.normal(cout * k_v, 0.0, xavier_std),
            ),
            bias: g.parameter(&format!("{prefix}.conv_sa.bias"), &[1], zeros(1)),
        };
        let squeezed = cout / SQUEEZE;
        let fc1c = Fc {
            weight: g.parameter(
                &format!("{prefix}.fc1c.weight"),
                &[squeezed, cout],
                init.normal(squeezed * cout, 0.0, (2.0 / cout as f32).sqrt()),
            ),
            bias: g.parameter(&format!("{prefix}.fc1c.bias"), &[squeezed], zeros(squeezed)),
        };
        let fc2c = Fc {
            weight: g.parameter(
                &format!("{prefix}.fc2c.weight"),
                &[cout, squeezed],
                zeros(cout * squeezed),
            ),
            bias: g.parameter(&format!("{prefix}.fc2c.bias"), &[cout], zeros(cout)),
        };
        let (down, bn) = down_and_bn(g, prefix, (cin, cout), init);
        Self {
            pa,
            alpha,
            conv_d,
            conv_a,
            conv_b,
            conv_ta,
            conv_sa,
            fc1c,
            fc2c,
            down,
            bn,
        }
    }

    /// y (B, C_out, T, V) of x (B, C_in, T, V).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [b, _, _, v] = shape[..] else {
            panic!("MS-AAGCN's unit takes (B, C, T, V), got {shape:?}");
        };
        let mut sum = None;
        for i in 0..SUBSETS {
            let s = similarity(g, x, self.conv_a[i], self.conv_b[i]);
            let s = tanh(g, s);
            let s = reshape(g, s, &[b, 1, v, v]);
            let a = refine(g, s, self.alpha, self.pa, i);
            let z = aggregate_project(g, x, a, self.conv_d[i]);
            sum = Some(match sum {
                Some(s) => add(g, s, z),
                None => z,
            });
        }
        let y = normalise_add_down(
            g,
            x,
            sum.expect("three subsets"),
            &self.bn,
            self.down.as_ref(),
            mode,
        );
        let y = self.spatial_attention(g, y);
        let y = self.temporal_attention(g, y);
        self.channel_attention(g, y)
    }

    /// y·σ(conv_sa(mean_T y)) + y, the gate broadcast over channels and frames.
    fn spatial_attention(&self, g: &mut Graph, y: TensorId) -> TensorId {
        line_attention(g, y, self.conv_sa, 3)
    }

    /// y·σ(conv_ta(mean_V y)) + y, the gate broadcast over channels and joints.
    fn temporal_attention(&self, g: &mut Graph, y: TensorId) -> TensorId {
        line_attention(g, y, self.conv_ta, 2)
    }

    /// y·σ(fc2c(relu(fc1c(mean_{T,V} y)))) + y, the gate broadcast over frames and joints.
    fn channel_attention(&self, g: &mut Graph, y: TensorId) -> TensorId {
        let pooled = mean(g, y, &[2, 3]);
        let h = linear(g, pooled, self.fc1c.weight, Some(self.fc1c.bias));
        let h = relu(g, h);
        let h = linear(g, h, self.fc2c.weight, Some(self.fc2c.bias));
        let gate = sigmoid(g, h);
        rescale(g, y, gate, &[2, 3])
    }
}

/// `unit_gcn` of `agcn.py`: the adjacency A + PA + softmax over the rows of θᵀφ / K, no
/// attention.
#[derive(Debug, Clone)]
pub struct AgcnUnit {
    /// (3, V, V): the skeleton's fixed spatial subsets.
    pub fixed: TensorId,
    /// (3, V, V), learnable, initialised to 1e-6.
    pub pa: TensorId,
    pub conv_a: Vec<Conv>,
    pub conv_b: Vec<Conv>,
    pub conv_d: Vec<Conv>,
    pub down: Option<Down>,
    pub bn: BatchNorm,
}

impl AgcnUnit {
    /// Declares `{prefix}.PA`, `conv_a.{i}`, `conv_b.{i}`, `conv_d.{i}`, `down.{0,1}` and `bn`
    /// in state-dict order, initialised as [`AaGcnUnit::new`] does; the fixed subsets are a
    /// constant outside the state dict, as in the official code.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        adjacency: &[f32],
        joints: usize,
        init: &mut Init,
    ) -> Self {
        let shape = [SUBSETS, joints, joints];
        assert_eq!(
            adjacency.len(),
            SUBSETS * joints * joints,
            "{prefix}: the adjacency must be (3, {joints}, {joints})"
        );
        let fixed = g.constant(&format!("{prefix}.A"), &shape, adjacency.to_vec());
        let pa = g.parameter(&format!("{prefix}.PA"), &shape, vec![1e-6; adjacency.len()]);
        let inter = cout / EMBEDDING_DIVISOR;
        let conv_a = subset_convs(g, prefix, "conv_a", (cin, inter), init);
        let conv_b = subset_convs(g, prefix, "conv_b", (cin, inter), init);
        let conv_d = subset_convs(g, prefix, "conv_d", (cin, cout), init);
        let (down, bn) = down_and_bn(g, prefix, (cin, cout), init);
        Self {
            fixed,
            pa,
            conv_a,
            conv_b,
            conv_d,
            down,
            bn,
        }
    }

    /// y (B, C_out, T, V) of x (B, C_in, T, V).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [b, _, _, v] = shape[..] else {
            panic!("2s-AGCN's unit takes (B, C, T, V), got {shape:?}");
        };
        let adjacency = add(g, self.fixed, self.pa);
        // `refine` with a weight of exactly 1 adds the subset to each sample's similarity.
        let one = g.constant("agcn.one", &[1], vec![1.0]);
        let mut sum = None;
        for i in 0..SUBSETS {
            let s = similarity(g, x, self.conv_a[i], self.conv_b[i]);
            // Softmax over the rows u of S[b, u, w]: each column sums to 1.
            let s = softmax(g, s, 1);
            let s = reshape(g, s, &[b, 1, v, v]);
            let a = refine(g, s, one, adjacency, i);
            let z = aggregate_project(g, x, a, self.conv_d[i]);
            sum = Some(match sum {
                Some(s) => add(g, s, z),
                None => z,
            });
        }
        normalise_add_down(
            g,
            x,
            sum.expect("three subsets"),
            &self.bn,
            self.down.as_ref(),
            mode,
        )
    }
}

/// `{prefix}.down.{0,1}` (a 1×1 conv + BN where the width changes) and `{prefix}.bn` (γ = 1e-6).
fn down_and_bn(
    g: &mut Graph,
    prefix: &str,
    (cin, cout): (usize, usize),
    init: &mut Init,
) -> (Option<Down>, BatchNorm) {
    let down = Down::new(g, prefix, (cin, cout), init);
    let bn = BatchNorm::with_weight(g, &format!("{prefix}.bn"), vec![1e-6; cout]);
    (down, bn)
}

/// θᵀφ / K of x (B, C_in, T, V): S[b, u, w] = Σ_k θ[b, k, u]·φ[b, k, w] / K with θ, φ the
/// embeddings read as (B, K, V), K = inter·T; the result is (B, V, V).
fn similarity(g: &mut Graph, x: TensorId, conv_a: Conv, conv_b: Conv) -> TensorId {
    let (b, v) = (g.shape(x)[0], g.shape(x)[3]);
    let theta = conv_a.apply_1x1(g, x);
    let phi = conv_b.apply_1x1(g, x);
    let k = g.numel(theta) / (b * v);
    let theta = reshape(g, theta, &[b, k, v]);
    let phi = reshape(g, phi, &[b, k, v]);
    let s = bmm(g, theta, phi, true, false);
    scale(g, s, 1.0 / k as f32)
}

/// conv_d of x (B, C_in, T, V) aggregated by the per-sample adjacency `a` (B, 1, V, V):
/// z[b, (c, t), w] = Σ_u x[b, (c, t), u]·A[b, u, w], then the 1×1 projection.
fn aggregate_project(g: &mut Graph, x: TensorId, a: TensorId, conv_d: Conv) -> TensorId {
    let shape = g.shape(x).to_vec();
    let (b, c, t, v) = (shape[0], shape[1], shape[2], shape[3]);
    let rows = reshape(g, x, &[b, c * t, v]);
    let a = reshape(g, a, &[b, v, v]);
    let z = bmm(g, rows, a, false, false);
    let z = reshape(g, z, &[b, c, t, v]);
    conv_d.apply_1x1(g, z)
}

/// Three 1×1 convs `{prefix}.{name}.{i}` C_in → width, kaiming_normal (fan out), zero bias;
/// `conv_d` instead from N(0, 2/(C_out·C_in·3)) as the official `conv_branch_init`.
fn subset_convs(
    g: &mut Graph,
    prefix: &str,
    name: &str,
    (cin, width): (usize, usize),
    init: &mut Init,
) -> Vec<Conv> {
    (0..SUBSETS)
        .map(|i| {
            let key = format!("{prefix}.{name}.{i}");
            if name == "conv_d" {
                Conv::branch(g, &key, [width, cin], SUBSETS, init)
            } else {
                Conv::kaiming(g, &key, [width, cin, 1, 1], init)
            }
        })
        .collect()
}

/// y·σ(conv(mean of y over the other of T and V)) + y for the gate along `axis` (2: T, 3: V) of
/// y (B, C, T, V), broadcast over channels and the pooled axis.
fn line_attention(g: &mut Graph, y: TensorId, conv: Conv, axis: usize) -> TensorId {
    let shape = g.shape(y).to_vec();
    let (b, c, l) = (shape[0], shape[1], shape[axis]);
    let other = 5 - axis;
    let pooled = mean(g, y, &[other]);
    let pooled = reshape(g, pooled, &[b, c, l, 1]);
    let gate = line_gate(g, pooled, conv);
    let gate = reshape(g, gate, &[b, l]);
    rescale(g, y, gate, &[1, other])
}

/// σ of a Conv1d(C, 1, k, padding (k − 1)/2) along the lines of `pooled` (B, C, L, 1), run
/// as the k×1 temporal convolution over L; the result is (B, 1, L, 1).
fn line_gate(g: &mut Graph, pooled: TensorId, conv: Conv) -> TensorId {
    let ws = g.shape(conv.weight).to_vec();
    let w = reshape(g, conv.weight, &[ws[0], ws[1], ws[2], 1]);
    let h = temporal_conv(g, pooled, w, Some(conv.bias), 1, 1);
    sigmoid(g, h)
}

/// `y·gate + y`, as the official code writes it, the gate broadcast over the `broadcast` axes.
fn rescale(g: &mut Graph, y: TensorId, gate: TensorId, broadcast: &[usize]) -> TensorId {
    let gated = broadcast_mul(g, y, gate, broadcast);
    add(g, gated, y)
}
