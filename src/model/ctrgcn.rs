//! CTR-GCN (reference-spec §1) as one graph: `data_bn` over (M·V·C) channels, ten blocks of
//! unit_gcn → MS-TCN with a residual, and a head that averages over frames, joints and persons
//! before a Linear layer. Parameters and buffers carry PyTorch's state-dict keys in its order.

use super::init::Init;
use super::ms_tcn::{MsTcn, UnitTcn};
use super::topology::Topology;
use super::unit_gcn::{UnitGcn, UnitGcnConfig};
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::reshape::reshape;
use crate::ops::{add::add, linear::linear, permute::permute, reduce::mean, relu::relu};

/// (C_in, C_out, temporal stride) of blocks l1…l10.
pub const BLOCKS: [(usize, usize, usize); 10] = [
    (3, 64, 1),
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

/// Channels of the input: x, y, z.
pub const IN_CHANNELS: usize = 3;
/// Channels of the last block, the width of the head.
pub const FEATURES: usize = 256;

/// The benchmarks CTR-GCN is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    Ntu60,
    Ntu120,
    Ucla,
}

impl Dataset {
    pub fn config(self) -> CtrGcnConfig {
        let (classes, persons, topology) = match self {
            Dataset::Ntu60 => (60, 2, "ntu25"),
            Dataset::Ntu120 => (120, 2, "ntu25"),
            Dataset::Ucla => (10, 1, "ucla20"),
        };
        CtrGcnConfig {
            classes,
            persons,
            topology: Topology::shipped(topology).expect("shipped topologies are valid"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CtrGcnConfig {
    pub classes: usize,
    /// M: persons per sample, folded into the batch (row n·M + m).
    pub persons: usize,
    pub topology: Topology,
}

impl CtrGcnConfig {
    pub fn joints(&self) -> usize {
        self.topology.joint_count()
    }
}

enum Residual {
    /// l1: none.
    Zero,
    /// Same width and stride: the block input.
    Identity,
    /// l5 and l8: strided 1×1 conv + BN.
    Unit(UnitTcn),
}

struct Block {
    gcn: UnitGcn,
    tcn: MsTcn,
    residual: Residual,
}

pub struct CtrGcn {
    config: CtrGcnConfig,
    data_bn: BatchNorm,
    blocks: Vec<Block>,
    fc_weight: TensorId,
    fc_bias: TensorId,
}

impl CtrGcn {
    /// Declares every parameter and buffer in state-dict order, initialised as CTR-GCN does
    /// (reference-spec §1.7) from `seed`.
    pub fn new(g: &mut Graph, config: CtrGcnConfig, seed: u64) -> Self {
        let mut init = Init::new(seed);
        let (v, m, k) = (config.joints(), config.persons, config.classes);
        let data_bn = BatchNorm::new(g, "data_bn", m * v * IN_CHANNELS);
        let adjacency = config.topology.spatial_adjacency();
        let blocks = BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, stride))| {
                let prefix = format!("l{}", i + 1);
                let unit = UnitGcnConfig {
                    in_channels: cin,
                    out_channels: cout,
                    joints: v,
                };
                let gcn = UnitGcn::new(
                    g,
                    &format!("{prefix}.gcn1"),
                    &unit,
                    adjacency.as_slice(),
                    &mut init,
                );
                let tcn = MsTcn::new(
                    g,
                    &format!("{prefix}.tcn1"),
                    (cout, cout),
                    stride,
                    &mut init,
                );
                let residual = if i == 0 {
                    Residual::Zero
                } else if cin == cout && stride == 1 {
                    Residual::Identity
                } else {
                    let name = format!("{prefix}.residual");
                    Residual::Unit(UnitTcn::new(g, &name, (cin, cout), stride, &mut init))
                };
                Block { gcn, tcn, residual }
            })
            .collect();
        let fc_std = (2.0 / k as f32).sqrt();
        let fc_weight = g.parameter(
            "fc.weight",
            &[k, FEATURES],
            init.normal(k * FEATURES, 0.0, fc_std),
        );
        // Only the weight is re-initialised; the bias keeps PyTorch's default U(±1/√fan_in).
        let bound = 1.0 / (FEATURES as f32).sqrt();
        let fc_bias = g.parameter("fc.bias", &[k], init.uniform(k, -bound, bound));
        Self {
            config,
            data_bn,
            blocks,
            fc_weight,
            fc_bias,
        }
    }

    pub fn config(&self) -> &CtrGcnConfig {
        &self.config
    }

    /// Logits (N, K) of a batch `x` (N, 3, T, V, M).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        let [n, c, t, v, m] = shape[..] else {
            panic!("CTR-GCN takes (N, C, T, V, M), got {shape:?}");
        };
        assert_eq!(
            (c, v, m),
            (IN_CHANNELS, self.config.joints(), self.config.persons),
            "input {shape:?} does not fit the model"
        );
        // data_bn normalises each (person, joint, coordinate) channel over (N, T).
        let h = permute(g, x, &shape, &[0, 4, 3, 1, 2], &[n, m * v * c, t]);
        let h = self.data_bn.apply(g, h, mode);
        let mut h = permute(g, h, &[n, m, v, c, t], &[0, 1, 3, 4, 2], &[n * m, c, t, v]);
        for block in &self.blocks {
            let y = block.gcn.forward(g, h, mode);
            let y = block.tcn.forward(g, y, mode);
            let y = match &block.residual {
                Residual::Zero => y,
                Residual::Identity => add(g, y, h),
                Residual::Unit(unit) => {
                    let r = unit.forward(g, h, mode);
                    add(g, y, r)
                }
            };
            h = relu(g, y);
        }
        let hs = g.shape(h).to_vec();
        let h = reshape(g, h, &[n, m, hs[1], hs[2] * hs[3]]);
        let pooled = mean(g, h, &[1, 3]);
        linear(g, pooled, self.fc_weight, Some(self.fc_bias))
    }
}
