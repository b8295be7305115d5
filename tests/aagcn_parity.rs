//! MS-AAGCN (2s-AGCN's `aagcn.py`, `Backbone::Aagcn`) on the engine against the PyTorch
//! reference (tests/reference/aagcn.py): one training step on four real NTU clips at 16 frames
//! gives the same logits, loss, BN running statistics and parameter gradients, each within
//! `ENVELOPE_MULTIPLE` × PyTorch's own float32 envelope plus the floor (tests/common/parity.rs).
//!
//! As for ST-GCN, the fixture (tests/fixtures/README.md, `aagcn_ntu60.safetensors`) holds no
//! weights: both sides compute them by the formula of tests/reference/make_stgcn_fixture.py with
//! the rows make_aagcn_fixture.py adds (tests/common/formula_fixture.rs), checked first against
//! recorded outputs and per-tensor checksums; gradients of more than 4,096 values are compared
//! through a sketch of ten projections each.
//!
//! Plain 2s-AGCN (`agcn.py`, `Backbone::Agcn`) is checked the same way on its own fixture,
//! `aagcn_ntu60_plain.safetensors`.

mod common;

use std::path::{Path, PathBuf};

use common::formula_fixture::{
    BATCHES_TRACKED, FULL_GRADIENT_MAX, Fixture, SKETCH_VECTORS, assert_declares_state_dict,
    check_training_step, parameter_count, rewritten,
};
use sfhead::data::Place;
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset};

const FORMAT: &str = "sfhead-aagcn-fixture-1";
const PLAIN_FORMAT: &str = "sfhead-agcn-fixture-1";

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aagcn_ntu60.safetensors")
}

fn fixture() -> Fixture {
    Fixture::load(&fixture_path(), FORMAT).unwrap_or_else(|e| panic!("{e}"))
}

fn plain_fixture() -> Fixture {
    let path = fixture_path().with_file_name("aagcn_ntu60_plain.safetensors");
    Fixture::load(&path, PLAIN_FORMAT).unwrap_or_else(|e| panic!("{e}"))
}

fn model(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Aagcn)
}

fn plain_model(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Agcn)
}

/// The conv biases that feed a training-mode BN, which removes them (`conv_d` through the sum
/// of the subsets): their exact gradient is zero. Those of `conv_a` and `conv_b` (through the
/// Gram matrix) and of the attention layers are not.
fn cancelled_by_batch_norm(key: &str) -> bool {
    key.strip_suffix(".bias").is_some_and(|prefix| {
        prefix.contains(".conv_d.")
            || [".down.0", ".tcn1.conv", ".residual.conv"]
                .iter()
                .any(|owner| prefix.ends_with(owner))
    })
}

#[test]
fn the_formula_reproduces_the_reference_weights() {
    for f in [fixture(), plain_fixture()] {
        check_formula(&f);
    }
}

fn check_formula(f: &Fixture) {
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
    assert_declares_state_dict(&plain_fixture(), plain_model(Dataset::Ntu60));
}

#[test]
fn parameter_counts_are_the_reference_counts() {
    // tests/reference/aagcn.py; NTU120's is the SF-Head paper's.
    for (dataset, count) in [
        (Dataset::Ntu60, 3_781_668),
        (Dataset::Ntu120, 3_797_088),
        (Dataset::Ucla, 3_753_440),
    ] {
        assert_eq!(parameter_count(model(dataset)), count, "{dataset:?}");
    }
    // Plain 2s-AGCN, also by tests/reference/aagcn.py; NTU120's as backbones spec §4 counts.
    for (dataset, count) in [
        (Dataset::Ntu60, 3_469_510),
        (Dataset::Ntu120, 3_484_930),
        (Dataset::Ucla, 3_449_730),
    ] {
        assert_eq!(parameter_count(plain_model(dataset)), count, "{dataset:?}");
    }
}

#[test]
fn a_damaged_fixture_is_refused_with_its_place() {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap();

    let missing = "grad.l4.gcn1.alpha";
    let damaged = rewritten(&bytes, |k| k != missing, |_| {});
    let e = Fixture::decode(&path, &damaged, FORMAT).unwrap_err();
    assert_eq!(
        (e.path.as_path(), &e.place),
        (path.as_path(), &Place::Key(missing.into()))
    );

    // A Conv1d weight whose recorded value the formula does not reproduce.
    let damaged = rewritten(
        &bytes,
        |_| true,
        |m| {
            let checks = m.get_mut("formula_checks").unwrap();
            *checks = checks.replace("l2.gcn1.conv_ta.weight 575", "l2.gcn1.conv_ta.weight 574");
        },
    );
    let e = Fixture::decode(&path, &damaged, FORMAT)
        .unwrap()
        .weights()
        .unwrap_err();
    assert_eq!(e.place, Place::Key("formula.noise".into()));
    assert!(
        e.to_string().contains("`l2.gcn1.conv_ta.weight` at 574"),
        "{e}"
    );

    // An ST-GCN fixture is not an MS-AAGCN one.
    let stgcn = path.with_file_name("stgcn_ntu60.safetensors");
    let e = Fixture::load(&stgcn, FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("__metadata__.format".into()));
}

#[test]
fn one_training_step_matches_pytorch() {
    let f = fixture();
    assert_eq!(f.metadata["dataset"], "ntu60");
    check_training_step(
        &f,
        model(Dataset::Ntu60),
        cancelled_by_batch_norm,
        "MS-AAGCN step",
    );
}

#[test]
fn one_plain_agcn_training_step_matches_pytorch() {
    let f = plain_fixture();
    assert_eq!(f.metadata["model"], "agcn");
    // The softmax over the rows u of θᵀφ removes conv_a's bias, a term independent of u.
    let cancelled = |key: &str| {
        cancelled_by_batch_norm(key) || key.contains(".conv_a.") && key.ends_with(".bias")
    };
    check_training_step(&f, plain_model(Dataset::Ntu60), cancelled, "2s-AGCN step");
}
