//! BlockGCN (backbones spec §7, the official `model/BlockGCN.py`) as one graph: the joints
//! centred on the spine shoulder in every frame (NTU; the official feeder does this), a per-joint
//! embedding of width 128 with `data_bn`, ten blocks of BlockGC → MS-TCN with a residual at widths
//! 128, 128, 128, 128, 256 (s2), 256, 256, 256 (s2), 256, 256, and the pooled head.
//!
//! **BlockGC** (`gcn1`, H = 8 channel groups): per subset i, the group's matrix is
//! W_i/‖W_i‖ + E_i/‖E_i‖ (column L2 norms + 1e-4), W_i (H, V, V) learnable from the identity and E_i
//! the group's learnable scalar per hop distance (`rpe`, zero at start) spread over the V×V hop
//! table of BlockGCN's graph; each group aggregates its channels with its matrix, a grouped 1×1
//! conv (`fc2.{i}`, groups 8) projects, and the subsets are summed → BN (γ = 1e-6) → + down → ReLU.
//! All three subsets and all groups run as two batched products.
//!
//! **The topology branch**, once per batch: the 0-dim persistence of each sample's joints
//! (`persistence::mst_deaths`, on the raw joints) through 64 structure elements
//! (`topo.pl`), and per block a `TopoTrans` (`t{i}`: Linear 64 → C, BN1d, ReLU) added to the block
//! input, broadcast over frames and joints. Which sample's features a person row gets is
//! [`TopologyRows`]: the official code's `repeat(2, 1)` on an (n, m)-ordered batch gives row
//! n·M + m the features of sample (n·M + m) mod N.

use super::ModelOutput;
use super::ctrgcn::CtrGcnConfig;
use super::init::Init;
use super::layers::{Conv, Dense, JointEmbedding, identity_stack, pool_persons};
use super::ms_tcn::{BlockResidual, MsTcn, UnitTcn};
use super::sf_attach::AttachedHeads;
use super::sf_head::SfFeatures;
use super::unit_gcn::{Down, normalise_add_down};
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::bmm::bmm;
use crate::ops::col_norm::col_l2_normalize;
use crate::ops::concat::concat;
use crate::ops::matmul::matmul;
use crate::ops::persistence::mst_deaths;
use crate::ops::reduce::expand;
use crate::ops::reshape::reshape;
use crate::ops::structure_elements::structure_elements;
use crate::ops::{add::add, permute::permute, relu::relu};

/// (C_in, C_out, temporal stride) of blocks l1…l10.
pub const BLOCKS: [(usize, usize, usize); 10] = [
    (128, 128, 1),
    (128, 128, 1),
    (128, 128, 1),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 256, 1),
    (256, 256, 2),
    (256, 256, 1),
    (256, 256, 1),
];

/// Width of the joint embedding, the first block's input.
pub const EMBEDDING: usize = 128;
/// Channel groups of a BlockGC unit (`num_heads`).
pub const GROUPS: usize = 8;
/// Adjacency subsets per unit.
pub const SUBSETS: usize = 3;
/// Structure elements of the topology feature.
pub const ELEMENTS: usize = 64;
/// Width of the head.
pub const FEATURES: usize = 256;

/// Which sample's topology features each person row of the (n, m)-ordered batch gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TopologyRows {
    /// The official `x.repeat(2, 1)`: row n·M + m gets sample (n·M + m) mod N's features, another
    /// sample's whenever N > 1 (with one person per sample the two agree).
    #[default]
    Official,
    /// Row n·M + m gets sample n's own features.
    Aligned,
}

impl TopologyRows {
    pub fn name(self) -> &'static str {
        match self {
            Self::Official => "official",
            Self::Aligned => "aligned",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Official, Self::Aligned]
            .into_iter()
            .find(|r| r.name() == name)
    }

    /// The sample whose features row `row` of N samples × M persons gets.
    fn sample_of(self, row: usize, samples: usize, persons: usize) -> usize {
        match self {
            Self::Official => row % samples,
            Self::Aligned => row / persons,
        }
    }
}

/// `unit_gcn` of BlockGCN.
struct BlockGc {
    /// W: (3, H, V, V).
    fc1: TensorId,
    /// The per-hop scalars: (3, H, hops).
    rpe: TensorId,
    /// `fc2.{i}`: grouped convs (C_out, C_in/H, 1, 1).
    fc2: Vec<Conv>,
    down: Option<Down>,
    bn: BatchNorm,
}

impl BlockGc {
    fn new(
        g: &mut Graph,
        prefix: &str,
        (cin, cout): (usize, usize),
        (joints, hops): (usize, usize),
        init: &mut Init,
    ) -> Self {
        let v = joints;
        let fc1 = g.parameter(
            &format!("{prefix}.fc1"),
            &[SUBSETS, GROUPS, v, v],
            identity_stack(SUBSETS * GROUPS, v),
        );
        let rpe = g.parameter(
            &format!("{prefix}.rpe"),
            &[SUBSETS, GROUPS, hops],
            vec![0.0; SUBSETS * GROUPS * hops],
        );
        let fc2 = (0..SUBSETS)
            .map(|i| {
                let shape = [cout, cin / GROUPS, 1, 1];
                Conv::kaiming(g, &format!("{prefix}.fc2.{i}"), shape, init)
            })
            .collect();
        let down = Down::new(g, prefix, (cin, cout), init);
        let bn = BatchNorm::with_weight(g, &format!("{prefix}.bn"), vec![1e-6; cout]);
        Self {
            fc1,
            rpe,
            fc2,
            down,
            bn,
        }
    }

    /// (B, C_in, T, V) → (B, C_out, T, V); `hops` is the (hops, V·V) one-hot of the hop table.
    fn forward(&self, g: &mut Graph, x: TensorId, hops: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [b, cin, t, v] = shape[..] else {
            panic!("BlockGC takes (B, C, T, V), got {shape:?}");
        };
        let (h, c) = (GROUPS, cin / GROUPS);
        let cout = g.shape(self.fc2[0].weight)[0];
        let co = cout / h;
        // The groups' matrices of all subsets: W/‖W‖ + E/‖E‖ per column, (3·H, V, V).
        let w = reshape(g, self.fc1, &[SUBSETS * h, v, v]);
        let w = col_l2_normalize(g, w);
        let table = reshape(g, self.rpe, &[SUBSETS * h, g.shape(hops)[0]]);
        let e = matmul(g, table, hops, false, false);
        let e = reshape(g, e, &[SUBSETS * h, v, v]);
        let e = col_l2_normalize(g, e);
        let w = add(g, w, e);
        // (3, H, V, W) → (H, V, 3·W): one product aggregates every subset of a group.
        let w = permute(
            g,
            w,
            &[SUBSETS, h, v, v],
            &[1, 2, 0, 3],
            &[h, v, SUBSETS * v],
        );
        let xg = permute(g, x, &[b, h, c, t, v], &[1, 0, 2, 3, 4], &[h, b * c * t, v]);
        let z = bmm(g, xg, w, false, false);
        // (H, B, c, T, 3, V) → (H, 3·c, B·T·V) for the grouped convs, the subsets stacked along
        // the contraction: Σ_i W_i·z_i is one product per group.
        let z = permute(
            g,
            z,
            &[h, b, c, t, SUBSETS, v],
            &[0, 4, 2, 1, 3, 5],
            &[h, SUBSETS * c, b * t * v],
        );
        let weights: Vec<TensorId> = self
            .fc2
            .iter()
            .map(|conv| reshape(g, conv.weight, &[cout, c]))
            .collect();
        let weight = concat(g, &weights);
        let weight = reshape(g, weight, &[h, co, SUBSETS * c]);
        let y = bmm(g, weight, z, false, false);
        let y = permute(g, y, &[h, co, b, t, v], &[2, 0, 1, 3, 4], &[b, cout, t, v]);
        let bias = self.fc2[1..]
            .iter()
            .fold(self.fc2[0].bias, |sum, conv| add(g, sum, conv.bias));
        let bias = expand(g, bias, &[b, cout, t, v], &[0, 2, 3], 1.0);
        let y = add(g, y, bias);
        normalise_add_down(g, x, y, &self.bn, self.down.as_ref(), mode)
    }
}

/// `TopoTrans`: Linear 64 → C, BN1d, ReLU.
struct TopoTrans {
    mlp: Dense,
    bn: BatchNorm,
}

struct Block {
    topo: TopoTrans,
    gcn: BlockGc,
    tcn: MsTcn,
    residual: BlockResidual,
}

pub struct BlockGcn {
    config: CtrGcnConfig,
    embedding: JointEmbedding,
    blocks: Vec<Block>,
    centres: TensorId,
    sharpness: TensorId,
    fc: Dense,
    /// The (hops, V·V) one-hot of the hop distance between every two joints.
    hop_table: Vec<f32>,
    hops: usize,
    /// The joint every frame is centred on, where the skeleton's file names one.
    centre: Option<usize>,
    sf_heads: AttachedHeads,
}

impl BlockGcn {
    /// Declares every parameter and buffer in the official state-dict order, initialised as
    /// BlockGCN does from `seed`.
    pub fn new(g: &mut Graph, config: CtrGcnConfig, seed: u64) -> Self {
        let mut init = Init::new(seed);
        let (v, m, k) = (config.joints(), config.persons, config.classes);
        let graph = config.topology.blockgcn();
        let tree = graph.map_or(config.topology.spatial_tree(), |b| &b.tree);
        let distances = tree.hop_distances();
        let hops = distances.iter().max().map_or(1, |&d| d + 1);
        let mut hop_table = vec![0.0; hops * v * v];
        for (at, &d) in distances.iter().enumerate() {
            hop_table[d * v * v + at] = 1.0;
        }
        let embedding = JointEmbedding::new(g, (v, m, EMBEDDING), &mut init);
        let mut gcn_units = Vec::with_capacity(BLOCKS.len());
        let mut tcns = Vec::with_capacity(BLOCKS.len());
        let mut residuals = Vec::with_capacity(BLOCKS.len());
        for (i, &(cin, cout, stride)) in BLOCKS.iter().enumerate() {
            let prefix = format!("l{}", i + 1);
            gcn_units.push(BlockGc::new(
                g,
                &format!("{prefix}.gcn1"),
                (cin, cout),
                (v, hops),
                &mut init,
            ));
            tcns.push(MsTcn::new(
                g,
                &format!("{prefix}.tcn1"),
                (cout, cout),
                stride,
                &mut init,
            ));
            residuals.push(BlockResidual::of(true, (cin, cout), stride, || {
                let name = format!("{prefix}.residual");
                UnitTcn::new(g, &name, (cin, cout), 1, stride, &mut init)
            }));
        }
        // `t{i}` feeds block i + 1's input, of that block's input width.
        let topos: Vec<TopoTrans> = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(cin, _, _))| TopoTrans {
                mlp: Dense::default_init(g, &format!("t{i}.mlp"), [cin, ELEMENTS], &mut init),
                bn: BatchNorm::new(g, &format!("t{i}.bn"), cin),
            })
            .collect();
        let centres = g.parameter(
            "topo.pl.centres",
            &[ELEMENTS, 2],
            init.uniform(ELEMENTS * 2, 0.0, 1.0),
        );
        let sharpness = g.parameter("topo.pl.sharpness", &[ELEMENTS, 2], vec![3.0; ELEMENTS * 2]);
        let fc_weight = init.normal(k * FEATURES, 0.0, (2.0 / k as f32).sqrt());
        let fc = Dense::new(g, "fc", [k, FEATURES], fc_weight, &mut init);
        let blocks: Vec<Block> = topos
            .into_iter()
            .zip(gcn_units)
            .zip(tcns.into_iter().zip(residuals))
            .map(|((topo, gcn), (tcn, residual))| Block {
                topo,
                gcn,
                tcn,
                residual,
            })
            .collect();
        let widths = BLOCKS.map(|b| b.1);
        let sf_heads = AttachedHeads::new(g, config.sf_head.as_ref(), &widths, &mut init);
        Self {
            centre: graph.map(|b| b.centre),
            config,
            embedding,
            blocks,
            centres,
            sharpness,
            fc,
            hop_table,
            hops,
            sf_heads,
        }
    }

    /// Logits of a batch `x` (N, 3, T, V, M) of raw joints and, in training with SF-Head, its
    /// losses.
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> ModelOutput {
        let shape = g.shape(x).to_vec();
        let [n, c, t, v, m] = self.config.input_dims(&shape);
        // The topology feature of each sample's raw joints, then each person row's copy.
        let deaths = mst_deaths(g, x);
        let features = structure_elements(g, deaths, self.centres, self.sharpness);
        let mut select = vec![0.0; n * m * n];
        for row in 0..n * m {
            let sample = self.config.blockgcn_topology.sample_of(row, n, m);
            select[row * n + sample] = 1.0;
        }
        let select = g.constant("topology_rows", &[n * m, n], select);
        let features = matmul(g, select, features, false, false);
        // Rows (n, m, t, v) of coordinates, centred on the spine shoulder where there is one.
        let joints = match self.centre {
            Some(centre) => {
                let h = permute(g, x, &shape, &[0, 4, 2, 1, 3], &[n * m * t * c, v]);
                let centring = g.constant("spine_centring", &[v, v], centring(v, centre));
                let h = matmul(g, h, centring, false, true);
                permute(
                    g,
                    h,
                    &[n, m, t, c, v],
                    &[0, 1, 2, 4, 3],
                    &[n * m * t * v, c],
                )
            }
            None => permute(g, x, &shape, &[0, 4, 2, 3, 1], &[n * m * t * v, c]),
        };
        let mut h = self.embedding.forward(g, joints, [n, m, t, v], mode);
        let hops = g.constant("hop_table", &[self.hops, v * v], self.hop_table.clone());
        let mut heads: Vec<SfFeatures> = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let topo = block.topo.mlp.apply(g, features);
            let topo = block.topo.bn.apply(g, topo, mode);
            let topo = relu(g, topo);
            let hs = g.shape(h).to_vec();
            let topo = expand(g, topo, &hs, &[2, 3], 1.0);
            h = add(g, h, topo);
            let y = block.gcn.forward(g, h, hops, mode);
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

/// S with (S·x)[u] = x[u] − x[centre] for u ≠ centre and (S·x)[centre] = x[centre]: BlockGCN's
/// feeder keeps the centre joint's trajectory and makes every other joint relative to it.
fn centring(v: usize, centre: usize) -> Vec<f32> {
    let mut s = vec![0.0; v * v];
    for u in 0..v {
        s[u * v + u] = 1.0;
        if u != centre {
            s[u * v + centre] = -1.0;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_rows_take_another_samples_features_and_aligned_their_own() {
        let official: Vec<usize> = (0..6)
            .map(|r| TopologyRows::Official.sample_of(r, 3, 2))
            .collect();
        assert_eq!(official, [0, 1, 2, 0, 1, 2]);
        let aligned: Vec<usize> = (0..6)
            .map(|r| TopologyRows::Aligned.sample_of(r, 3, 2))
            .collect();
        assert_eq!(aligned, [0, 0, 1, 1, 2, 2]);
        for rows in [TopologyRows::Official, TopologyRows::Aligned] {
            let single: Vec<usize> = (0..3).map(|r| rows.sample_of(r, 3, 1)).collect();
            assert_eq!(single, [0, 1, 2]);
        }
    }

    #[test]
    fn centring_keeps_the_centre_and_subtracts_it_elsewhere() {
        let s = centring(3, 1);
        assert_eq!(s, [1.0, -1.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 1.0]);
    }
}
