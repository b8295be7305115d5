//! Models: skeleton topologies and, built on them, the networks.

pub mod topology;

pub use topology::{ParentTree, SpatialAdjacency, Topology};
