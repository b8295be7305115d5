//! ProtoGCN (backbones spec §8, the official `protogcn/models/gcns/protogcn.py` with its
//! `SimpleHead` and class-specific contrastive loss) as one graph: `data_bn` over the V·C
//! channels of each person (persons folded into the batch, so they share statistics), ten
//! blocks of unit_gcn → MS-TCN with a residual at widths 96, 96, 96, 96, 192 (s2), 192, 192,
//! 384 (s2), 384, 384, and the classifier on features pooled over frames, joints and persons.
//!
//! **unit_gcn** (K = 8 subsets of C_out/8 channels): per (sample, subset, channel) the adjacency
//! A_k + α₀·tanh(x1[v] − x2[w]) + β₀·softmax_v(Σ_c x1[c, v]·x2[c, w]) aggregates the `pre`
//! features (columns are outputs), x1 and x2 1×1 convs of the frame mean; then `post`, BN, the
//! down path and ReLU. A (8, V, V) is learnable with no skeleton prior: one N(0.04, 0.02²) draw
//! that every block starts from; only element 0 of α and β is used, as in the official code. The
//! unit also returns its learned graph (inter + intra, without A). Here the adjacency is built
//! transposed (rows are outputs), the layout `aggregate` takes, so no full-size transpose is
//! needed.
//!
//! **MS-TCN** (pyskl's `mstcn`): the joint mean appended as an extra joint, six branches of
//! C_out/6 channels (1×1 → BN → ReLU → 3×1 conv of dilation 1–4 without BN; 1×1 → BN → ReLU →
//! max-pool; a bare strided 1×1), concatenated; the extra joint's features times the per-joint
//! `add_coeff` are added to every joint, then BN → ReLU → 1×1 → BN. `add_coeff` has the official
//! default of 25 entries whatever V; the first V are used.
//!
//! **Training** adds the class-specific contrastive loss (`csc`, weight 0.2): the last block's
//! graph, averaged over persons, goes through the prototype reconstruction network (PRN:
//! softmax over 400 prototypes, the prototype memory, dropout 0.1 from a noise input, post
//! conv → BN → ReLU → channel mean) to (N, V·V); `cl_fc` projects it to 256 features, which are
//! compared by cosine / 0.125 with a class memory (256, K) and scored by cross-entropy. The
//! memory blends in the mean feature of each class's true positives (momentum 0.9) and is
//! overwritten with the blend at every training step. It is not in the official state dict (a
//! plain tensor there); here it is a stored buffer [`CLASS_MEMORY`], after every official
//! tensor, so that a checkpoint holds everything the loss reads. Evaluation runs neither the
//! PRN nor the loss and leaves the memory as it is.
//!
//! Parameter names are the official recognizer's state-dict keys (`backbone.…`, `cls_head.…`)
//! in its order, initialised as it is: PyTorch's defaults (the official `unit_tcn.init_weights`
//! is never called), α = β = 0, `add_coeff` = 0, `fc_cls` N(0, 0.01) with zero bias. SF-Head
//! heads read the unit_gcn output of their blocks, before the MS-TCN.

use super::ctrgcn::{CtrGcnConfig, IN_CHANNELS};
use super::init::Init;
use super::layers::{Conv, pool_persons};
use super::ms_tcn::{BlockResidual, UnitTcn};
use super::sf_attach::AttachedHeads;
use super::sf_head::SfFeatures;
use super::unit_gcn::{Down, normalise_add_down};
use super::{LossTerm, ModelOutput};
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::bmm::bmm;
use crate::ops::channel_affine::channel_affine;
use crate::ops::class_memory::{class_memory, true_positive_mask};
use crate::ops::concat::{concat, split};
use crate::ops::cross_entropy::cross_entropy;
use crate::ops::dropout::dropout;
use crate::ops::l2_normalize::l2_normalize;
use crate::ops::linear::linear;
use crate::ops::matmul::matmul;
use crate::ops::mul::scale;
use crate::ops::reduce::{expand, mean};
use crate::ops::reshape::reshape;
use crate::ops::softmax::softmax;
use crate::ops::tanh_diff::tanh_diff;
use crate::ops::temporal_conv::temporal_conv;
use crate::ops::temporal_max_pool::temporal_max_pool;
use crate::ops::temporal_subsample::conv1x1_strided;
use crate::ops::{add::add, aggregate::aggregate, permute::permute, relu::relu};

/// (C_in, C_out, temporal stride) of blocks `backbone.gcn.0` … `backbone.gcn.9`.
pub const BLOCKS: [(usize, usize, usize); 10] = [
    (3, 96, 1),
    (96, 96, 1),
    (96, 96, 1),
    (96, 96, 1),
    (96, 192, 2),
    (192, 192, 1),
    (192, 192, 1),
    (192, 384, 2),
    (384, 384, 1),
    (384, 384, 1),
];

/// Width of the last block, of the PRN and of the classifier's input.
pub const FEATURES: usize = 384;
/// Adjacency subsets of every unit_gcn (`num_filter`).
pub const SUBSETS: usize = 8;
/// Mean and spread of the random initial adjacency (`init_off`, `init_std`).
pub const ADJACENCY_MEAN: f32 = 0.04;
pub const ADJACENCY_STD: f32 = 0.02;
/// Entries of each MS-TCN's `add_coeff` (the official default `num_joints`).
pub const COEFF_JOINTS: usize = 25;
/// Temporal kernel and dilations of the four convolution branches of an MS-TCN.
pub const TCN_KERNEL: usize = 3;
pub const TCN_DILATIONS: [usize; 4] = [1, 2, 3, 4];
/// Branches of an MS-TCN: the dilated ones, the max-pool and the bare 1×1.
pub const TCN_BRANCHES: usize = TCN_DILATIONS.len() + 2;
/// Prototypes of the PRN (`num_prototype` of the configs).
pub const PROTOTYPES: usize = 400;
/// Dropout probability at the PRN's output.
pub const PRN_DROPOUT: f32 = 0.1;
/// Width of the contrastive features (`h_channel`).
pub const CSC_FEATURES: usize = 256;
/// Weight of the contrastive loss (`weight` of the head).
pub const CSC_WEIGHT: f32 = 0.2;
/// Temperature of the cosine scores (`tmp`).
pub const CSC_TEMPERATURE: f32 = 0.125;
/// Share of the old class memory in its update (`mom`).
pub const CSC_MOMENTUM: f32 = 0.9;
/// Added to the norms of the contrastive features and memory columns.
pub const CSC_EPS: f32 = 1e-12;
/// The stored name of the class memory (256, K), the official `cls_head.csc_loss.avg_f`.
pub const CLASS_MEMORY: &str = "cls_head.csc_loss.avg_f";

/// `x · s[0]` for a learnable `s` of more than one entry (the rest get no gradient): one
/// channel_affine over the whole of `x`.
fn times_first(g: &mut Graph, x: TensorId, s: TensorId) -> TensorId {
    let n = g.numel(s);
    let s = reshape(g, s, &[1, n]);
    let s0 = split(g, s, &[1, n - 1])[0];
    let s0 = reshape(g, s0, &[1]);
    let shape = g.shape(x).to_vec();
    let flat = reshape(g, x, &[1, 1, g.numel(x)]);
    let y = channel_affine(g, flat, s0, None);
    reshape(g, y, &shape)
}

/// The official `unit_gcn` with 8 random subsets.
struct UnitGcn {
    /// (8, V, V).
    a: TensorId,
    alpha: TensorId,
    beta: TensorId,
    pre: Conv,
    pre_bn: BatchNorm,
    post: Conv,
    conv1: Conv,
    conv2: Conv,
    down: Option<Down>,
    bn: BatchNorm,
}

impl UnitGcn {
    fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        (adjacency, v): (&[f32], usize),
        init: &mut Init,
    ) -> Self {
        assert!(
            cout % SUBSETS == 0,
            "unit_gcn width {cout} must split into {SUBSETS} subsets"
        );
        let a = g.parameter(&format!("{prefix}.A"), &[SUBSETS, v, v], adjacency.to_vec());
        let alpha = g.parameter(&format!("{prefix}.alpha"), &[SUBSETS], vec![0.0; SUBSETS]);
        let beta = g.parameter(&format!("{prefix}.beta"), &[SUBSETS], vec![0.0; SUBSETS]);
        let conv = |g: &mut Graph, key: &str, [o, i]: [usize; 2], init: &mut Init| {
            Conv::pytorch_default(g, &format!("{prefix}.{key}"), [o, i, 1, 1], init)
        };
        let pre = conv(g, "pre.0", [cout, cin], init);
        let pre_bn = BatchNorm::new(g, &format!("{prefix}.pre.1"), cout);
        let post = conv(g, "post", [cout, cout], init);
        let conv1 = conv(g, "conv1", [cout, cin], init);
        let conv2 = conv(g, "conv2", [cout, cin], init);
        let down = (cin != cout).then(|| Down {
            conv: conv(g, "down.0", [cout, cin], init),
            bn: BatchNorm::new(g, &format!("{prefix}.down.1"), cout),
        });
        let bn = BatchNorm::new(g, &format!("{prefix}.bn"), cout);
        Self {
            a,
            alpha,
            beta,
            pre,
            pre_bn,
            post,
            conv1,
            conv2,
            down,
            bn,
        }
    }

    /// (B, C_in, T, V) → the unit's output (B, C_out, T, V) and its graph (B, C_out, W, V),
    /// transposed: entry [w, v] is the official graph's [v, w].
    fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> (TensorId, TensorId) {
        let shape = g.shape(x).to_vec();
        let [b, _, _, v] = shape[..] else {
            panic!("unit_gcn takes (B, C, T, V), got {shape:?}");
        };
        let cout = g.shape(self.post.weight)[0];
        let (k, c) = (SUBSETS, cout / SUBSETS);
        let features = self.pre.apply_1x1(g, x);
        let features = self.pre_bn.apply_relu(g, features, mode);
        // The convs are linear, so pooling over T first gives their frame means.
        let pooled = mean(g, x, &[2]);
        let x1 = self.conv1.apply_1x1(g, pooled);
        let x2 = self.conv2.apply_1x1(g, pooled);
        // inter[w, v] = tanh(x1[v] − x2[w]) = tanh(−x2[w] − (−x1[v])).
        let minus_x1 = scale(g, x1, -1.0);
        let minus_x2 = scale(g, x2, -1.0);
        let inter = tanh_diff(g, minus_x2, minus_x1);
        let inter = times_first(g, inter, self.alpha);
        // intra[w, v] = softmax over v of Σ_c x1[c, v]·x2[c, w], per (sample, subset).
        let x1 = reshape(g, x1, &[b * k, c, v]);
        let x2 = reshape(g, x2, &[b * k, c, v]);
        let dots = bmm(g, x2, x1, true, false);
        let intra = softmax(g, dots, 2);
        let intra = times_first(g, intra, self.beta);
        let intra = reshape(g, intra, &[b, k, v, v]);
        let inter = reshape(g, inter, &[b, k, c, v, v]);
        let full = [b, k, c, v, v];
        let spread = expand(g, intra, &full, &[2], 1.0);
        let graph = add(g, inter, spread);
        let graph = reshape(g, graph, &[b, cout, v, v]);
        // The adjacency adds A, broadcast over samples and channels, to the graph.
        let a = permute(g, self.a, &[k, v, v], &[0, 2, 1], &[k, v, v]);
        let a = expand(g, a, &[b, k, v, v], &[0], 1.0);
        let base = add(g, intra, a);
        let base = expand(g, base, &full, &[2], 1.0);
        let adjacency = add(g, inter, base);
        let adjacency = reshape(g, adjacency, &[b, cout, v, v]);
        let z = aggregate(g, adjacency, features);
        let z = self.post.apply_1x1(g, z);
        let y = normalise_add_down(g, x, z, &self.bn, self.down.as_ref(), mode);
        (y, graph)
    }
}

/// What an MS-TCN branch does after its entrance.
#[derive(Debug, Clone, Copy)]
enum BranchKind {
    /// A 3×1 conv of this dilation with stride s, no BN (`.3.conv`).
    Temporal { conv: Conv, dilation: usize },
    /// A 3×1 max-pool with stride s.
    Pool,
}

/// One MS-TCN branch.
#[derive(Debug, Clone, Copy)]
enum Branch {
    /// 1×1 conv (`.0`) → BN (`.1`) → ReLU → the rest.
    Entered {
        conv: Conv,
        bn: BatchNorm,
        kind: BranchKind,
    },
    /// A bare 1×1 conv with stride s.
    Pointwise(Conv),
}

/// pyskl's `mstcn` with the joint mean as an extra joint.
struct MsTcn {
    add_coeff: TensorId,
    branches: Vec<Branch>,
    transform_bn: BatchNorm,
    transform: Conv,
    bn: BatchNorm,
    stride: usize,
}

impl MsTcn {
    fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        stride: usize,
        init: &mut Init,
    ) -> Self {
        let add_coeff = g.parameter(
            &format!("{prefix}.add_coeff"),
            &[COEFF_JOINTS],
            vec![0.0; COEFF_JOINTS],
        );
        let mid = cout / TCN_BRANCHES;
        let first = cout - mid * (TCN_BRANCHES - 1);
        let branches = (0..TCN_BRANCHES)
            .map(|i| {
                let width = if i == 0 { first } else { mid };
                let at = format!("{prefix}.branches.{i}");
                if i == TCN_BRANCHES - 1 {
                    return Branch::Pointwise(Conv::pytorch_default(
                        g,
                        &at,
                        [width, cin, 1, 1],
                        init,
                    ));
                }
                let conv = Conv::pytorch_default(g, &format!("{at}.0"), [width, cin, 1, 1], init);
                let bn = BatchNorm::new(g, &format!("{at}.1"), width);
                let kind = match TCN_DILATIONS.get(i) {
                    Some(&dilation) => BranchKind::Temporal {
                        conv: Conv::pytorch_default(
                            g,
                            &format!("{at}.3.conv"),
                            [width, width, TCN_KERNEL, 1],
                            init,
                        ),
                        dilation,
                    },
                    None => BranchKind::Pool,
                };
                Branch::Entered { conv, bn, kind }
            })
            .collect();
        let transform_bn = BatchNorm::new(g, &format!("{prefix}.transform.0"), cout);
        let transform = Conv::pytorch_default(
            g,
            &format!("{prefix}.transform.2"),
            [cout, cout, 1, 1],
            init,
        );
        let bn = BatchNorm::new(g, &format!("{prefix}.bn"), cout);
        Self {
            add_coeff,
            branches,
            transform_bn,
            transform,
            bn,
            stride,
        }
    }

    /// (B, C_in, T, V) → (B, C_out, ⌊(T − 1)/s⌋ + 1, V).
    fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [b, c, t, v] = shape[..] else {
            panic!("MS-TCN takes (B, C, T, V), got {shape:?}");
        };
        assert!(
            v <= COEFF_JOINTS,
            "ProtoGCN's MS-TCN has {COEFF_JOINTS} joint coefficients, not {v}"
        );
        // The joint mean as joint V: rows (b, c, t) of V + 1 joints.
        let rows = reshape(g, x, &[b * c * t, v]);
        let joint_mean = mean(g, x, &[3]);
        let joint_mean = reshape(g, joint_mean, &[b * c * t, 1]);
        let extended = concat(g, &[rows, joint_mean]);
        let extended = reshape(g, extended, &[b, c, t, v + 1]);
        let s = self.stride;
        let outs: Vec<TensorId> = self
            .branches
            .iter()
            .map(|branch| match *branch {
                Branch::Entered { conv, bn, kind } => {
                    let h = conv.apply_1x1(g, extended);
                    let h = bn.apply_relu(g, h, mode);
                    match kind {
                        BranchKind::Temporal { conv, dilation } => {
                            temporal_conv(g, h, conv.weight, Some(conv.bias), dilation, s)
                        }
                        BranchKind::Pool => temporal_max_pool(g, h, s),
                    }
                }
                Branch::Pointwise(conv) => {
                    conv1x1_strided(g, extended, conv.weight, Some(conv.bias), s)
                }
            })
            .collect();
        let out = concat(g, &outs);
        let os = g.shape(out).to_vec();
        let (cout, t_out) = (os[1], os[2]);
        // Every joint gets the extra joint's features times its coefficient.
        let rows = reshape(g, out, &[b * cout * t_out, v + 1]);
        let parts = split(g, rows, &[v, 1]);
        let coeff = reshape(g, self.add_coeff, &[1, COEFF_JOINTS]);
        let coeff = if v == COEFF_JOINTS {
            coeff
        } else {
            split(g, coeff, &[v, COEFF_JOINTS - v])[0]
        };
        let global = matmul(g, parts[1], coeff, false, false);
        let feat = add(g, parts[0], global);
        let feat = reshape(g, feat, &[b, cout, t_out, v]);
        let feat = self.transform_bn.apply(g, feat, mode);
        let feat = relu(g, feat);
        let feat = self.transform.apply_1x1(g, feat);
        self.bn.apply(g, feat, mode)
    }
}

struct Block {
    gcn: UnitGcn,
    tcn: MsTcn,
    residual: BlockResidual,
}

pub struct ProtoGcn {
    config: CtrGcnConfig,
    data_bn: BatchNorm,
    blocks: Vec<Block>,
    post: Conv,
    bn: BatchNorm,
    /// The PRN's `query_matrix` (400, 384) and `memory_matrix` (384, 400), both bias-free.
    query_matrix: TensorId,
    memory_matrix: TensorId,
    /// Weight and bias of `cl_fc` (256, V·V) and of `fc_cls` (K, 384).
    cl_fc: (TensorId, TensorId),
    fc: (TensorId, TensorId),
    class_memory: TensorId,
    sf_heads: AttachedHeads,
}

impl ProtoGcn {
    /// Declares every parameter and buffer in the official state-dict order (then
    /// [`CLASS_MEMORY`] and any SF-Head heads), initialised as ProtoGCN does from `seed`.
    pub fn new(g: &mut Graph, config: CtrGcnConfig, seed: u64) -> Self {
        let mut init = Init::new(seed);
        let (v, k) = (config.joints(), config.classes);
        // One draw of the random graph; every block starts from a copy.
        let adjacency = init.normal(SUBSETS * v * v, ADJACENCY_MEAN, ADJACENCY_STD);
        let data_bn = BatchNorm::new(g, "backbone.data_bn", IN_CHANNELS * v);
        let blocks = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, stride))| {
                let prefix = format!("backbone.gcn.{i}");
                let gcn = UnitGcn::new(
                    g,
                    &format!("{prefix}.gcn"),
                    (cin, cout),
                    (&adjacency, v),
                    &mut init,
                );
                let tcn = MsTcn::new(g, &format!("{prefix}.tcn"), (cout, cout), stride, &mut init);
                let residual = BlockResidual::of(i > 0, (cin, cout), stride, || {
                    let at = format!("{prefix}.residual");
                    UnitTcn {
                        conv: Conv::pytorch_default(
                            g,
                            &format!("{at}.conv"),
                            [cout, cin, 1, 1],
                            &mut init,
                        ),
                        bn: BatchNorm::new(g, &format!("{at}.bn"), cout),
                        stride,
                    }
                });
                Block { gcn, tcn, residual }
            })
            .collect();
        let post = Conv::pytorch_default(g, "backbone.post", [FEATURES, FEATURES, 1, 1], &mut init);
        let bn = BatchNorm::new(g, "backbone.bn", FEATURES);
        let query_matrix = linear_weight(
            g,
            "backbone.prn.query_matrix",
            [PROTOTYPES, FEATURES],
            &mut init,
        );
        let memory_matrix = linear_weight(
            g,
            "backbone.prn.memory_matrix",
            [FEATURES, PROTOTYPES],
            &mut init,
        );
        let cl_fc = {
            let w = linear_weight(
                g,
                "cls_head.csc_loss.cl_fc",
                [CSC_FEATURES, v * v],
                &mut init,
            );
            let bound = 1.0 / ((v * v) as f32).sqrt();
            let b = g.parameter(
                "cls_head.csc_loss.cl_fc.bias",
                &[CSC_FEATURES],
                init.uniform(CSC_FEATURES, -bound, bound),
            );
            (w, b)
        };
        let fc = (
            g.parameter(
                "cls_head.fc_cls.weight",
                &[k, FEATURES],
                init.normal(k * FEATURES, 0.0, 0.01),
            ),
            g.parameter("cls_head.fc_cls.bias", &[k], vec![0.0; k]),
        );
        let class_memory = g.state(
            CLASS_MEMORY,
            &[CSC_FEATURES, k],
            init.normal(CSC_FEATURES * k, 0.0, 1.0),
        );
        let widths = BLOCKS.map(|b| b.1);
        let sf_heads = AttachedHeads::new(g, config.sf_head.as_ref(), &widths, &mut init);
        Self {
            config,
            data_bn,
            blocks,
            post,
            bn,
            query_matrix,
            memory_matrix,
            cl_fc,
            fc,
            class_memory,
            sf_heads,
        }
    }

    /// Logits of a batch `x` (N, 3, T, V, M) and, in training, the contrastive loss (which
    /// reads `labels`) with the PRN's dropout noise, and SF-Head's losses.
    pub fn forward(
        &self,
        g: &mut Graph,
        x: TensorId,
        labels: Option<TensorId>,
        mode: Mode,
    ) -> ModelOutput {
        let shape = g.shape(x).to_vec();
        let [n, c, t, v, m] = self.config.input_dims(&shape);
        // data_bn 'VC': channel v·C + c of each person row, over (N·M, T).
        let h = permute(g, x, &shape, &[0, 4, 3, 1, 2], &[n * m, v * c, t]);
        let h = self.data_bn.apply(g, h, mode);
        let mut h = permute(g, h, &[n * m, v, c, t], &[0, 2, 3, 1], &[n * m, c, t, v]);
        let mut heads: Vec<SfFeatures> = Vec::new();
        let mut graph = None;
        for (i, block) in self.blocks.iter().enumerate() {
            let (y, block_graph) = block.gcn.forward(g, h, mode);
            graph = Some(block_graph);
            let y = self.sf_heads.apply(g, i, y, mode, &mut heads);
            let y = block.tcn.forward(g, y, mode);
            h = block.residual.add_relu_to(g, y, h, mode);
        }
        let pooled = pool_persons(g, h, m);
        let logits = linear(g, pooled, self.fc.0, Some(self.fc.1));
        let mut output: ModelOutput = logits.into();
        output.features = Some(pooled);
        if mode == Mode::Train {
            let labels = labels.expect("ProtoGCN's contrastive loss reads the labels");
            let graph = graph.expect("ProtoGCN has blocks");
            let (reconstructed, noise) = self.reconstruct(g, graph, (n, m));
            let csc = self.contrastive(g, reconstructed, logits, labels);
            output.noise = vec![noise];
            output.losses.push(LossTerm {
                name: "csc",
                value: csc,
                weight: CSC_WEIGHT,
            });
        }
        let sf_losses = self.sf_heads.losses(g, &heads, n, m, mode);
        output.losses.extend(sf_losses);
        output
    }

    /// The class-specific contrastive loss of the reconstructed graphs (N, V·V): `cl_fc`
    /// features f, the memory blended with this batch's true positives of `logits` (and
    /// overwritten with the blend), cosine scores of f against every class's memory column
    /// over the temperature, and their mean cross-entropy with `labels`. The logits reach the
    /// loss only through the mask, which has no gradient: the official `logit.detach()`.
    fn contrastive(
        &self,
        g: &mut Graph,
        reconstructed: TensorId,
        logits: TensorId,
        labels: TensorId,
    ) -> TensorId {
        let k = g.shape(logits)[1];
        let f = linear(g, reconstructed, self.cl_fc.0, Some(self.cl_fc.1));
        let mask = true_positive_mask(g, logits, labels);
        let memory = class_memory(g, f, mask, self.class_memory, CSC_MOMENTUM, Mode::Train);
        let f = l2_normalize(g, f, CSC_EPS);
        let memory = permute(g, memory, &[CSC_FEATURES, k], &[1, 0], &[k, CSC_FEATURES]);
        let memory = l2_normalize(g, memory, CSC_EPS);
        let scores = matmul(g, f, memory, false, true);
        let scores = scale(g, scores, 1.0 / CSC_TEMPERATURE);
        cross_entropy(g, scores, labels)
    }

    /// The PRN in training: the last block's graph (N·M, C, W, V) (transposed), averaged over
    /// persons, as rows of C features at the official [v, w] positions → softmax over the
    /// prototypes → the prototype memory → dropout → post conv → BN → ReLU → channel mean:
    /// (N, V·V), and the dropout's noise input.
    fn reconstruct(
        &self,
        g: &mut Graph,
        graph: TensorId,
        (n, m): (usize, usize),
    ) -> (TensorId, TensorId) {
        let gs = g.shape(graph).to_vec();
        let (c, v) = (gs[1], gs[3]);
        let graph = reshape(g, graph, &[n, m, c * v * v]);
        let graph = mean(g, graph, &[1]);
        let rows = permute(g, graph, &[n, c, v, v], &[0, 3, 2, 1], &[n * v * v, c]);
        let query = linear(g, rows, self.query_matrix, None);
        let query = softmax(g, query, 1);
        let z = linear(g, query, self.memory_matrix, None);
        let noise = g.input("prn_dropout_noise", &[n * v * v, c]);
        let z = dropout(g, z, noise, PRN_DROPOUT);
        let z = permute(g, z, &[n, v * v, c], &[0, 2, 1], &[n, c, v, v]);
        let z = self.post.apply_1x1(g, z);
        let z = self.bn.apply(g, z, Mode::Train);
        let z = relu(g, z);
        let reconstructed = mean(g, z, &[1]);
        (reshape(g, reconstructed, &[n, v * v]), noise)
    }
}

/// A bias-free Linear weight `{prefix}.weight` (out, in) with PyTorch's default U(±1/√in).
fn linear_weight(g: &mut Graph, prefix: &str, [out, cin]: [usize; 2], init: &mut Init) -> TensorId {
    let bound = 1.0 / (cin as f32).sqrt();
    g.parameter(
        &format!("{prefix}.weight"),
        &[out, cin],
        init.uniform(out * cin, -bound, bound),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Data;
    use crate::testing::{Harness, check, gradcheck, normwise_error, to_f64, uniform};

    /// The initial values of a declared tensor, as f64.
    fn values(g: &Graph, t: TensorId) -> Vec<f64> {
        match &g.tensor(t).init {
            Some(Data::F32(v)) => v.iter().map(|&x| f64::from(x)).collect(),
            other => panic!("{} has no f32 values: {other:?}", g.tensor(t).name),
        }
    }

    /// `w (O, I)·x + b` per (sample, position) of x (B, I, P).
    fn conv(
        x: &[f64],
        w: &[f64],
        b: &[f64],
        (batch, cin, points): (usize, usize, usize),
    ) -> Vec<f64> {
        let cout = b.len();
        let mut y = vec![0.0; batch * cout * points];
        for n in 0..batch {
            for o in 0..cout {
                for p in 0..points {
                    let s: f64 = (0..cin)
                        .map(|i| w[o * cin + i] * x[(n * cin + i) * points + p])
                        .sum();
                    y[(n * cout + o) * points + p] = s + b[o];
                }
            }
        }
        y
    }

    /// The official unit in f64, literally (convs, then the frame mean; adjacency [v, w]),
    /// evaluation-mode BNs at their initial statistics: (output, graph [v, w]).
    fn reference(
        g: &Graph,
        unit: &UnitGcn,
        x: &[f64],
        (a, alpha, beta): (&[f64], f64, f64),
        (b, cin, cout, t, v): (usize, usize, usize, usize, usize),
    ) -> (Vec<f64>, Vec<f64>) {
        let bn = 1.0 / (1.0f64 + 1e-5).sqrt();
        let p = t * v;
        let convolve = |c: &Conv, input: &[f64], cin: usize| {
            conv(input, &values(g, c.weight), &values(g, c.bias), (b, cin, p))
        };
        let pre: Vec<f64> = convolve(&unit.pre, x, cin)
            .iter()
            .map(|&h| (h * bn).max(0.0))
            .collect();
        let frame_mean = |h: Vec<f64>| -> Vec<f64> {
            (0..b * cout * v)
                .map(|i| (0..t).map(|f| h[(i / v * t + f) * v + i % v]).sum::<f64>() / t as f64)
                .collect()
        };
        let x1 = frame_mean(convolve(&unit.conv1, x, cin));
        let x2 = frame_mean(convolve(&unit.conv2, x, cin));
        let (k, c) = (SUBSETS, cout / SUBSETS);
        let mut graph = vec![0.0; b * cout * v * v];
        let mut adjacency = vec![0.0; b * cout * v * v];
        for n in 0..b {
            for s in 0..k {
                let dot = |i: usize, j: usize| -> f64 {
                    (0..c)
                        .map(|ch| {
                            let r = (n * cout + s * c + ch) * v;
                            x1[r + i] * x2[r + j]
                        })
                        .sum()
                };
                for w in 0..v {
                    let column: Vec<f64> = (0..v).map(|i| dot(i, w)).collect();
                    let top = column.iter().cloned().fold(f64::MIN, f64::max);
                    let total: f64 = column.iter().map(|d| (d - top).exp()).sum();
                    for i in 0..v {
                        let intra = beta * (column[i] - top).exp() / total;
                        for ch in 0..c {
                            let r = (n * cout + s * c + ch) * v;
                            let inter = alpha * (x1[r + i] - x2[r + w]).tanh();
                            let at = (r + i) * v + w;
                            graph[at] = inter + intra;
                            adjacency[at] = graph[at] + a[(s * v + i) * v + w];
                        }
                    }
                }
            }
        }
        let mut z = vec![0.0; b * cout * p];
        for r in 0..b * cout {
            for f in 0..t {
                for w in 0..v {
                    z[(r * t + f) * v + w] = (0..v)
                        .map(|i| pre[(r * t + f) * v + i] * adjacency[(r * v + i) * v + w])
                        .sum();
                }
            }
        }
        let y = convolve(&unit.post, &z, cout);
        let residual = match &unit.down {
            Some(down) => convolve(&down.conv, x, cin)
                .iter()
                .map(|h| h * bn)
                .collect(),
            None => x.to_vec(),
        };
        let out = y
            .iter()
            .zip(&residual)
            .map(|(y, r)| (y * bn + r).max(0.0))
            .collect();
        (out, graph)
    }

    const DIMS: (usize, usize, usize, usize, usize) = (2, 5, 16, 3, 6);

    /// A unit of `DIMS` whose A, α and β are the graph's inputs 1, 2 and 3 (x is input 0).
    fn unit_on_inputs(g: &mut Graph, inputs: &[TensorId]) -> UnitGcn {
        let (_, cin, cout, _, v) = DIMS;
        let mut init = Init::new(3);
        let adjacency = vec![0.0; SUBSETS * v * v];
        let mut unit = UnitGcn::new(g, "gcn", (cin, cout), (&adjacency, v), &mut init);
        unit.a = inputs[1];
        unit.alpha = inputs[2];
        unit.beta = inputs[3];
        unit
    }

    fn unit_inputs() -> Vec<(Vec<usize>, Vec<f32>)> {
        let (b, cin, _, t, v) = DIMS;
        // α₀ and β₀ differ from the other entries, so a unit reading another one fails.
        let mut alpha = vec![-3.0; SUBSETS];
        alpha[0] = 0.7;
        let mut beta = vec![5.0; SUBSETS];
        beta[0] = -1.3;
        vec![
            (vec![b, cin, t, v], uniform(1, b * cin * t * v, -1.0, 1.0)),
            (vec![SUBSETS, v, v], uniform(2, SUBSETS * v * v, -0.5, 0.5)),
            (vec![SUBSETS], alpha),
            (vec![SUBSETS], beta),
        ]
    }

    #[test]
    fn the_unit_matches_the_official_one_in_f64() {
        let (b, cin, cout, t, v) = DIMS;
        let inputs = unit_inputs();
        let mut g = Graph::new();
        let ids: Vec<TensorId> = inputs
            .iter()
            .enumerate()
            .map(|(i, (shape, _))| g.input(&format!("in{i}"), shape))
            .collect();
        let unit = unit_on_inputs(&mut g, &ids);
        let (y, graph) = unit.forward(&mut g, ids[0], Mode::Eval);
        let x = to_f64(&inputs[0].1);
        let a = to_f64(&inputs[1].1);
        let scalars = (&a[..], f64::from(inputs[2].1[0]), f64::from(inputs[3].1[0]));
        let (want_y, want_graph) = reference(&g, &unit, &x, scalars, DIMS);
        let h = Harness::new(g, &[y, graph]);
        let feed: Vec<(TensorId, &[f32])> = ids
            .iter()
            .zip(&inputs)
            .map(|(&t, (_, d))| (t, d.as_slice()))
            .collect();
        let got = h.run(&feed, &[y, graph]);
        check("unit_gcn output", normwise_error(&got[0], &want_y), 1e-4);
        // The engine's graph is transposed: [b, c, w, v].
        let mut untransposed = vec![0.0; got[1].len()];
        for r in 0..b * cout {
            for w in 0..v {
                for i in 0..v {
                    untransposed[(r * v + i) * v + w] = got[1][(r * v + w) * v + i];
                }
            }
        }
        check(
            "unit_gcn graph",
            normwise_error(&untransposed, &want_graph),
            1e-4,
        );
        assert_eq!(got[0].len(), b * cout * t * v);
        assert!(cin != cout, "the check covers the down path");
    }

    /// Each of x, A, α and β in turn against finite differences (the others fixed), with the
    /// unit in training mode and both outputs reaching the loss, as in the last block. The
    /// outputs are scaled by 0.1: the f32 forward's rounding then stays below the check's
    /// floor on coordinates whose gradient is near zero, while a misplaced or transposed
    /// gradient is still off by its whole size.
    #[test]
    fn the_unit_gradients_match_finite_differences() {
        let all = unit_inputs();
        for (which, input) in all.iter().enumerate() {
            let report = gradcheck(
                std::slice::from_ref(input),
                |g, ids| {
                    let full: Vec<TensorId> = all
                        .iter()
                        .enumerate()
                        .map(|(i, (shape, data))| {
                            if i == which {
                                ids[0]
                            } else {
                                g.constant(&format!("fixed{i}"), shape, data.clone())
                            }
                        })
                        .collect();
                    let unit = unit_on_inputs(g, &full);
                    let (y, graph) = unit.forward(g, full[0], Mode::Train);
                    let y = reshape(g, y, &[1, g.numel(y)]);
                    let graph = reshape(g, graph, &[1, g.numel(graph)]);
                    let both = concat(g, &[y, graph]);
                    scale(g, both, 0.1)
                },
                1e-3,
                11,
            );
            assert!(
                report.worst < 1e-2,
                "input {which}: worst relative error {}",
                report.worst
            );
        }
    }

    /// The official `mstcn` in f64, evaluation-mode BNs at their initial statistics.
    fn tcn_reference(
        g: &Graph,
        tcn: &MsTcn,
        x: &[f64],
        coeff: &[f64],
        (b, c, t, v): (usize, usize, usize, usize),
    ) -> Vec<f64> {
        let bn = 1.0 / (1.0f64 + 1e-5).sqrt();
        let (s, w) = (tcn.stride, v + 1);
        let t_out = (t - 1) / s + 1;
        let mut ext = vec![0.0; b * c * t * w];
        for r in 0..b * c * t {
            for j in 0..v {
                ext[r * w + j] = x[r * v + j];
            }
            ext[r * w + v] = x[r * v..(r + 1) * v].iter().sum::<f64>() / v as f64;
        }
        let pointwise = |layer: &Conv, input: &[f64]| {
            conv(
                input,
                &values(g, layer.weight),
                &values(g, layer.bias),
                (b, c, t * w),
            )
        };
        let mut branches: Vec<Vec<f64>> = Vec::new();
        // The official ms_cfg: (3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'.
        for (index, branch) in tcn.branches.iter().enumerate() {
            let (h, width) = match branch {
                Branch::Entered { conv: layer, .. } | Branch::Pointwise(layer) => {
                    (pointwise(layer, &ext), g.shape(layer.bias)[0])
                }
            };
            let mut out = vec![0.0; b * width * t_out * w];
            let at = |r: usize, f: usize, j: usize| (r * t + f) * w + j;
            for r in 0..b * width {
                for f in 0..t_out {
                    for j in 0..w {
                        let o = (r * t_out + f) * w + j;
                        out[o] = match branch {
                            Branch::Pointwise(_) => h[at(r, f * s, j)],
                            Branch::Entered { kind, .. } => {
                                let act = |tt: usize| (h[at(r, tt, j)] * bn).max(0.0);
                                let taps = |d: usize| {
                                    (0..3).filter_map(move |k| {
                                        let tt = (f * s + k * d).checked_sub(d)?;
                                        (tt < t).then_some((k, tt))
                                    })
                                };
                                match kind {
                                    BranchKind::Pool => {
                                        taps(1).map(|(_, tt)| act(tt)).fold(f64::MIN, f64::max)
                                    }
                                    BranchKind::Temporal { conv: layer, .. } => {
                                        let dilation = index + 1;
                                        let (n, ch) = (r / width, r % width);
                                        let wt = values(g, layer.weight);
                                        let bias = values(g, layer.bias)[ch];
                                        (0..width)
                                            .map(|i| {
                                                taps(dilation)
                                                    .map(|(k, tt)| {
                                                        let hi = (n * width + i) * t + tt;
                                                        wt[(ch * width + i) * 3 + k]
                                                            * (h[hi * w + j] * bn).max(0.0)
                                                    })
                                                    .sum::<f64>()
                                            })
                                            .sum::<f64>()
                                            + bias
                                    }
                                }
                            }
                        };
                    }
                }
            }
            branches.push(out);
        }
        let cout: usize = tcn.branches.len() * (c / TCN_BRANCHES);
        let mut feat = vec![0.0; b * cout * t_out * v];
        let mut channel = 0;
        for out in &branches {
            let width = out.len() / (b * t_out * w);
            for n in 0..b {
                for ch in 0..width {
                    for f in 0..t_out {
                        let row = ((n * width + ch) * t_out + f) * w;
                        for j in 0..v {
                            let o = ((n * cout + channel + ch) * t_out + f) * v + j;
                            feat[o] = ((out[row + j] + out[row + v] * coeff[j]) * bn).max(0.0);
                        }
                    }
                }
            }
            channel += width;
        }
        let w2 = values(g, tcn.transform.weight);
        conv(
            &feat,
            &w2,
            &values(g, tcn.transform.bias),
            (b, cout, t_out * v),
        )
        .iter()
        .map(|y| y * bn)
        .collect()
    }

    #[test]
    fn the_tcn_matches_the_official_one_in_f64() {
        let (b, c, t, v) = (2, 12, 7, 6);
        let mut g = Graph::new();
        let x = g.input("x", &[b, c, t, v]);
        let coeff = g.input("coeff", &[COEFF_JOINTS]);
        let mut tcn = MsTcn::new(&mut g, "tcn", (c, c), 2, &mut Init::new(5));
        tcn.add_coeff = coeff;
        let y = tcn.forward(&mut g, x, Mode::Eval);
        let xv = uniform(6, b * c * t * v, -1.0, 1.0);
        let cv = uniform(7, COEFF_JOINTS, -1.0, 1.0);
        let want = tcn_reference(&g, &tcn, &to_f64(&xv), &to_f64(&cv), (b, c, t, v));
        let h = Harness::new(g, &[y]);
        let got = h.run(&[(x, &xv), (coeff, &cv)], &[y]);
        assert_eq!(got[0].len(), b * c * 4 * v);
        check("mstcn output", normwise_error(&got[0], &want), 1e-4);
    }
}
