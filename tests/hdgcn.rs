//! HD-GCN beyond its parity step: it learns a fixed batch, the centre of mass of its hierarchy
//! changes the network, and SF-Head attaches to its ten blocks.

use sfhead::engine::Store;
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset, IN_CHANNELS, SfHeadOptions};
use sfhead::model::network::Network;
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::sgd::SgdConfig;
use sfhead::testing::{gpu, uniform};
use sfhead::train::TrainStep;

/// The losses (with their terms) of `steps` SGD steps of `model` on one seeded batch of `shape`.
fn losses(model: CtrGcnConfig, shape: [usize; 5], steps: usize) -> Vec<Vec<(&'static str, f32)>> {
    let gpu = gpu();
    let mut store = Store::new();
    let step = TrainStep::new(
        &gpu,
        &mut store,
        &shape,
        SgdConfig::default(),
        |g, x, labels| Network::new(g, model, 0).forward(g, x, Some(labels), Mode::Train),
    )
    .unwrap();
    let x = uniform(17, shape.iter().product(), -1.0, 1.0);
    let labels: Vec<u32> = (0..shape[0] as u32).collect();
    (0..steps)
        .map(|_| {
            let pending = step.submit(&x, &labels, 0.05).unwrap();
            step.losses(pending).unwrap().terms
        })
        .collect()
}

fn hdgcn(dataset: Dataset) -> CtrGcnConfig {
    dataset.config().with_backbone(Backbone::Hdgcn)
}

#[test]
fn it_learns_a_fixed_batch() {
    let runs = losses(hdgcn(Dataset::Ucla), [2, IN_CHANNELS, 8, 20, 1], 4);
    let ce: Vec<f32> = runs.iter().map(|terms| terms[0].1).collect();
    assert!(ce.iter().all(|l| l.is_finite()), "{ce:?}");
    assert!(ce[3] < ce[0], "the loss falls: {ce:?}");
}

#[test]
fn the_centre_of_mass_changes_the_network() {
    let shape = [2, IN_CHANNELS, 8, 25, 2];
    let com21 = losses(hdgcn(Dataset::Ntu60), shape, 1);
    let mut other = hdgcn(Dataset::Ntu60);
    other.hdgcn_com = Some(0);
    let com1 = losses(other, shape, 1);
    assert_ne!(com21, com1);
}

#[test]
fn sf_head_attaches_to_its_ten_blocks() {
    let model = hdgcn(Dataset::Ucla).with_sf_head(SfHeadOptions {
        blocks: (1..=10).collect(),
        ..SfHeadOptions::default()
    });
    let terms = losses(model, [2, IN_CHANNELS, 8, 20, 1], 1).remove(0);
    let names: Vec<&str> = terms.iter().map(|t| t.0).collect();
    assert_eq!(names, ["ce", "con", "red"]);
    assert!(terms.iter().all(|t| t.1.is_finite()), "{terms:?}");
}
