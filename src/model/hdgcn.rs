//! HD-GCN (backbones spec §6, the official `model/HDGCN.py`) as one graph: CTR-GCN's skeleton
//! (`data_bn`, ten blocks at widths 64, 64, 64, 64, 128 (s2), 128, 128, 256 (s2), 256, 256, an
//! MS-TCN after each graph unit, the block residuals and the pooled head) with HD-GCN's graph
//! unit `HD_Gconv` in every block.
//!
//! **The HD-Graph.** The joints fall into groups by hop distance from a centre of mass (the
//! topology file's `[[hdgcn]]` tables, `Topology::hierarchy`); level l of L = groups − 1 holds
//! three matrices over groups l and l + 1 (self links, l → l + 1, l + 1 → l), each column
//! normalised, learnable as `PA` (L, 3, V, V).
//!
//! **HD_Gconv** (inter = C_out / 4): per level l, `conv_down.{l}` (1×1 → BN → ReLU), then per subset
//! j the aggregation with PA[l, j] (rows are outputs) and `conv.{l}.{j}` (1×1 → BN), and the
//! EdgeConv `conv.{l}.3` (k = 5 nearest joints in feature space of the frame-averaged input,
//! [x_nbr − x, x] → 1×1 without bias → BN → LeakyReLU(0.2) → max over the neighbours, broadcast over
//! frames); the four are concatenated to C_out channels. The levels are stacked and, from block 2
//! on, weighted by **AHA** (max over frames, `aha.conv_down`, the mean of each level's joints, an
//! EdgeConv with k = 3 over the L level nodes, `aha.aggregate` (Conv1d) and a sigmoid), in block 1
//! summed; then BN (γ = 1e-6) → + down → ReLU.
//!
//! The official `HD_Gconv` also registers its last level's ModuleList a second time as
//! `conv_d` (an attribute reassigned in its constructor's loop), so its state dict repeats
//! `conv.{L−1}.*` under `conv_d.*`. Those are the same parameters: the engine declares each once,
//! and [`ALIASES`] says how to name the copies.

use super::ModelOutput;
use super::ctrgcn::{BLOCKS, CtrGcnConfig, IN_CHANNELS};
use super::init::Init;
use super::layers::{Conv, Dense, person_joint_bn, pool_persons};
use super::ms_tcn::{BlockResidual, MsTcn, TcnInit, UnitTcn};
use super::sf_attach::AttachedHeads;
use super::sf_head::SfFeatures;
use super::topology::Hierarchy;
use super::unit_gcn::{Down, normalise_add_down};
use crate::engine::{Graph, TensorId};
use crate::ops::axis_max::max_axis;
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::concat::{concat, split};
use crate::ops::conv1x1::conv1x1;
use crate::ops::edge_feature::edge_feature;
use crate::ops::knn::knn;
use crate::ops::leaky_relu::leaky_relu;
use crate::ops::matmul::matmul;
use crate::ops::permute::permute;
use crate::ops::reduce::{broadcast_mul, expand, mean, sum};
use crate::ops::reshape::reshape;
use crate::ops::sigmoid::sigmoid;

/// Adjacency subsets per level: self links, one level outward, one level inward.
pub const SUBSETS: usize = 3;
/// Neighbours of a joint in the graph unit's EdgeConv.
pub const JOINT_NEIGHBOURS: usize = 5;
/// Neighbours of a level in AHA's EdgeConv.
pub const LEVEL_NEIGHBOURS: usize = 3;
/// Negative slope of the EdgeConvs' LeakyReLU.
pub const LEAKY_SLOPE: f32 = 0.2;
/// The official state dict's second name of a graph unit's last level, `conv_d.` for
/// `conv.{L−1}.` (see [`alias_of`]).
pub const ALIASES: &str = "conv_d.";

/// The official state dict's second key for the tensor `key` of a network with `levels` levels:
/// `l{b}.gcn1.conv_d.…` for `l{b}.gcn1.conv.{levels − 1}.…`, none for any other key.
pub fn alias_of(key: &str, levels: usize) -> Option<String> {
    let (unit, rest) = key.split_once(".gcn1.")?;
    let inner = rest.strip_prefix(&format!("conv.{}.", levels - 1))?;
    Some(format!("{unit}.gcn1.{ALIASES}{inner}"))
}

/// The (L, 3, V, V) HD-Graph of `hierarchy`, row-major, rows receivers and columns senders:
/// per level l, self links on groups l ∪ l + 1, then the links group l → l + 1 and group l + 1 → l,
/// every column divided by its sum (the official `get_hierarchical_graph`).
pub fn hd_graph(hierarchy: &Hierarchy, joints: usize) -> Vec<f32> {
    let groups = &hierarchy.groups;
    let v = joints;
    let mut values = Vec::with_capacity((groups.len() - 1) * SUBSETS * v * v);
    for level in groups.windows(2) {
        let (inner, outer) = (&level[0], &level[1]);
        let own: Vec<(usize, usize)> = inner.iter().chain(outer).map(|&j| (j, j)).collect();
        let across = |from: &[usize], to: &[usize]| -> Vec<(usize, usize)> {
            from.iter()
                .flat_map(|&s| to.iter().map(move |&r| (s, r)))
                .collect()
        };
        for links in [own, across(inner, outer), across(outer, inner)] {
            let mut e = vec![0.0f64; v * v];
            for (sender, receiver) in links {
                e[receiver * v + sender] = 1.0;
            }
            for col in 0..v {
                let sum: f64 = (0..v).map(|row| e[row * v + col]).sum();
                if sum > 0.0 {
                    (0..v).for_each(|row| e[row * v + col] /= sum);
                }
            }
            values.extend(e.into_iter().map(|x| x as f32));
        }
    }
    values
}

/// 1×1 conv → BN (→ ReLU where the layer has one).
#[derive(Debug, Clone, Copy)]
struct ConvBn {
    conv: Conv,
    bn: BatchNorm,
}

impl ConvBn {
    /// `{prefix}.0` (kaiming_normal fan out, zero bias) and `{prefix}.1` (γ = 1, β = 0), as
    /// `HD_Gconv` re-initialises every Conv2d and BatchNorm2d in it.
    fn new(g: &mut Graph, prefix: &str, [cout, cin]: [usize; 2], init: &mut Init) -> Self {
        Self {
            conv: Conv::kaiming(g, &format!("{prefix}.0"), [cout, cin, 1, 1], init),
            bn: BatchNorm::new(g, &format!("{prefix}.1"), cout),
        }
    }

    fn apply(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let h = self.conv.apply_1x1(g, x);
        self.bn.apply(g, h, mode)
    }

    /// ReLU of [`Self::apply`].
    fn apply_relu(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let h = self.conv.apply_1x1(g, x);
        self.bn.apply_relu(g, h, mode)
    }
}

/// `EdgeConv`: the kNN feature [x_nbr − x, x] → 1×1 conv without bias → BN → LeakyReLU(0.2) →
/// max over the k neighbours.
#[derive(Debug, Clone, Copy)]
struct EdgeConv {
    weight: TensorId,
    bn: BatchNorm,
    k: usize,
}

impl EdgeConv {
    /// `{prefix}.conv.0.weight` (C, 2C, 1, 1) and the BN `{prefix}.conv.1`.
    fn new(g: &mut Graph, prefix: &str, channels: usize, k: usize, init: &mut Init) -> Self {
        let shape = [channels, 2 * channels, 1, 1];
        let weight = init.kaiming_normal_fan_out(&shape);
        Self {
            weight: g.parameter(&format!("{prefix}.conv.0.weight"), &shape, weight),
            bn: BatchNorm::new(g, &format!("{prefix}.conv.1"), channels),
            k,
        }
    }

    /// (B, C, P) → (B, C, P): each of the P points gathers its k nearest points in feature space.
    fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let neighbours = knn(g, x, self.k);
        let h = edge_feature(g, x, neighbours);
        let h = conv1x1(g, h, self.weight, None);
        let h = self.bn.apply(g, h, mode);
        let h = leaky_relu(g, h, LEAKY_SLOPE);
        max_axis(g, h, 3)
    }
}

/// One level of the unit: its `conv_down`, three subset convs and EdgeConv.
struct Level {
    down: ConvBn,
    subsets: [ConvBn; SUBSETS],
    edge: EdgeConv,
}

/// Attention-guided hierarchy aggregation.
struct Aha {
    down: ConvBn,
    edge: EdgeConv,
    aggregate: Dense,
    /// (L·V, L): the mean over each level's joints (groups l ∪ l + 1) of that level's row.
    sampling: Vec<f32>,
}

impl Aha {
    fn new(
        g: &mut Graph,
        prefix: &str,
        channels: usize,
        hierarchy: &Hierarchy,
        joints: usize,
        init: &mut Init,
    ) -> Self {
        let inter = channels / 4;
        let down = ConvBn::new(g, &format!("{prefix}.conv_down"), [inter, channels], init);
        let edge = EdgeConv::new(
            g,
            &format!("{prefix}.edge_conv"),
            inter,
            LEVEL_NEIGHBOURS,
            init,
        );
        // A Conv1d, which HD_Gconv's re-initialisation of Conv2d layers leaves at PyTorch's
        // default U(±1/√C_in) for weight and bias.
        let bound = 1.0 / (inter as f32).sqrt();
        let weight = g.parameter(
            &format!("{prefix}.aggregate.weight"),
            &[channels, inter, 1],
            init.uniform(channels * inter, -bound, bound),
        );
        let bias = g.parameter(
            &format!("{prefix}.aggregate.bias"),
            &[channels],
            init.uniform(channels, -bound, bound),
        );
        let levels = hierarchy.groups.len() - 1;
        let mut sampling = vec![0.0; levels * joints * levels];
        for (l, pair) in hierarchy.groups.windows(2).enumerate() {
            let members = pair[0].len() + pair[1].len();
            for &j in pair[0].iter().chain(&pair[1]) {
                sampling[(l * joints + j) * levels + l] = 1.0 / members as f32;
            }
        }
        Self {
            down,
            edge,
            aggregate: Dense { weight, bias },
            sampling,
        }
    }

    /// The stack s (B, L, C, T, V) of the levels' outputs → Σ_l s[:, l] ⊙ σ(att)[:, :, l].
    fn forward(&self, g: &mut Graph, s: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(s).to_vec();
        let [b, l, c, _, v] = shape[..] else {
            panic!("AHA takes (B, L, C, T, V), got {shape:?}");
        };
        let peak = max_axis(g, s, 3);
        let peak = permute(g, peak, &[b, l, c, v], &[0, 2, 1, 3], &[b, c, l, v]);
        let h = self.down.apply_relu(g, peak, mode);
        let inter = c / 4;
        let h = reshape(g, h, &[b * inter, l * v]);
        let sampling = g.constant("aha_sampling", &[l * v, l], self.sampling.clone());
        let nodes = matmul(g, h, sampling, false, false);
        let nodes = reshape(g, nodes, &[b, inter, l]);
        let h = self.edge.forward(g, nodes, mode);
        let weight = reshape(g, self.aggregate.weight, &[c, inter, 1, 1]);
        let att = conv1x1(g, h, weight, Some(self.aggregate.bias));
        let att = sigmoid(g, att);
        let att = permute(g, att, &[b, c, l], &[0, 2, 1], &[b, l, c]);
        let weighted = broadcast_mul(g, s, att, &[3, 4]);
        sum(g, weighted, &[1])
    }
}

/// `HD_Gconv`.
struct HdGconv {
    /// PA (L, 3, V, V).
    pa: TensorId,
    levels: Vec<Level>,
    aha: Option<Aha>,
    down: Option<Down>,
    bn: BatchNorm,
}

impl HdGconv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        hierarchy: &Hierarchy,
        joints: usize,
        attention: bool,
        init: &mut Init,
    ) -> Self {
        let v = joints;
        let count = hierarchy.groups.len() - 1;
        let pa = g.parameter(
            &format!("{prefix}.PA"),
            &[count, SUBSETS, v, v],
            hd_graph(hierarchy, v),
        );
        let inter = cout / (SUBSETS + 1);
        let downs: Vec<ConvBn> = (0..count)
            .map(|l| ConvBn::new(g, &format!("{prefix}.conv_down.{l}"), [inter, cin], init))
            .collect();
        let levels = downs
            .into_iter()
            .enumerate()
            .map(|(l, down)| {
                let subsets = std::array::from_fn(|j| {
                    ConvBn::new(g, &format!("{prefix}.conv.{l}.{j}"), [inter, inter], init)
                });
                let edge = EdgeConv::new(
                    g,
                    &format!("{prefix}.conv.{l}.{SUBSETS}"),
                    inter,
                    JOINT_NEIGHBOURS,
                    init,
                );
                Level {
                    down,
                    subsets,
                    edge,
                }
            })
            .collect();
        let aha =
            attention.then(|| Aha::new(g, &format!("{prefix}.aha"), cout, hierarchy, v, init));
        let down = Down::new(g, prefix, (cin, cout), init);
        let bn = BatchNorm::with_weight(g, &format!("{prefix}.bn"), vec![1e-6; cout]);
        Self {
            pa,
            levels,
            aha,
            down,
            bn,
        }
    }

    /// (B, C_in, T, V) → (B, C_out, T, V).
    fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [b, _, t, v] = shape[..] else {
            panic!("HD_Gconv takes (B, C, T, V), got {shape:?}");
        };
        let count = self.levels.len();
        let pa = reshape(g, self.pa, &[1, count * SUBSETS, v * v]);
        let matrices = split(g, pa, &vec![1; count * SUBSETS]);
        let mut stack = Vec::with_capacity(count);
        for (l, level) in self.levels.iter().enumerate() {
            let h = level.down.apply_relu(g, x, mode);
            let inter = g.shape(h)[1];
            let rows = reshape(g, h, &[b * inter * t, v]);
            let mut parts = Vec::with_capacity(SUBSETS + 1);
            for (j, subset) in level.subsets.iter().enumerate() {
                let a = reshape(g, matrices[l * SUBSETS + j], &[v, v]);
                let z = matmul(g, rows, a, false, true);
                let z = reshape(g, z, &[b, inter, t, v]);
                parts.push(subset.apply(g, z, mode));
            }
            let frames = mean(g, h, &[2]);
            let e = level.edge.forward(g, frames, mode);
            parts.push(expand(g, e, &[b, inter, t, v], &[2], 1.0));
            let y = concat(g, &parts);
            let cout = g.shape(y)[1];
            stack.push(reshape(g, y, &[b, 1, cout, t, v]));
        }
        let stack = concat(g, &stack);
        let y = match &self.aha {
            Some(aha) => aha.forward(g, stack, mode),
            None => sum(g, stack, &[1]),
        };
        normalise_add_down(g, x, y, &self.bn, self.down.as_ref(), mode)
    }
}

struct Block {
    gcn: HdGconv,
    tcn: MsTcn,
    residual: BlockResidual,
}

pub struct HdGcn {
    config: CtrGcnConfig,
    data_bn: BatchNorm,
    blocks: Vec<Block>,
    fc: Dense,
    sf_heads: AttachedHeads,
}

impl HdGcn {
    /// Declares every parameter and buffer in the official state-dict order (each once, see
    /// [`ALIASES`]), initialised as HD-GCN does from `seed`, on the configuration's hierarchy.
    pub fn new(g: &mut Graph, config: CtrGcnConfig, seed: u64) -> Self {
        let mut init = Init::new(seed);
        let (v, m, k) = (config.joints(), config.persons, config.classes);
        let hierarchy = config.hierarchy().clone();
        let data_bn = BatchNorm::new(g, "data_bn", m * v * IN_CHANNELS);
        let blocks = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, stride))| {
                let prefix = format!("l{}", i + 1);
                let gcn = HdGconv::new(
                    g,
                    &format!("{prefix}.gcn1"),
                    (cin, cout),
                    &hierarchy,
                    v,
                    i > 0,
                    &mut init,
                );
                let tcn = MsTcn::new_with(
                    g,
                    &format!("{prefix}.tcn1"),
                    (cout, cout),
                    stride,
                    TcnInit::HdGcn,
                    &mut init,
                );
                let residual = BlockResidual::of(i > 0, (cin, cout), stride, || {
                    let name = format!("{prefix}.residual");
                    UnitTcn::new(g, &name, (cin, cout), 1, stride, &mut init)
                });
                Block { gcn, tcn, residual }
            })
            .collect();
        let features = BLOCKS[BLOCKS.len() - 1].1;
        let fc_weight = init.normal(k * features, 0.0, (2.0 / k as f32).sqrt());
        let fc = Dense::new(g, "fc", [k, features], fc_weight, &mut init);
        let widths = BLOCKS.map(|b| b.1);
        let sf_heads = AttachedHeads::new(g, config.sf_head.as_ref(), &widths, &mut init);
        Self {
            config,
            data_bn,
            blocks,
            fc,
            sf_heads,
        }
    }

    /// Logits of a batch `x` (N, 3, T, V, M) and, in training with SF-Head, its losses.
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> ModelOutput {
        let shape = g.shape(x).to_vec();
        let [n, _, _, _, m] = self.config.input_dims(&shape);
        let mut h = person_joint_bn(g, &self.data_bn, x, mode);
        let mut heads: Vec<SfFeatures> = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let y = block.gcn.forward(g, h, mode);
            let y = self.sf_heads.apply(g, i, y, mode, &mut heads);
            let y = block.tcn.forward(g, y, mode);
            h = block.residual.add_relu_to(g, y, h, mode);
        }
        let pooled = pool_persons(g, h, m);
        let mut output: ModelOutput = self.fc.apply(g, pooled).into();
        output.features = Some(pooled);
        output.losses = self.sf_heads.losses(g, &heads, n, m, mode);
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Topology;

    #[test]
    fn the_hd_graph_links_neighbouring_groups_column_normalised() {
        let ntu = Topology::shipped("ntu25").unwrap();
        let h = ntu.hierarchy(20).unwrap();
        let a = hd_graph(h, 25);
        let at = |l: usize, s: usize, r: usize, c: usize| a[((l * SUBSETS + s) * 25 + r) * 25 + c];
        assert_eq!(a.len(), 6 * SUBSETS * 625);
        // Level 0: joint 21 (index 20) and its four neighbours 2, 3, 5, 9.
        assert_eq!(at(0, 0, 20, 20), 1.0);
        assert_eq!(at(0, 0, 1, 1), 1.0);
        assert_eq!(at(0, 0, 0, 0), 0.0);
        // 21 → each of the four: column 21 sums to one over them.
        assert_eq!(at(0, 1, 1, 20), 0.25);
        assert_eq!(at(0, 1, 20, 1), 0.0);
        // Each of the four → 21, each column alone.
        assert_eq!(at(0, 2, 20, 1), 1.0);
        for l in 0..6 {
            for s in 0..SUBSETS {
                for col in 0..25 {
                    let sum: f32 = (0..25).map(|r| at(l, s, r, col)).sum();
                    assert!(
                        sum == 0.0 || (sum - 1.0).abs() < 1e-6,
                        "level {l} subset {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_last_level_has_a_second_name() {
        assert_eq!(
            alias_of("l3.gcn1.conv.5.3.conv.0.weight", 6).as_deref(),
            Some("l3.gcn1.conv_d.3.conv.0.weight")
        );
        assert_eq!(alias_of("l3.gcn1.conv.4.0.0.weight", 6), None);
        assert_eq!(alias_of("l3.gcn1.conv_down.5.0.weight", 6), None);
        assert_eq!(alias_of("l3.tcn1.branches.0.0.weight", 6), None);
    }
}
