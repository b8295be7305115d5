//! BlockGCN beyond its parity step: the `blockgcn_topology` switch changes which sample's
//! topology features a person gets (and so the loss) only where a sample has two persons, and
//! SF-Head attaches to its ten blocks.

use sfhead::engine::Store;
use sfhead::model::blockgcn::TopologyRows;
use sfhead::model::ctrgcn::{Backbone, CtrGcnConfig, Dataset, IN_CHANNELS, SfHeadOptions};
use sfhead::model::network::Network;
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::sgd::SgdConfig;
use sfhead::testing::{gpu, uniform};
use sfhead::train::TrainStep;

/// The first loss and its terms of `model` on seeded clips of `shape`.
fn first_losses(model: CtrGcnConfig, shape: [usize; 5]) -> Vec<(&'static str, f32)> {
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
    let pending = step.submit(&x, &labels, 0.01).unwrap();
    step.losses(pending).unwrap().terms
}

fn blockgcn(dataset: Dataset, rows: TopologyRows) -> CtrGcnConfig {
    let mut config = dataset.config().with_backbone(Backbone::Blockgcn);
    config.blockgcn_topology = rows;
    config
}

#[test]
fn the_topology_rows_matter_only_with_two_persons() {
    let ntu = [2, IN_CHANNELS, 8, 25, 2];
    let official = first_losses(blockgcn(Dataset::Ntu60, TopologyRows::Official), ntu);
    let aligned = first_losses(blockgcn(Dataset::Ntu60, TopologyRows::Aligned), ntu);
    assert_ne!(official, aligned);
    let ucla = [2, IN_CHANNELS, 8, 20, 1];
    let official = first_losses(blockgcn(Dataset::Ucla, TopologyRows::Official), ucla);
    let aligned = first_losses(blockgcn(Dataset::Ucla, TopologyRows::Aligned), ucla);
    assert_eq!(official, aligned);
}

#[test]
fn sf_head_attaches_to_its_ten_blocks() {
    let model = blockgcn(Dataset::Ucla, TopologyRows::Official).with_sf_head(SfHeadOptions {
        blocks: (1..=10).collect(),
        ..SfHeadOptions::default()
    });
    let terms = first_losses(model, [2, IN_CHANNELS, 8, 20, 1]);
    let names: Vec<&str> = terms.iter().map(|t| t.0).collect();
    assert_eq!(names, ["ce", "con", "red"]);
    assert!(terms.iter().all(|t| t.1.is_finite()), "{terms:?}");
}
