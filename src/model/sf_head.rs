//! SF-Head (reference-spec §2): the official `sf_head.py` module composed from ops, and its two
//! losses F-RL and F-CL (§3).
//!
//! The input y (B, C, T, V) is viewed as B·G items of C/G channels (item r = b·G + g, a pure
//! view) and cut into four chunks of q = C/(4G) channels:
//! - SSTE: f_t = X1 ⊙ σ(cweight·mean_{t,v}(X1) + cbias) and
//!   f_s = X3 ⊙ σ(sweight·GN(X3) + sbias), GN a GroupNorm with one channel per group;
//! - AC-FA: three gates (max and mean over one axis, a 7×7 2→1 convolution, BatchNorm(1),
//!   sigmoid) scale f_t over (k, v), f_s over (t, k) and f_c = X2 over (t, v); the refined
//!   feature is f_r = Σ softmax(w)_i · (x11, x21, x31, f_c)_i;
//! - output: [f_t, f_s, f_r, f_o = X4] per item, viewed back to (B, C, T, V), then a 2-group
//!   channel shuffle.
//!
//! Parameter keys and order are the official module's, below a prefix (`sf_heads.0`); `bn` is
//! declared (it is in the official state dict) but unused, as there.

use super::init::Init;
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::plane_pool::{PooledAxis, plane_pool};
use crate::ops::{
    add::add, channel_affine::channel_affine, concat::concat, concat::split,
    group_norm::group_norm, matmul::matmul, mul::mul, mul::scale, pair_stats::pair_stats,
    permute::permute, plane_conv::plane_conv, reduce::broadcast_mul, reduce::mean,
    reshape::reshape, sf_loss, sigmoid::sigmoid, softmax::softmax, weighted_sum::weighted_sum,
};

/// Channel groups G of the official code.
pub const DEFAULT_GROUPS: usize = 8;
/// Side of the AC-FA convolution kernel.
pub const GATE_KERNEL: usize = 7;
/// GroupNorm's epsilon (PyTorch's default).
const GN_EPS: f32 = 1e-5;

/// A block whose width SF-Head cannot split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "SF-Head on `{block}`: {channels} channels are not a multiple of 4·G = {} (G = {groups} groups of four equal chunks)",
    4 * groups
)]
pub struct ChannelError {
    pub block: String,
    pub channels: usize,
    pub groups: usize,
}

impl ChannelError {
    /// Refuses `channels` at `block` unless they split into `groups` groups of four equal chunks.
    pub fn check(block: &str, channels: usize, groups: usize) -> Result<(), Self> {
        if groups == 0 || !channels.is_multiple_of(4 * groups) {
            return Err(Self {
                block: block.to_string(),
                channels,
                groups,
            });
        }
        Ok(())
    }
}

/// One AC-FA gate: a 2→1 7×7 convolution without bias and a BatchNorm over its single channel.
#[derive(Debug, Clone, Copy)]
struct Gate {
    conv: TensorId,
    bn: BatchNorm,
    pooled: PooledAxis,
}

impl Gate {
    fn new(g: &mut Graph, prefix: &str, pooled: PooledAxis, init: &mut Init) -> Self {
        let shape = [1, 2, GATE_KERNEL, GATE_KERNEL];
        // PyTorch's default Conv2d init, kaiming_uniform(a = √5): U(±1/√fan_in).
        let bound = 1.0 / ((2 * GATE_KERNEL * GATE_KERNEL) as f32).sqrt();
        let values = init.uniform(shape.iter().product(), -bound, bound);
        let conv = g.parameter(&format!("{prefix}.conv.conv.weight"), &shape, values);
        let bn = BatchNorm::new(g, &format!("{prefix}.conv.bn"), 1);
        Self { conv, bn, pooled }
    }

    /// The scale s = σ(BN(conv(pool(p)))) of (R, 1, H, W) for the gate's plane orientation.
    fn scale(&self, g: &mut Graph, p: TensorId, mode: Mode) -> TensorId {
        let z = plane_pool(g, p, self.pooled);
        let conv = plane_conv(g, z, self.conv);
        self.bn.apply_sigmoid(g, conv, mode)
    }

    /// p ⊙ s, with s broadcast over the pooled axis of p (R, q, T, V).
    fn apply(&self, g: &mut Graph, p: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(p).to_vec();
        let [r, q, t, v] = shape[..] else {
            unreachable!("gate inputs are (R, q, T, V)")
        };
        let s = self.scale(g, p, mode);
        let (s, axis) = match self.pooled {
            PooledAxis::Time => (reshape(g, s, &[r, q, v]), 2),
            // The plane's rows are frames and its columns channels.
            PooledAxis::Joint => (permute(g, s, &[r, t, q], &[0, 2, 1], &[r, q, t]), 3),
            PooledAxis::Channel => (reshape(g, s, &[r, t, v]), 1),
        };
        broadcast_mul(g, p, s, &[axis])
    }
}

/// The features the losses compare, each (B·G, q, T, V) with item r = b·G + g.
#[derive(Debug, Clone, Copy)]
pub struct SfFeatures {
    /// SSTE's temporal feature.
    pub t: TensorId,
    /// SSTE's spatial feature.
    pub s: TensorId,
    /// The identity chunk X2.
    pub c: TensorId,
    /// The pass-through chunk X4.
    pub o: TensorId,
    /// AC-FA's refined feature.
    pub r: TensorId,
}

/// One SF-Head instance.
#[derive(Debug, Clone)]
pub struct SfHead {
    channels: usize,
    groups: usize,
    cweight: TensorId,
    cbias: TensorId,
    sweight: TensorId,
    sbias: TensorId,
    w: TensorId,
    gn_weight: TensorId,
    gn_bias: TensorId,
    gates: [Gate; 3],
}

impl SfHead {
    /// Declares the module's tensors below `prefix` in the official state-dict order, with
    /// PyTorch's default initial values (the official `init_weights` is never called). `block`
    /// names the attachment point in errors.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        block: &str,
        channels: usize,
        groups: usize,
        init: &mut Init,
    ) -> Result<Self, ChannelError> {
        ChannelError::check(block, channels, groups)?;
        let q = channels / (4 * groups);
        let mut param = |name: &str, shape: &[usize], value: f32| {
            let n = shape.iter().product();
            g.parameter(&format!("{prefix}.{name}"), shape, vec![value; n])
        };
        let cweight = param("cweight", &[1, q, 1, 1], 0.0);
        let cbias = param("cbias", &[1, q, 1, 1], 1.0);
        let sweight = param("sweight", &[1, q, 1, 1], 0.0);
        let sbias = param("sbias", &[1, q, 1, 1], 1.0);
        let w = param("w", &[4], 1.0);
        let gn_weight = param("gn.weight", &[q], 1.0);
        let gn_bias = param("gn.bias", &[q], 0.0);
        let gates = [
            Gate::new(g, &format!("{prefix}.cv"), PooledAxis::Time, init),
            Gate::new(g, &format!("{prefix}.tc"), PooledAxis::Joint, init),
            Gate::new(g, &format!("{prefix}.tv"), PooledAxis::Channel, init),
        ];
        // Declared for the state dict only: the official forward never uses it.
        BatchNorm::new(g, &format!("{prefix}.bn"), q);
        Ok(Self {
            channels,
            groups,
            cweight,
            cbias,
            sweight,
            sbias,
            w,
            gn_weight,
            gn_bias,
            gates,
        })
    }

    /// Channels per chunk.
    pub fn chunk_channels(&self) -> usize {
        self.channels / (4 * self.groups)
    }

    /// The module's output (same shape as `y`) and the features its losses compare.
    pub fn forward(&self, g: &mut Graph, y: TensorId, mode: Mode) -> (TensorId, SfFeatures) {
        let shape = g.shape(y).to_vec();
        let [b, c, t, v] = shape[..] else {
            panic!("SF-Head takes (B, C, T, V), got {shape:?}");
        };
        assert_eq!(
            c, self.channels,
            "SF-Head built for {} channels",
            self.channels
        );
        let (r, q) = (b * self.groups, self.chunk_channels());
        let grouped = reshape(g, y, &[r, 4 * q, t, v]);
        let chunks = split(g, grouped, &[q; 4]);
        let [x1, x2, x3, x4] = chunks[..] else {
            unreachable!("four chunks")
        };
        let per_channel = |g: &mut Graph, p: TensorId| reshape(g, p, &[q]);

        // SSTE, temporal: a per-channel gate from the mean over (t, v).
        let (cw, cb) = (per_channel(g, self.cweight), per_channel(g, self.cbias));
        let mu = mean(g, x1, &[2, 3]);
        let a = channel_affine(g, mu, cw, Some(cb));
        let a = sigmoid(g, a);
        let f_t = broadcast_mul(g, x1, a, &[2, 3]);

        // SSTE, spatial: GroupNorm (one channel per group, affine), then its own affine.
        let (sw, sb) = (per_channel(g, self.sweight), per_channel(g, self.sbias));
        let n = group_norm(g, x3, GN_EPS);
        let n = channel_affine(g, n, self.gn_weight, Some(self.gn_bias));
        let e = channel_affine(g, n, sw, Some(sb));
        let e = sigmoid(g, e);
        let f_s = mul(g, x3, e);

        // AC-FA: the three gates and their softmax-weighted fusion with the identity chunk.
        let [cv, tc, tv] = &self.gates;
        let x11 = cv.apply(g, f_t, mode);
        let x21 = tc.apply(g, f_s, mode);
        let x31 = tv.apply(g, x2, mode);
        let omega = softmax(g, self.w, 0);
        let f_r = weighted_sum(g, &[x11, x21, x31, x2], omega);

        // [f_t, f_s, f_r, f_o] per item, back to (B, C, T, V), then the 2-group shuffle:
        // out[b, i] = F[b, (i mod 2)·C/2 + ⌊i/2⌋].
        let f_a = concat(g, &[f_t, f_s, f_r, x4]);
        let out = permute(g, f_a, &[b, 2, c / 2, t * v], &[0, 2, 1, 3], &[b, c, t, v]);
        let features = SfFeatures {
            t: f_t,
            s: f_s,
            c: x2,
            o: x4,
            r: f_r,
        };
        (out, features)
    }
}

/// What one item of the losses is (reference-spec §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A training sample: its persons' chunks concatenated (the default).
    Sample,
    /// A training sample with its persons' chunks averaged, as FR-Head pools persons.
    MeanPersons,
    /// A (person, channel group) row of the module's own tensors.
    Rows,
}

/// How per-term or per-head losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Sum,
    Mean,
}

/// The loss constants and the choices the paper leaves open (docs/sf-head.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SfLossConfig {
    pub alpha: f32,
    pub tau: f32,
    pub margin: f32,
    pub gamma: f32,
    pub eps: f32,
    pub phi: sf_loss::PhiSign,
    pub item: Item,
    /// F-CL's four terms (F = c, s, t, o).
    pub fcl_terms: Combine,
    /// Over the attached heads.
    pub heads: Combine,
    pub lambda_con: f32,
    pub lambda_red: f32,
}

impl Default for SfLossConfig {
    fn default() -> Self {
        Self {
            alpha: sf_loss::ALPHA,
            tau: sf_loss::TAU,
            margin: sf_loss::MARGIN,
            gamma: sf_loss::GAMMA,
            eps: sf_loss::EPS,
            phi: sf_loss::PhiSign::Focal,
            item: Item::Sample,
            fcl_terms: Combine::Sum,
            heads: Combine::Mean,
            lambda_con: 0.2,
            lambda_red: 0.1,
        }
    }
}

/// The two losses of one head, each a one-value tensor.
#[derive(Debug, Clone, Copy)]
pub struct SfLosses {
    /// F-CL.
    pub con: TensorId,
    /// F-RL.
    pub red: TensorId,
}

impl SfLossConfig {
    /// A feature (B·G, q, T, V) as the (items, D) matrix the losses compare; B = samples·persons.
    fn items(&self, g: &mut Graph, f: TensorId, samples: usize, persons: usize) -> TensorId {
        let n = g.numel(f);
        match self.item {
            Item::Sample => reshape(g, f, &[samples, n / samples]),
            Item::MeanPersons => {
                let per_person = reshape(g, f, &[samples, persons, n / (samples * persons)]);
                mean(g, per_person, &[1])
            }
            Item::Rows => {
                let rows = g.shape(f)[0];
                reshape(g, f, &[rows, n / rows])
            }
        }
    }

    /// F-CL and F-RL of one head's features over a batch of `samples` × `persons`.
    pub fn losses(
        &self,
        g: &mut Graph,
        f: &SfFeatures,
        samples: usize,
        persons: usize,
    ) -> SfLosses {
        let mut items = |t| self.items(g, t, samples, persons);
        let (a, s, t, c, o) = (items(f.r), items(f.s), items(f.t), items(f.c), items(f.o));

        let gram = matmul(g, s, t, false, true);
        let [_, ss, tt] = pair_stats(g, s, t);
        let red = sf_loss::frl(g, gram, ss, tt, self.alpha, self.margin / self.tau);

        let term = sf_loss::FclConfig {
            margin: self.margin,
            gamma: self.gamma,
            alpha: self.alpha,
            eps: self.eps,
            phi: self.phi,
        };
        let mut per_item: Option<TensorId> = None;
        for other in [c, s, t, o] {
            let [ab, aa, bb] = pair_stats(g, a, other);
            let l = sf_loss::fcl_term(g, ab, aa, bb, term);
            per_item = Some(match per_item {
                None => l,
                Some(sum) => add(g, sum, l),
            });
        }
        let mut con = mean(g, per_item.expect("four terms"), &[0]);
        if self.fcl_terms == Combine::Mean {
            con = scale(g, con, 0.25);
        }
        SfLosses { con, red }
    }
}
