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

/// The bits of `outputs` after one run of `g` on `inputs` with the kernel variants `tuning`:
/// variants that add in the same order give the same bits.
pub fn bits_under(
    tuning: sfhead::gpu::Tuning,
    g: &sfhead::engine::Graph,
    inputs: &[(sfhead::engine::TensorId, &[f32])],
    outputs: &[sfhead::engine::TensorId],
) -> Vec<Vec<u32>> {
    use sfhead::engine::{Executor, Store};
    let exe = Executor::compile_tuned(
        &sfhead::testing::gpu(),
        g,
        &mut Store::new(),
        outputs,
        tuning,
    )
    .expect("graph compiles");
    for &(t, data) in inputs {
        exe.write(t, data).unwrap();
    }
    exe.run();
    outputs
        .iter()
        .map(|&t| exe.read(t).unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// A fixed, seed-free input for snapshots: smooth values in about [−1, 1].
pub fn fixed(n: usize, phase: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.7 + phase).sin()).collect()
}
