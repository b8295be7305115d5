//! CTR-GCN + SF-Head on the engine against the PyTorch reference (tests/reference/sf_head.py),
//! tensor for tensor: one training step on four real NTU clips (16 frames) in tap and in-line
//! mode gives the same logits, the same CE, F-CL and F-RL, every parameter gradient and the BN
//! running statistics, each within a small multiple of PyTorch's own float32 envelope
//! (tests/common/parity.rs).

mod common;

use std::path::{Path, PathBuf};

use common::ctrgcn_fixture::cancelled_by_batch_norm;
use common::parity::{Tally, relative_l2};
use common::sfhead_fixture::StepFixture;
use sfhead::engine::Store;
use sfhead::model::ctrgcn::{CtrGcn, Dataset, Placement, SfHeadOptions};
use sfhead::ops::batch_norm::Mode;
use sfhead::testing::gpu;
use sfhead::train::{StepOptions, TrainStep};

fn fixture(name: &str) -> StepFixture {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    StepFixture::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn step_matches_pytorch(f: &StepFixture, placement: Placement) {
    assert_eq!(f.metadata["mode"], format!("{placement:?}").to_lowercase());
    let gpu = gpu();
    let mut store = Store::new();
    let options = StepOptions {
        sgd: None,
        keep_gradients: true,
    };
    let model = Dataset::Ntu60.config().with_sf_head(SfHeadOptions {
        placement,
        ..SfHeadOptions::default()
    });
    let step = TrainStep::build(&gpu, &mut store, &f.x.shape, options, |g, x, _labels| {
        let output = CtrGcn::new(g, model, 0).forward_with_losses(g, x, Mode::Train);
        // The engine's state dict is PyTorch's, key for key and in order.
        let stored: Vec<&str> = g
            .tensors()
            .filter(|(_, t)| t.role.is_stored())
            .map(|(_, t)| t.name.as_str())
            .collect();
        let want: Vec<&str> = f.metadata["state_dict_keys"].lines().collect();
        assert_eq!(stored, want);
        output
    })
    .unwrap();
    for (key, t) in &f.weights.floats.entries {
        store.write(&gpu, key, &t.data).unwrap();
    }
    for (key, count) in &f.weights.batches_tracked.entries {
        store.write(&gpu, key, &[*count as f32]).unwrap();
    }
    let labels: Vec<u32> = f.y.iter().map(|&y| y as u32).collect();
    let loss = step.step(&f.x.data, &labels, 0.0).unwrap();

    let mut tally = Tally::default();
    let envelope = |key: &str| *f.output_envelope.get(key).unwrap();
    let logits = step.logits().unwrap();
    tally.check(
        "logits",
        relative_l2(&logits, &f.logits.data),
        envelope("logits"),
    );
    let scalar_error = |got: f32, want: f32| {
        (f64::from(got) - f64::from(want)).abs() / f64::from(want).abs().max(1e-30)
    };
    tally.check("loss", scalar_error(loss, f.loss("loss")), envelope("loss"));
    for (name, value) in step.loss_terms().unwrap() {
        let key = format!("loss.{name}");
        tally.check(&key, scalar_error(value, f.loss(&key)), envelope(&key));
    }

    let gradients = step.gradients().unwrap();
    let got_keys: Vec<&str> = gradients.iter().map(|(k, _)| k.as_str()).collect();
    let want_keys: Vec<&str> = f.grads.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got_keys, want_keys, "parameters with a gradient");
    let largest = gradients
        .iter()
        .map(|(_, g)| max_abs(g))
        .fold(0.0, f32::max);
    for (key, got) in &gradients {
        if cancelled_by_batch_norm(key) {
            // The exact gradient is zero; only rounding noise is left.
            assert!(max_abs(got) <= 1e-5 * largest, "{key}: {}", max_abs(got));
            continue;
        }
        let want = &f.grads.get(key).unwrap().data;
        let error = relative_l2(got, want);
        tally.check(&format!("grad.{key}"), error, *f.envelope.get(key).unwrap());
    }
    for (key, want) in &f.running_after.entries {
        let got = store.read(&gpu, key).unwrap();
        assert!(
            relative_l2(&got, &want.data) <= 1e-4,
            "{key} after the step"
        );
    }
    tally.finish(&format!("{placement:?} step"));
}

#[test]
fn tap_step_matches_pytorch() {
    step_matches_pytorch(&fixture("ctrgcn_sfhead_tap.safetensors"), Placement::Tap);
}

#[test]
fn inline_step_matches_pytorch() {
    step_matches_pytorch(
        &fixture("ctrgcn_sfhead_inline.safetensors"),
        Placement::Inline,
    );
}
