//! Models: skeleton topologies and, built on them, the networks. Each network builds its
//! forward graph from a config and owns its parameter names and initialisation.

pub mod ctrgcn;
pub mod init;
pub mod layers;
pub mod ms_tcn;
pub mod summary;
pub mod tiny;
pub mod topology;
pub mod unit_gcn;

pub use topology::{ParentTree, SpatialAdjacency, Topology};
