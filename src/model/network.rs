//! The network a configuration names, whatever its backbone: what the trainer, the evaluator,
//! the benchmarks and the interop commands build.

use super::ModelOutput;
use super::blockgcn::BlockGcn;
use super::ctrgcn::{Backbone, CtrGcn, CtrGcnConfig};
use super::hdgcn::HdGcn;
use super::infogcn::InfoGcn;
use super::protogcn::ProtoGcn;
use crate::engine::{Graph, TensorId};
use crate::ops::batch_norm::Mode;

pub enum Network {
    /// The backbones on CTR-GCN's ten-block skeleton.
    Gcn(CtrGcn),
    /// InfoGCN's nine blocks and information-bottleneck head.
    Info(InfoGcn),
    /// BlockGCN's ten blocks with their topology branch.
    Block(BlockGcn),
    /// HD-GCN's ten blocks of hierarchical graph units.
    Hd(HdGcn),
    /// ProtoGCN's ten blocks and its prototype reconstruction head.
    Proto(ProtoGcn),
}

impl Network {
    /// Declares every parameter and buffer in the official state-dict order, initialised from
    /// `seed`.
    pub fn new(g: &mut Graph, config: CtrGcnConfig, seed: u64) -> Self {
        match config.backbone {
            Backbone::Infogcn => Self::Info(InfoGcn::new(g, config, seed)),
            Backbone::Blockgcn => Self::Block(BlockGcn::new(g, config, seed)),
            Backbone::Hdgcn => Self::Hd(HdGcn::new(g, config, seed)),
            Backbone::Protogcn => Self::Proto(ProtoGcn::new(g, config, seed)),
            _ => Self::Gcn(CtrGcn::new(g, config, seed)),
        }
    }

    /// The forward of a batch `x` (N, 3, T, V, M). `labels` (N) are only read by training-mode
    /// losses that need them.
    pub fn forward(
        &self,
        g: &mut Graph,
        x: TensorId,
        labels: Option<TensorId>,
        mode: Mode,
    ) -> ModelOutput {
        match self {
            Self::Gcn(model) => model.forward_with_losses(g, x, mode),
            Self::Info(model) => model.forward(g, x, labels, mode),
            Self::Block(model) => model.forward(g, x, mode),
            Self::Hd(model) => model.forward(g, x, mode),
            Self::Proto(model) => model.forward(g, x, labels, mode),
        }
    }
}
