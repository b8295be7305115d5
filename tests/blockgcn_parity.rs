//! BlockGCN (`model/BlockGCN.py`, `Backbone::Blockgcn`) on the engine against the PyTorch
//! reference (tests/reference/blockgcn.py): one training step on four real NTU clips at 16
//! frames gives the same logits, loss, BN running statistics and parameter gradients, each within
//! `ENVELOPE_MULTIPLE` × PyTorch's own float32 envelope plus the floor (tests/common/parity.rs);
//! the topology branch's persistence deaths and structure-element features of the same batch and
//! the hop table are checked on their own first.
//!
//! As for ST-GCN, the fixture (tests/fixtures/README.md, `blockgcn_ntu60.safetensors`) holds no
//! weights: both sides compute them by the formula of tests/reference/make_stgcn_fixture.py with
//! the rows the later fixture scripts add (tests/common/formula_fixture.rs).

mod common;

use std::path::{Path, PathBuf};

use common::formula_fixture::{
    BLOCKGCN_FORMAT, Fixture, assert_declares_state_dict, check_training_step, formula,
    parameter_count, rewritten,
};
use common::parity::{envelope_bound, relative_l2};
use sfhead::data::Place;
use sfhead::engine::Graph;
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset};
use sfhead::ops::persistence::mst_deaths;
use sfhead::ops::structure_elements::structure_elements;
use sfhead::testing::Harness;

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blockgcn_ntu60.safetensors")
}

fn fixture() -> Fixture {
    Fixture::load(&fixture_path(), BLOCKGCN_FORMAT).unwrap_or_else(|e| panic!("{e}"))
}

fn model(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Blockgcn)
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
    // tests/reference/blockgcn.py; NTU120's is backbones spec §7's.
    for (dataset, count) in [
        (Dataset::Ntu60, 1_372_780),
        (Dataset::Ntu120, 1_388_200),
        (Dataset::Ucla, 1_297_370),
    ] {
        assert_eq!(parameter_count(model(dataset)), count, "{dataset:?}");
    }
}

#[test]
fn the_hop_table_is_the_references() {
    let f = fixture();
    let topology = Dataset::Ntu60.config().topology;
    let hops: Vec<i64> = topology
        .blockgcn()
        .unwrap()
        .tree
        .hop_distances()
        .into_iter()
        .map(|d| d as i64)
        .collect();
    assert_eq!(hops, f.topology.unwrap().hops);
}

#[test]
fn the_topology_branch_matches_pytorch() {
    let f = fixture();
    let branch = f.topology.clone().unwrap();
    let weights = f.weights().unwrap_or_else(|e| panic!("{e}"));
    let mut g = Graph::new();
    let x = g.input("x", &f.x.shape);
    let centres = g.input("centres", &[64, 2]);
    let sharpness = g.input("sharpness", &[64, 2]);
    let deaths = mst_deaths(&mut g, x);
    let features = structure_elements(&mut g, deaths, centres, sharpness);
    let h = Harness::new(g, &[deaths, features]);
    let out = h.run(
        &[
            (x, &f.x.data),
            (centres, weights.get("topo.pl.centres").unwrap()),
            (sharpness, weights.get("topo.pl.sharpness").unwrap()),
        ],
        &[deaths, features],
    );
    let deaths_error = relative_l2(&out[0], &branch.deaths.data);
    assert!(
        deaths_error <= envelope_bound(branch.deaths_envelope),
        "deaths: {deaths_error:e} over {:e}",
        envelope_bound(branch.deaths_envelope)
    );
    let features_error = relative_l2(&out[1], &branch.features.data);
    assert!(
        features_error <= envelope_bound(branch.features_envelope),
        "features: {features_error:e} over {:e}",
        envelope_bound(branch.features_envelope)
    );
}

#[test]
fn a_damaged_fixture_is_refused_with_its_place() {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap();
    let damaged = rewritten(&bytes, |k| k != "hops", |_| {});
    let e = Fixture::decode(&path, &damaged, BLOCKGCN_FORMAT).unwrap_err();
    assert_eq!(e.place, Place::Key("hops".into()));
}

/// The parameters a training-mode BN removes (their exact gradient is zero): every bias but
/// `fc`'s and the BNs' own (the convs', `t{i}.mlp`'s and `to_joint_embedding`'s all feed a BN),
/// and `pos_embedding`, constant over (N, T) in each of data_bn's channels.
fn cancelled(f: &Fixture) -> impl Fn(&str) -> bool {
    let bns = formula::batch_norms(f.entries.iter().map(|e| e.key.as_str()));
    move |key: &str| {
        key == "pos_embedding"
            || key
                .strip_suffix(".bias")
                .is_some_and(|prefix| prefix != "fc" && !bns.contains(prefix))
    }
}

#[test]
fn one_training_step_matches_pytorch() {
    let f = fixture();
    assert_eq!(
        (
            f.metadata["dataset"].as_str(),
            f.metadata["topology"].as_str()
        ),
        ("ntu60", "official")
    );
    let cancelled = cancelled(&f);
    let count = f.entries.iter().filter(|e| cancelled(&e.key)).count();
    assert_eq!(count, 105, "as make_blockgcn_fixture.py finds");
    check_training_step(&f, model(Dataset::Ntu60), cancelled, "BlockGCN step");
}
