//! InfoGCN (backbones spec §5, the official `model/infogcn.py`) as one graph: a per-joint
//! embedding with a learnable positional term, `data_bn` over (M·V·64) channels, nine blocks of
//! self-attention graph convolution (SA-GC) → MS-TCN with a residual, and a variational
//! information-bottleneck head: pooled features → ReLU(fc) → (μ, log σ²) → z → decoder.
//!
//! In training z = μ + ε·min(exp(r·log σ²), 100) with ε ~ N(0, 1) drawn by the training step
//! (a noise input), and the model adds InfoGCN's two latent losses: the mean squared distance of
//! each class's mean z to a fixed orthogonal class prior (`mmd`, weight 0.1) and the L2 norm of
//! the batch mean of z (`l2_z_mean`, 1e-4); the classification loss is label-smoothed (0.1). In
//! evaluation z = μ.
//!
//! The official model also applies its k-th mode input transform x ← (I − Aᵏ)·x; here the
//! feeder does (`stream = "k1"` …, `src/data/feed/streams.rs`), so the model takes the
//! transformed joints. z_prior, a plain tensor officially (not in the state dict), is a stored
//! buffer `z_prior` here so that a checkpoint holds everything its losses read.
//!
//! With SF-Head, a head reads the SA-GC output of each chosen block, as on CTR-GCN.

use super::ctrgcn::CtrGcnConfig;
use super::init::Init;
use super::layers::{Conv, Dense, JointEmbedding, identity_stack, pool_persons};
use super::ms_tcn::{BlockResidual, MsTcn, TcnInit, UnitTcn};
use super::sf_attach::AttachedHeads;
use super::sf_head::SfFeatures;
use super::unit_gcn::{Down, normalise_add_down};
use super::{LossTerm, ModelOutput};
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::bmm::bmm;
use crate::ops::class_mean_mse::class_mean_mse;
use crate::ops::concat::{concat, split};
use crate::ops::conv1x1::conv1x1;
use crate::ops::l2_norm::l2_norm;
use crate::ops::layer_norm::layer_norm;
use crate::ops::mul::{mul, scale};
use crate::ops::reduce::{expand, mean};
use crate::ops::reparameterize::reparameterize;
use crate::ops::reshape::reshape;
use crate::ops::softmax::softmax;
use crate::ops::{add::add, permute::permute, relu::relu};

/// (C_in, C_out, temporal stride) of blocks l1…l9.
pub const BLOCKS: [(usize, usize, usize); 9] = [
    (64, 64, 1),
    (64, 64, 1),
    (64, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 256, 1),
];

/// Width of the joint embedding, the first block's input.
pub const EMBEDDING: usize = 64;
/// Width of the head and of z.
pub const LATENT: usize = 256;
/// Attention heads of every SA-GC unit.
pub const HEADS: usize = 3;
/// `noise_ratio`: the scale of log σ² in σ = exp(r·log σ²).
pub const NOISE_RATIO: f32 = 0.5;
/// The clamp of σ.
pub const MAX_STD: f32 = 100.0;
/// Label smoothing of the classification loss.
pub const SMOOTHING: f32 = 0.1;
/// `lambda_2` and `lambda_1`: the weights of the class-prior loss and of ‖mean z‖.
pub const MMD_WEIGHT: f32 = 0.1;
pub const Z_MEAN_WEIGHT: f32 = 1e-4;
/// The stored name of the class prior.
pub const Z_PRIOR: &str = "z_prior";
/// `z_prior_gain`: the gain of the orthogonal class prior.
pub const PRIOR_GAIN: f32 = 3.0;

/// `SA_GC`: per-frame multi-head self-attention over the joints, times a learnable shared
/// topology, aggregates the input once per head; a 1×1 conv per head, summed, then BN
/// (γ = 1e-6), the down path and ReLU.
struct SaGc {
    shared_topology: TensorId,
    /// `conv_d.{h}`, one per head.
    conv_d: Vec<Conv>,
    down: Option<Down>,
    bn: BatchNorm,
    to_qk: Dense,
    ln_weight: TensorId,
    ln_bias: TensorId,
    /// d: the width of a query or key per head, C_in/8.
    hidden: usize,
}

impl SaGc {
    fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        joints: usize,
        init: &mut Init,
    ) -> Self {
        let v = joints;
        let shared_topology = g.parameter(
            &format!("{prefix}.shared_topology"),
            &[HEADS, v, v],
            identity_stack(HEADS, v),
        );
        let conv_d = (0..HEADS)
            .map(|h| Conv::branch(g, &format!("{prefix}.conv_d.{h}"), [cout, cin], HEADS, init))
            .collect();
        let down = Down::new(g, prefix, (cin, cout), init);
        let bn = BatchNorm::with_weight(g, &format!("{prefix}.bn"), vec![1e-6; cout]);
        let hidden = cin / 8;
        let qk = 2 * HEADS * hidden;
        let to_qk_weight = init.normal(qk * cin, 0.0, 1.0);
        let to_qk = Dense::new(
            g,
            &format!("{prefix}.attn.to_qk"),
            [qk, cin],
            to_qk_weight,
            init,
        );
        let ln_weight = g.parameter(&format!("{prefix}.attn.ln.weight"), &[cin], vec![1.0; cin]);
        let ln_bias = g.parameter(&format!("{prefix}.attn.ln.bias"), &[cin], vec![0.0; cin]);
        Self {
            shared_topology,
            conv_d,
            down,
            bn,
            to_qk,
            ln_weight,
            ln_bias,
            hidden,
        }
    }

    /// (B, C_in, T, V) → (B, C_out, T, V).
    fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [b, c, t, v] = shape[..] else {
            panic!("SA-GC takes (B, C, T, V), got {shape:?}");
        };
        let (h, d) = (HEADS, self.hidden);
        // Rows (b, t, v) of C features: the LayerNorm's rows and the aggregation's input.
        let rows = permute(g, x, &shape, &[0, 2, 3, 1], &[b * t * v, c]);
        let normed = layer_norm(g, rows, self.ln_weight, self.ln_bias);
        let qk = self.to_qk.apply(g, normed);
        // (b, t, v, [q|k], h, d) → ([q|k], b·t·h, v, d), cut into q and k.
        let qk = permute(
            g,
            qk,
            &[b, t, v, 2, h, d],
            &[3, 0, 1, 4, 2, 5],
            &[1, 2 * b * t * h * v * d],
        );
        let half = b * t * h * v * d;
        let parts = split(g, qk, &[half, half]);
        let q = reshape(g, parts[0], &[b * t * h, v, d]);
        let k = reshape(g, parts[1], &[b * t * h, v, d]);
        let dots = bmm(g, q, k, false, true);
        let dots = scale(g, dots, 1.0 / (d as f32).sqrt());
        let attention = softmax(g, dots, 2);
        let attention = reshape(g, attention, &[b * t, h, v, v]);
        let topology = expand(g, self.shared_topology, &[b * t, h, v, v], &[0], 1.0);
        let a = mul(g, attention, topology);
        // Every head's matrix times the frame's joints at once: (b·t, h·v, v)·(b·t, v, c).
        let a = reshape(g, a, &[b * t, h * v, v]);
        let features = reshape(g, rows, &[b * t, v, c]);
        let z = bmm(g, a, features, false, false);
        // (b, t, h, v, c) → (b, h·c, t, v): the heads' conv_d become one conv over h·C_in.
        let z = permute(g, z, &[b, t, h, v, c], &[0, 2, 4, 1, 3], &[b, h * c, t, v]);
        let weights: Vec<TensorId> = self.conv_d.iter().map(|conv| conv.weight).collect();
        let weight = concat(g, &weights);
        let bias = self.conv_d[1..]
            .iter()
            .fold(self.conv_d[0].bias, |sum, conv| add(g, sum, conv.bias));
        let out = conv1x1(g, z, weight, Some(bias));
        normalise_add_down(g, x, out, &self.bn, self.down.as_ref(), mode)
    }
}

struct Block {
    gcn: SaGc,
    tcn: MsTcn,
    residual: BlockResidual,
}

pub struct InfoGcn {
    config: CtrGcnConfig,
    embedding: JointEmbedding,
    blocks: Vec<Block>,
    fc: Dense,
    fc_mu: Dense,
    fc_logvar: Dense,
    decoder: Dense,
    z_prior: TensorId,
    sf_heads: AttachedHeads,
}

impl InfoGcn {
    /// Declares every parameter and buffer in the official state-dict order (then `z_prior`),
    /// initialised as InfoGCN does from `seed`.
    pub fn new(g: &mut Graph, config: CtrGcnConfig, seed: u64) -> Self {
        let mut init = Init::new(seed);
        let (v, m, k) = (config.joints(), config.persons, config.classes);
        let embedding = JointEmbedding::new(g, (v, m, EMBEDDING), &mut init);
        let blocks: Vec<Block> = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, stride))| {
                let prefix = format!("l{}", i + 1);
                let gcn = SaGc::new(g, &format!("{prefix}.agcn"), (cin, cout), v, &mut init);
                let tcn = MsTcn::new_with(
                    g,
                    &format!("{prefix}.tcn"),
                    (cout, cout),
                    stride,
                    TcnInit::PyTorch,
                    &mut init,
                );
                let residual = BlockResidual::of(true, (cin, cout), stride, || {
                    let name = format!("{prefix}.residual");
                    UnitTcn::new(g, &name, (cin, cout), 1, stride, &mut init)
                });
                Block { gcn, tcn, residual }
            })
            .collect();
        let fc = Dense::xavier_relu(g, "fc", [LATENT, LATENT], &mut init);
        let fc_mu = Dense::xavier_relu(g, "fc_mu", [LATENT, LATENT], &mut init);
        let fc_logvar = Dense::xavier_relu(g, "fc_logvar", [LATENT, LATENT], &mut init);
        let decoder_weight = init.normal(k * LATENT, 0.0, (2.0 / k as f32).sqrt());
        let decoder = Dense::new(g, "decoder", [k, LATENT], decoder_weight, &mut init);
        let z_prior = g.state(
            Z_PRIOR,
            &[k, LATENT],
            init.orthogonal(k, LATENT, PRIOR_GAIN),
        );
        let widths = BLOCKS.map(|b| b.1);
        let sf_heads = AttachedHeads::new(g, config.sf_head.as_ref(), &widths, &mut init);
        Self {
            config,
            embedding,
            blocks,
            fc,
            fc_mu,
            fc_logvar,
            decoder,
            z_prior,
            sf_heads,
        }
    }

    /// Logits of a batch `x` (N, 3, T, V, M) and, in training, the latent losses (which read
    /// `labels`) and SF-Head's, with the noise input of the latent sample.
    pub fn forward(
        &self,
        g: &mut Graph,
        x: TensorId,
        labels: Option<TensorId>,
        mode: Mode,
    ) -> ModelOutput {
        let shape = g.shape(x).to_vec();
        let [n, c, t, v, m] = self.config.input_dims(&shape);
        let joints = permute(g, x, &shape, &[0, 4, 2, 3, 1], &[n * m * t * v, c]);
        let mut h = self.embedding.forward(g, joints, [n, m, t, v], mode);
        let mut features: Vec<SfFeatures> = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let y = block.gcn.forward(g, h, mode);
            let y = self.sf_heads.apply(g, i, y, mode, &mut features);
            let y = block.tcn.forward(g, y, mode);
            // InfoGCN's MS-TCN ends in a ReLU of its own.
            let y = relu(g, y);
            h = block.residual.add_relu_to(g, y, h, mode);
        }
        let pooled = pool_persons(g, h, m);
        let hidden = self.fc.apply(g, pooled);
        let hidden = relu(g, hidden);
        let mu = self.fc_mu.apply(g, hidden);
        let mut output: ModelOutput = match mode {
            Mode::Train => {
                let labels = labels.expect("InfoGCN's training losses read the labels");
                let logvar = self.fc_logvar.apply(g, hidden);
                let eps = g.input("latent_noise", &[n, LATENT]);
                let z = reparameterize(g, mu, logvar, eps, NOISE_RATIO, MAX_STD);
                let mmd = class_mean_mse(g, z, labels, self.z_prior);
                let z_mean = mean(g, z, &[0]);
                let z_norm = l2_norm(g, z_mean);
                let mut out: ModelOutput = self.decoder.apply(g, z).into();
                out.features = Some(z);
                out.noise = vec![eps];
                out.losses = vec![
                    LossTerm {
                        name: "mmd",
                        value: mmd,
                        weight: MMD_WEIGHT,
                    },
                    LossTerm {
                        name: "l2_z_mean",
                        value: z_norm,
                        weight: Z_MEAN_WEIGHT,
                    },
                ];
                out
            }
            _ => {
                let mut out: ModelOutput = self.decoder.apply(g, mu).into();
                out.features = Some(mu);
                out
            }
        };
        output.smoothing = SMOOTHING;
        let sf_losses = self.sf_heads.losses(g, &features, n, m, mode);
        output.losses.extend(sf_losses);
        output
    }
}
