//! Ten SGD steps against PyTorch's (tests/fixtures/trajectory_ntu60.safetensors): from the same
//! weights, on the same batch, the engine's loss at every step stays within a small multiple of
//! how far PyTorch's own float32 runs on perturbed inputs land from its float64 run. One step
//! shows the gradients; this shows that updates, momentum, weight decay and BN running
//! statistics compound as PyTorch's do.

mod common;

use std::path::Path;

use common::parity::envelope_bound;
use common::sfhead_fixture::{Trajectory, TrajectoryFixture};
use sfhead::engine::Store;
use sfhead::model::ctrgcn::{CtrGcn, CtrGcnConfig, Dataset, SfHeadOptions};
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::sgd::SgdConfig;
use sfhead::testing::gpu;
use sfhead::train::TrainStep;

const LR: f32 = 0.1;

fn fixture() -> TrajectoryFixture {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trajectory_ntu60.safetensors");
    TrajectoryFixture::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn follows_pytorch(f: &TrajectoryFixture, model: CtrGcnConfig, want: &Trajectory, name: &str) {
    let gpu = gpu();
    let mut store = Store::new();
    let sgd = SgdConfig {
        momentum: 0.9,
        weight_decay: 4e-4,
        nesterov: true,
    };
    let step = TrainStep::new(&gpu, &mut store, &f.x.shape, sgd, |g, x, _labels| {
        CtrGcn::new(g, model, 0).forward_with_losses(g, x, Mode::Train)
    })
    .unwrap();
    // The plain run starts from the backbone part of the same state.
    for (key, t) in &f.weights.floats.entries {
        if store.shape(key).is_some() {
            store.write(&gpu, key, &t.data).unwrap();
        }
    }
    for (key, count) in &f.weights.batches_tracked.entries {
        if store.shape(key).is_some() {
            store.write(&gpu, key, &[*count as f32]).unwrap();
        }
    }
    let labels: Vec<u32> = f.y.iter().map(|&y| y as u32).collect();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (k, (&want, &envelope)) in want.loss.iter().zip(&want.envelope).enumerate() {
        let got = step.step(&f.x.data, &labels, LR).unwrap();
        let error = (f64::from(got) - f64::from(want)).abs() / f64::from(want).abs();
        let bound = envelope_bound(envelope / want.abs());
        report.push(format!("{got:.6} ({want:.6})"));
        // NaN fails too.
        if error.is_nan() || error > bound {
            failures.push(format!(
                "step {k}: loss {got} against {want}, relative error {error:.3e} over {bound:.3e}"
            ));
        }
    }
    eprintln!("{name} losses (PyTorch float64): {}", report.join(", "));
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

#[test]
fn ctrgcn_follows_pytorch_for_ten_steps() {
    let f = fixture();
    follows_pytorch(&f, Dataset::Ntu60.config(), &f.ctrgcn, "CTR-GCN");
}

#[test]
fn ctrgcn_with_sf_head_follows_pytorch_for_ten_steps() {
    let f = fixture();
    let model = Dataset::Ntu60
        .config()
        .with_sf_head(SfHeadOptions::default());
    follows_pytorch(&f, model, &f.sfhead, "CTR-GCN + SF-Head");
}
