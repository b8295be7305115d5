//! CTR-GCN (reference-spec §1) as one graph: `data_bn` over (M·V·C) channels, ten blocks of
//! unit_gcn → MS-TCN with a residual, and a head that averages over frames, joints and persons
//! before a Linear layer. Parameters and buffers carry PyTorch's state-dict keys in its order.
//!
//! With SF-Head (reference-spec §2.6) a head reads the unit_gcn output of each chosen block: as a
//! training-only tap (the TCN consumes the GCN output unchanged, the heads only add their losses'
//! gradients, and evaluation is plain CTR-GCN) or in-line (the TCN consumes the head's output).
//! The heads' tensors follow `fc` as `sf_heads.{i}.<key>`.

use super::ModelOutput;
use super::aagcn::{self, AaGcnUnit, AgcnUnit};
use super::blockgcn::TopologyRows;
use super::init::Init;
use super::layers::{person_joint_bn, pool_persons};
use super::ms_tcn::{BlockResidual, MsTcn, UnitTcn};
use super::sf_attach::AttachedHeads;
use super::sf_head::{ChannelError, SfFeatures, SfLossConfig};
use super::stgcn::{self, StGcnUnit};
use super::topology::{Hierarchy, Topology};
use super::unit_gcn::{UnitGcn, UnitGcnConfig};
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::{BatchNorm, Mode};
use crate::ops::linear::linear;

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
    /// PKU-MMD Phase I: 51 actions, Kinect v2's 25 joints, up to two persons.
    Pku,
}

impl Dataset {
    pub fn config(self) -> CtrGcnConfig {
        let (classes, persons, topology) = match self {
            Dataset::Ntu60 => (60, 2, "ntu25"),
            Dataset::Ntu120 => (120, 2, "ntu25"),
            Dataset::Ucla => (10, 1, "ucla20"),
            Dataset::Pku => (51, 2, "ntu25"),
        };
        CtrGcnConfig {
            backbone: Backbone::Ctrgcn,
            classes,
            persons,
            topology: Topology::shipped(topology).expect("shipped topologies are valid"),
            sf_head: None,
            blockgcn_topology: TopologyRows::default(),
            hdgcn_com: None,
        }
    }
}

/// Whether the network consumes SF-Head's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Training-only: the heads read the GCN output and add their losses; the TCN consumes the
    /// GCN output unchanged, so evaluation is plain CTR-GCN.
    Tap,
    /// The TCN consumes the head's output, in training and evaluation.
    Inline,
}

/// Every block, the default attachment.
pub const ALL_BLOCKS: [usize; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
/// FR-Head's choice of blocks.
pub const FRHEAD_BLOCKS: [usize; 4] = [1, 5, 8, 10];

/// SF-Head on CTR-GCN: where, how, and the losses.
#[derive(Debug, Clone, PartialEq)]
pub struct SfHeadOptions {
    pub placement: Placement,
    /// 1-based block numbers, ascending.
    pub blocks: Vec<usize>,
    pub groups: usize,
    pub loss: SfLossConfig,
}

impl Default for SfHeadOptions {
    fn default() -> Self {
        Self {
            placement: Placement::Tap,
            blocks: ALL_BLOCKS.to_vec(),
            groups: super::sf_head::DEFAULT_GROUPS,
            loss: SfLossConfig::default(),
        }
    }
}

/// Block numbers from text: `all` (the `count` blocks of the backbone), `frhead` (FR-Head's 1,
/// 5, 8, 10) or a comma-separated list, returned ascending without repeats.
pub fn parse_blocks(text: &str, count: usize) -> Result<Vec<usize>, String> {
    let mut blocks = match text.trim() {
        "all" => (1..=count).collect(),
        "frhead" => FRHEAD_BLOCKS.to_vec(),
        list => list
            .split(',')
            .map(|b| b.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                format!(
                    "SF-Head blocks: all, frhead or block numbers such as \"1,5,8,10\", not `{list}`"
                )
            })?,
    };
    blocks.sort_unstable();
    blocks.dedup();
    if blocks.is_empty() {
        return Err("SF-Head blocks: at least one block".into());
    }
    Ok(blocks)
}

impl SfHeadOptions {
    /// Refuses block numbers the backbone does not have and widths the groups cannot split.
    pub fn check(&self, backbone: Backbone) -> Result<(), String> {
        let widths = backbone.block_widths();
        for &b in &self.blocks {
            let Some(&width) = b.checked_sub(1).and_then(|i| widths.get(i)) else {
                return Err(format!(
                    "SF-Head block {b}: {} has blocks 1 to {}",
                    backbone.title(),
                    widths.len()
                ));
            };
            ChannelError::check(&format!("l{b}"), width, self.groups).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The GCN backbones built on CTR-GCN's skeleton (the same data_bn, block widths and strides,
/// residuals and head); they differ in the units of a block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backbone {
    /// CTR-GCN: CTR-GC graph convolution and the multi-scale TCN.
    #[default]
    Ctrgcn,
    /// ST-GCN as CTR-GCN's `baseline.py` (`src/model/stgcn.rs`).
    Stgcn,
    /// MS-AAGCN, 2s-AGCN's `aagcn.py` with the adaptive graph and STC attention
    /// (`src/model/aagcn.rs`).
    Aagcn,
    /// Plain 2s-AGCN, `agcn.py` (`src/model/aagcn.rs`).
    Agcn,
    /// InfoGCN, its own nine-block network (`src/model/infogcn.rs`).
    Infogcn,
    /// BlockGCN, its own network of ten blocks at widths 128 and 256 (`src/model/blockgcn.rs`).
    Blockgcn,
    /// HD-GCN, CTR-GCN's skeleton with hierarchically decomposed graph units
    /// (`src/model/hdgcn.rs`).
    Hdgcn,
    /// ProtoGCN, pyskl's ten blocks at widths 96, 192 and 384 with its prototype head
    /// (`src/model/protogcn.rs`).
    Protogcn,
}

impl Backbone {
    /// The name of the backbone in configurations, checkpoints and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ctrgcn => "ctrgcn",
            Self::Stgcn => "stgcn",
            Self::Aagcn => "aagcn",
            Self::Agcn => "agcn",
            Self::Infogcn => "infogcn",
            Self::Blockgcn => "blockgcn",
            Self::Hdgcn => "hdgcn",
            Self::Protogcn => "protogcn",
        }
    }

    /// What a person calls it.
    pub fn title(self) -> &'static str {
        match self {
            Self::Ctrgcn => "CTR-GCN",
            Self::Stgcn => "ST-GCN",
            Self::Aagcn => "MS-AAGCN",
            Self::Agcn => "2s-AGCN",
            Self::Infogcn => "InfoGCN",
            Self::Blockgcn => "BlockGCN",
            Self::Hdgcn => "HD-GCN",
            Self::Protogcn => "ProtoGCN",
        }
    }

    /// The output width of each block, l1 first.
    pub fn block_widths(self) -> Vec<usize> {
        match self {
            Self::Infogcn => super::infogcn::BLOCKS.iter().map(|b| b.1).collect(),
            Self::Blockgcn => super::blockgcn::BLOCKS.iter().map(|b| b.1).collect(),
            Self::Protogcn => super::protogcn::BLOCKS.iter().map(|b| b.1).collect(),
            _ => BLOCKS.iter().map(|b| b.1).collect(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Ctrgcn,
            Self::Stgcn,
            Self::Aagcn,
            Self::Agcn,
            Self::Infogcn,
            Self::Blockgcn,
            Self::Hdgcn,
            Self::Protogcn,
        ]
        .into_iter()
        .find(|b| b.name() == name)
    }
}

#[derive(Debug, Clone)]
pub struct CtrGcnConfig {
    pub backbone: Backbone,
    pub classes: usize,
    /// M: persons per sample, folded into the batch (row n·M + m).
    pub persons: usize,
    pub topology: Topology,
    pub sf_head: Option<SfHeadOptions>,
    /// BlockGCN: which sample's topology features each person row gets.
    pub blockgcn_topology: TopologyRows,
    /// HD-GCN: the 0-based centre of mass of its hierarchy; `None` takes the topology's first.
    pub hdgcn_com: Option<usize>,
}

impl CtrGcnConfig {
    pub fn joints(&self) -> usize {
        self.topology.joint_count()
    }

    /// The same benchmark's network with another backbone.
    pub fn with_backbone(self, backbone: Backbone) -> Self {
        Self { backbone, ..self }
    }

    /// The (N, C, T, V, M) of an input of `shape`.
    ///
    /// # Panics
    /// If it is not a batch of this network's clips (C = 3, the skeleton's V, M persons).
    pub fn input_dims(&self, shape: &[usize]) -> [usize; 5] {
        let title = self.backbone.title();
        let [n, c, t, v, m] = shape[..] else {
            panic!("{title} takes (N, C, T, V, M), got {shape:?}");
        };
        assert_eq!(
            (c, v, m),
            (IN_CHANNELS, self.joints(), self.persons),
            "{title}: input {shape:?} does not fit the model"
        );
        [n, c, t, v, m]
    }

    /// HD-GCN's hierarchy: around `hdgcn_com`, else the topology file's first.
    ///
    /// # Panics
    /// If the topology has no such hierarchy (configurations are checked before a model is built).
    pub fn hierarchy(&self) -> &Hierarchy {
        let found = match self.hdgcn_com {
            Some(com) => self.topology.hierarchy(com),
            None => self.topology.hdgcn().first(),
        };
        found.unwrap_or_else(|| {
            panic!(
                "topology {} has no HD-GCN hierarchy around {:?}",
                self.topology.name(),
                self.hdgcn_com.map(|c| c + 1)
            )
        })
    }

    /// The same network with SF-Head attached as `options` say.
    pub fn with_sf_head(self, options: SfHeadOptions) -> Self {
        Self {
            sf_head: Some(options),
            ..self
        }
    }
}

// Boxed: a block holds one unit of each kind, and the kinds differ much in size.
enum Gcn {
    Ctr(Box<UnitGcn>),
    St(Box<StGcnUnit>),
    Aa(Box<AaGcnUnit>),
    Agcn(Box<AgcnUnit>),
}

enum Tcn {
    Ms(Box<MsTcn>),
    /// One k×1 conv + BN (ST-GCN's k = 5, MS-AAGCN's and 2s-AGCN's k = 9).
    Unit(UnitTcn),
}

struct Block {
    gcn: Gcn,
    tcn: Tcn,
    residual: BlockResidual,
}

pub struct CtrGcn {
    config: CtrGcnConfig,
    data_bn: BatchNorm,
    blocks: Vec<Block>,
    fc_weight: TensorId,
    fc_bias: TensorId,
    sf_heads: AttachedHeads,
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
                let (gcn_prefix, tcn_prefix) = (format!("{prefix}.gcn1"), format!("{prefix}.tcn1"));
                // ST-GCN's, MS-AAGCN's and 2s-AGCN's TCN: one k×1 conv + BN.
                let unit_tcn = |g: &mut Graph, kernel: usize, init: &mut Init| {
                    Tcn::Unit(UnitTcn::new(
                        g,
                        &tcn_prefix,
                        (cout, cout),
                        kernel,
                        stride,
                        init,
                    ))
                };
                let (gcn, tcn) = match config.backbone {
                    Backbone::Ctrgcn => (
                        Gcn::Ctr(Box::new(UnitGcn::new(
                            g,
                            &gcn_prefix,
                            &unit,
                            adjacency.as_slice(),
                            &mut init,
                        ))),
                        Tcn::Ms(Box::new(MsTcn::new(
                            g,
                            &tcn_prefix,
                            (cout, cout),
                            stride,
                            &mut init,
                        ))),
                    ),
                    Backbone::Stgcn => {
                        let gcn = StGcnUnit::new(g, &gcn_prefix, (cin, cout), v, &mut init);
                        let tcn = unit_tcn(g, stgcn::TEMPORAL_KERNEL, &mut init);
                        (Gcn::St(Box::new(gcn)), tcn)
                    }
                    Backbone::Aagcn => {
                        let a = adjacency.as_slice();
                        let gcn = AaGcnUnit::new(g, &gcn_prefix, (cin, cout), a, v, &mut init);
                        let tcn = unit_tcn(g, aagcn::TEMPORAL_KERNEL, &mut init);
                        (Gcn::Aa(Box::new(gcn)), tcn)
                    }
                    Backbone::Agcn => {
                        let a = adjacency.as_slice();
                        let gcn = AgcnUnit::new(g, &gcn_prefix, (cin, cout), a, v, &mut init);
                        let tcn = unit_tcn(g, aagcn::TEMPORAL_KERNEL, &mut init);
                        (Gcn::Agcn(Box::new(gcn)), tcn)
                    }
                    Backbone::Infogcn
                    | Backbone::Blockgcn
                    | Backbone::Hdgcn
                    | Backbone::Protogcn => {
                        unreachable!("{} is a network of its own", config.backbone.title())
                    }
                };
                let residual = BlockResidual::of(i > 0, (cin, cout), stride, || {
                    let name = format!("{prefix}.residual");
                    UnitTcn::new(g, &name, (cin, cout), 1, stride, &mut init)
                });
                Block { gcn, tcn, residual }
            })
            .collect::<Vec<Block>>();
        let fc_std = (2.0 / k as f32).sqrt();
        let fc_weight = g.parameter(
            "fc.weight",
            &[k, FEATURES],
            init.normal(k * FEATURES, 0.0, fc_std),
        );
        // Only the weight is re-initialised; the bias keeps PyTorch's default U(±1/√fan_in).
        let bound = 1.0 / (FEATURES as f32).sqrt();
        let fc_bias = g.parameter("fc.bias", &[k], init.uniform(k, -bound, bound));
        let widths = BLOCKS.map(|b| b.1);
        let sf_heads = AttachedHeads::new(g, config.sf_head.as_ref(), &widths, &mut init);
        Self {
            config,
            data_bn,
            blocks,
            fc_weight,
            fc_bias,
            sf_heads,
        }
    }

    /// Logits (N, K) of a batch `x` (N, 3, T, V, M).
    pub fn forward(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        self.forward_with_losses(g, x, mode).logits
    }

    /// Logits and, in training with SF-Head, its two losses (F-CL as `con`, F-RL as `red`),
    /// combined over the heads and weighted as the options say.
    pub fn forward_with_losses(&self, g: &mut Graph, x: TensorId, mode: Mode) -> ModelOutput {
        let shape = g.shape(x).to_vec();
        let [n, _, _, _, m] = self.config.input_dims(&shape);
        let mut h = person_joint_bn(g, &self.data_bn, x, mode);
        let mut features: Vec<SfFeatures> = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let y = match &block.gcn {
                Gcn::Ctr(unit) => unit.forward(g, h, mode),
                Gcn::St(unit) => unit.forward(g, h, mode),
                Gcn::Aa(unit) => unit.forward(g, h, mode),
                Gcn::Agcn(unit) => unit.forward(g, h, mode),
            };
            let y = self.sf_heads.apply(g, i, y, mode, &mut features);
            let y = match &block.tcn {
                Tcn::Ms(tcn) => tcn.forward(g, y, mode),
                Tcn::Unit(tcn) => tcn.forward(g, y, mode),
            };
            h = block.residual.add_relu_to(g, y, h, mode);
        }
        let pooled = pool_persons(g, h, m);
        let logits = linear(g, pooled, self.fc_weight, Some(self.fc_bias));
        let losses = self.sf_heads.losses(g, &features, n, m, mode);
        ModelOutput {
            losses,
            features: Some(pooled),
            ..logits.into()
        }
    }
}
