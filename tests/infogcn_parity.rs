//! InfoGCN (`model/infogcn.py`, `Backbone::Infogcn`) on the engine against the PyTorch reference
//! (tests/reference/infogcn.py): one training step on four real NTU clips at 16 frames, with the
//! latent sample's noise and the class prior as recorded, gives the same logits, total loss,
//! label-smoothed cross-entropy, class-prior loss and ‖mean z‖, BN running statistics and
//! parameter gradients, each within `ENVELOPE_MULTIPLE` × PyTorch's own float32 envelope plus
//! the floor (tests/common/parity.rs).
//!
//! As for ST-GCN, the fixture (tests/fixtures/README.md, `infogcn_ntu60.safetensors`) holds no
//! weights: both sides compute them by the formula of tests/reference/make_stgcn_fixture.py with
//! the rows make_aagcn_fixture.py and make_infogcn_fixture.py add
//! (tests/common/formula_fixture.rs); gradients of more than 4,096 values are compared through
//! a sketch of ten projections each.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::formula_fixture::{
    Fixture, INFOGCN_FORMAT, assert_declares_state_dict, check_training_step, parameter_count,
    rewritten,
};
use sfhead::data::Place;
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset};

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/infogcn_ntu60.safetensors")
}

fn fixture() -> Fixture {
    Fixture::load(&fixture_path(), INFOGCN_FORMAT).unwrap_or_else(|e| panic!("{e}"))
}

fn model(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Infogcn)
}

/// The entries whose exact gradient is zero: every Conv2d bias (a bias whose weight has four
/// axes) feeds a training-mode BN, and `to_joint_embedding.bias` and `pos_embedding` are
/// constant over (N, T) in each of data_bn's channels.
fn cancelled(f: &Fixture) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = ["pos_embedding", "to_joint_embedding.bias"]
        .map(String::from)
        .into();
    for e in &f.entries {
        if let Some(prefix) = e.key.strip_suffix(".weight")
            && e.shape.len() == 4
        {
            keys.insert(format!("{prefix}.bias"));
        }
    }
    keys
}

#[test]
fn the_formula_reproduces_the_reference_weights() {
    let f = fixture();
    let weights = f.weights().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(weights.entries.len(), f.checksums.entries.len());
}

#[test]
fn the_engine_declares_the_reference_state_dict() {
    assert_declares_state_dict(&fixture(), model(Dataset::Ntu60));
}

#[test]
fn parameter_counts_are_the_reference_counts() {
    // tests/reference/infogcn.py; NTU120's is backbones spec §5's.
    for (dataset, count) in [
        (Dataset::Ntu60, 1_556_807),
        (Dataset::Ntu120, 1_572_227),
        (Dataset::Ucla, 1_533_722),
    ] {
        assert_eq!(parameter_count(model(dataset)), count, "{dataset:?}");
    }
}

#[test]
fn a_damaged_fixture_is_refused_with_its_place() {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap();
    let damaged = rewritten(&bytes, |k| k != "eps", |_| {});
    let e = Fixture::decode(&path, &damaged, INFOGCN_FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("eps".into()));
    let damaged = rewritten(&bytes, |k| k != "f32_envelope.loss.mmd", |_| {});
    let e = Fixture::decode(&path, &damaged, INFOGCN_FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("f32_envelope.loss.mmd".into()));
}

#[test]
fn one_training_step_matches_pytorch() {
    let f = fixture();
    assert_eq!(f.metadata["dataset"], "ntu60");
    let cancelled = cancelled(&f);
    assert_eq!(cancelled.len(), 87, "as make_infogcn_fixture.py finds");
    let is_cancelled = |key: &str| cancelled.contains(key);
    check_training_step(&f, model(Dataset::Ntu60), is_cancelled, "InfoGCN step");
}
