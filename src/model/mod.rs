//! Models: skeleton topologies and, built on them, the networks. Each network builds its
//! forward graph from a config and owns its parameter names and initialisation.

pub mod aagcn;
pub mod blockgcn;
pub mod ctrgcn;
pub mod hdgcn;
pub mod infogcn;
pub mod init;
pub mod layers;
pub mod ms_tcn;
pub mod network;
pub mod protogcn;
pub mod sf_attach;
pub mod sf_head;
pub mod stgcn;
pub mod summary;
pub mod tiny;
pub mod topology;
pub mod unit_gcn;

pub use topology::{Hierarchy, ParentTree, SpatialAdjacency, Topology};

use crate::engine::TensorId;

/// A loss a model adds to the cross-entropy of its logits: `weight · value`, `value` one value.
#[derive(Debug, Clone, Copy)]
pub struct LossTerm {
    pub name: &'static str,
    pub value: TensorId,
    pub weight: f32,
}

/// What a model's forward produces: logits, any losses of its own, and the pooled features the
/// classifier reads (for pictures of the feature space), where the model has them.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    pub logits: TensorId,
    pub losses: Vec<LossTerm>,
    pub features: Option<TensorId>,
    /// Label smoothing of the classification loss (0: plain cross-entropy).
    pub smoothing: f32,
    /// Inputs the training step fills with fresh N(0, 1) draws before every step.
    pub noise: Vec<TensorId>,
}

impl From<TensorId> for ModelOutput {
    fn from(logits: TensorId) -> Self {
        Self {
            logits,
            losses: Vec::new(),
            features: None,
            smoothing: 0.0,
            noise: Vec::new(),
        }
    }
}
