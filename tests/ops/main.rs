//! Per-op correctness: GPU against the f64 CPU reference on seeded inputs of odd sizes, a
//! finite-difference gradient check with the op mid-graph, and a snapshot of the shader output
//! on a fixed input.

mod aagcn;
mod batch_norm;
mod col_norm;
mod ctrgc;
mod elementwise;
mod gemm;
mod hdgcn_ops;
mod info_losses;
mod large;
mod layer_norm;
mod layout;
mod loss_and_optim;
mod ms_tcn;
mod proto_ops;
mod reduce;
mod reparameterize;
mod sf_elementwise;
mod sf_gates;
mod sf_losses;
mod temporal;
mod topology_ops;
mod unit_gcn;

/// A fixed, seed-free input for snapshots: smooth values in about [−1, 1].
pub fn fixed(n: usize, phase: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.7 + phase).sin()).collect()
}
