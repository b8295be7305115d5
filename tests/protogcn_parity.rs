//! ProtoGCN (`model/protogcn.rs`, `Backbone::Protogcn`) on the engine against the PyTorch
//! reference (tests/reference/protogcn.py): one training step on four real NTU clips at 16
//! frames, with the PRN's dropout mask and the initial class memory as recorded, gives the same
//! logits, total loss, cross-entropy and class-specific contrastive term, BN running statistics,
//! parameter gradients and update of the class memory, each within `ENVELOPE_MULTIPLE` ×
//! PyTorch's own float32 envelope plus the floor (tests/common/parity.rs).
//!
//! As for ST-GCN, the fixture (tests/fixtures/README.md, `protogcn_ntu60.safetensors`) holds no
//! weights: both sides compute them by the formula of tests/reference/make_stgcn_fixture.py with
//! the rows the later fixture scripts add, ProtoGCN's last (tests/common/formula_fixture.rs).

mod common;

use std::path::{Path, PathBuf};

use common::formula_fixture::{
    Fixture, PROTOGCN_FORMAT, assert_declares_state_dict, check_training_step, parameter_count,
    rewritten,
};
use sfhead::data::Place;
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset};

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protogcn_ntu60.safetensors")
}

fn fixture() -> Fixture {
    Fixture::load(&fixture_path(), PROTOGCN_FORMAT).unwrap_or_else(|e| panic!("{e}"))
}

fn model(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Protogcn)
}

/// The biases whose exact gradient is zero: those of the convs that feed a training-mode BN
/// directly (make_protogcn_fixture.py's `CANCELLED_BIASES`). The temporal convs of the MS-TCN
/// branches and its bare 1×1 branch reach each joint v as b·(1 + add_coeff[v]) and are compared.
fn cancelled(key: &str) -> bool {
    let feeds_bn = [
        ".gcn.pre.0.bias",
        ".gcn.post.bias",
        ".gcn.down.0.bias",
        ".tcn.transform.2.bias",
        ".residual.conv.bias",
    ];
    key == "backbone.post.bias"
        || feeds_bn.iter().any(|suffix| key.ends_with(suffix))
        || (0..5).any(|i| key.ends_with(&format!(".tcn.branches.{i}.0.bias")))
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
    // tests/reference/protogcn.py, counting `cls_head.csc_loss.cl_fc`; NTU120's is backbones
    // spec §8's.
    for (dataset, count) in [
        (Dataset::Ntu60, 4_344_860),
        (Dataset::Ntu120, 4_367_960),
        (Dataset::Ucla, 4_249_980),
    ] {
        assert_eq!(parameter_count(model(dataset)), count, "{dataset:?}");
    }
}

#[test]
fn the_fixture_exercises_the_true_positive_mask() {
    let f = fixture();
    let class_memory = f.class_memory.as_ref().unwrap();
    // Two samples of one class are true positives, the other two are not (LABEL_RULE).
    assert_eq!(class_memory.true_positives, [0, 3]);
    assert_eq!(f.y[0], f.y[3]);
    // The reference updated exactly that class's column of the memory.
    let classes = f.logits.shape[1];
    let changed: Vec<usize> = (0..classes)
        .filter(|&k| {
            let column = |m: &[f32]| -> Vec<u32> {
                m.iter()
                    .skip(k)
                    .step_by(classes)
                    .map(|v| v.to_bits())
                    .collect()
            };
            column(&class_memory.memory.data) != column(&class_memory.memory_after.data)
        })
        .collect();
    assert_eq!(changed, [f.y[0] as usize]);
    // About p = 0.1 of the PRN's outputs are dropped.
    let dropped = class_memory.keep.iter().filter(|&&kept| !kept).count();
    let share = dropped as f64 / class_memory.keep.len() as f64;
    assert!((0.09..0.11).contains(&share), "dropped share {share}");
}

#[test]
fn a_damaged_fixture_is_refused_with_its_place() {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap();
    let damaged = rewritten(&bytes, |k| k != "prn_keep", |_| {});
    let e = Fixture::decode(&path, &damaged, PROTOGCN_FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("prn_keep".into()));
    let damaged = rewritten(&bytes, |k| k != "f32_envelope.loss.csc", |_| {});
    let e = Fixture::decode(&path, &damaged, PROTOGCN_FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("f32_envelope.loss.csc".into()));
    let damaged = rewritten(
        &bytes,
        |_| true,
        |m| {
            m.insert("true_positives".into(), "0,4".into());
        },
    );
    let e = Fixture::decode(&path, &damaged, PROTOGCN_FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("__metadata__.true_positives".into()));
}

#[test]
fn one_training_step_matches_pytorch() {
    let f = fixture();
    assert_eq!(f.metadata["dataset"], "ntu60");
    let count = f.entries.iter().filter(|e| cancelled(&e.key)).count();
    assert_eq!(count, 86, "as make_protogcn_fixture.py finds");
    check_training_step(&f, model(Dataset::Ntu60), cancelled, "ProtoGCN step");
}
