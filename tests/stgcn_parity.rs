//! ST-GCN (CTR-GCN's `baseline.py`, `Backbone::Stgcn`) on the engine against the PyTorch
//! reference (tests/reference/stgcn.py): one training step on four real NTU clips at 16 frames
//! gives the same logits, loss, BN running statistics and parameter gradients, each within
//! `ENVELOPE_MULTIPLE` × PyTorch's own float32 envelope plus the floor (tests/common/parity.rs).
//!
//! The fixture stays small (tests/fixtures/README.md, `stgcn_ntu60.safetensors`): the weights are
//! not stored but computed by the formula of tests/reference/make_stgcn_fixture.py
//! (tests/common/formula_fixture.rs), which is first checked against the outputs and per-tensor checksums the fixture records; gradients
//! of more than 4,096 values are compared through a sketch of ten projections each.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::formula_fixture::{
    BATCHES_TRACKED, FULL_GRADIENT_MAX, Fixture, SKETCH_VECTORS, assert_declares_state_dict,
    check_training_step, formula, parameter_count, rewritten,
};
use sfhead::data::Place;
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset};

const FORMAT: &str = "sfhead-stgcn-fixture-1";

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stgcn_ntu60.safetensors")
}

fn fixture() -> Fixture {
    Fixture::load(&fixture_path(), FORMAT).unwrap_or_else(|e| panic!("{e}"))
}

fn model(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Stgcn)
}

/// A conv bias: every one in ST-GCN feeds a training-mode BN (`conv_d` through the sum of the
/// subsets), which removes it, so its exact gradient is zero and the reference's is rounding
/// noise.
fn cancelled_by_batch_norm(key: &str, batch_norms: &BTreeSet<String>) -> bool {
    key.strip_suffix(".bias")
        .is_some_and(|prefix| prefix != "fc" && !batch_norms.contains(prefix))
}

#[test]
fn the_formula_reproduces_the_reference_weights() {
    let f = fixture();
    let weights = f.weights().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(weights.entries.len(), f.checksums.entries.len());
    assert_eq!(
        f.metadata["full_gradient_max"],
        FULL_GRADIENT_MAX.to_string()
    );
    assert_eq!(f.metadata["sketch_vectors"], SKETCH_VECTORS.to_string());
    assert_eq!(f.metadata["batches_tracked"], BATCHES_TRACKED.to_string());
}

#[test]
fn the_engine_declares_the_reference_state_dict() {
    assert_declares_state_dict(&fixture(), model(Dataset::Ntu60));
}

#[test]
fn parameter_counts_are_the_reference_counts() {
    // tests/reference/stgcn.py; NTU120's is the SF-Head paper's.
    for (dataset, count) in [
        (Dataset::Ntu60, 2_092_902),
        (Dataset::Ntu120, 2_108_322),
        (Dataset::Ucla, 2_073_122),
    ] {
        assert_eq!(parameter_count(model(dataset)), count, "{dataset:?}");
    }
}

#[test]
fn a_damaged_fixture_is_refused_with_its_place() {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap();

    let missing = "sketch.l8.tcn1.conv.weight";
    let damaged = rewritten(&bytes, |k| k != missing, |_| {});
    let e = Fixture::decode(&path, &damaged, FORMAT).unwrap_err();
    assert_eq!(
        (e.path.as_path(), &e.place),
        (path.as_path(), &Place::Key(missing.into()))
    );

    // A recorded output that the formula does not reproduce.
    let damaged = rewritten(
        &bytes,
        |_| true,
        |m| {
            let checks = m.get_mut("formula_checks").unwrap();
            *checks = checks.replace("fc.bias 59", "fc.bias 58");
        },
    );
    let e = Fixture::decode(&path, &damaged, FORMAT)
        .unwrap()
        .weights()
        .unwrap_err();
    assert_eq!(e.place, Place::Key("formula.noise".into()));
    assert!(e.to_string().contains("`fc.bias` at 58"), "{e}");

    let damaged = rewritten(
        &bytes,
        |_| true,
        |m| {
            m.insert("format".into(), "sfhead-stgcn-fixture-0".into());
        },
    );
    let e = Fixture::decode(&path, &damaged, FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("__metadata__.format".into()));
}

#[test]
fn one_training_step_matches_pytorch() {
    let f = fixture();
    assert_eq!(f.metadata["dataset"], "ntu60");
    let bns = formula::batch_norms(f.entries.iter().map(|e| e.key.as_str()));
    let cancelled = |key: &str| cancelled_by_batch_norm(key, &bns);
    check_training_step(&f, model(Dataset::Ntu60), cancelled, "ST-GCN step");
}
