//! InfoGCN beyond its parity step: SF-Head on its nine blocks in tap and in-line mode, the latent
//! noise drawn from the seeded generator (the same key gives the same losses bit for bit,
//! another key others), and evaluation free of noise.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sfhead::engine::{Executor, Graph, Store};
use sfhead::gpu::Gpu;
use sfhead::model::ctrgcn::{
    Backbone, CtrGcnConfig, Dataset, IN_CHANNELS, Placement, SfHeadOptions,
};
use sfhead::model::network::Network;
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::sgd::SgdConfig;
use sfhead::testing::{gpu, uniform};
use sfhead::train::{StepLosses, TrainStep};

/// Two NW-UCLA-sized clips (V = 20, M = 1, K = 10) of 8 frames, small enough for lavapipe.
const SHAPE: [usize; 5] = [2, IN_CHANNELS, 8, 20, 1];
const LABELS: [u32; 2] = [3, 3];

fn infogcn() -> CtrGcnConfig {
    Dataset::Ucla.config().with_backbone(Backbone::Infogcn)
}

fn with_heads(placement: Placement) -> CtrGcnConfig {
    infogcn().with_sf_head(SfHeadOptions {
        placement,
        blocks: (1..=9).collect(),
        ..SfHeadOptions::default()
    })
}

fn train_step(gpu: &Arc<Gpu>, store: &mut Store, model: CtrGcnConfig) -> TrainStep {
    TrainStep::new(gpu, store, &SHAPE, SgdConfig::default(), |g, x, labels| {
        Network::new(g, model, 0).forward(g, x, Some(labels), Mode::Train)
    })
    .unwrap()
}

fn eval_logits(gpu: &Arc<Gpu>, store: &mut Store, model: CtrGcnConfig, x: &[f32]) -> Vec<f32> {
    let mut g = Graph::new();
    let input = g.input("x", &SHAPE);
    let logits = Network::new(&mut g, model, 0)
        .forward(&mut g, input, None, Mode::Eval)
        .logits;
    let exe = Executor::compile(gpu, &g, store, &[logits]).unwrap();
    exe.write(input, x).unwrap();
    exe.run();
    exe.read(logits).unwrap()
}

fn clips() -> Vec<f32> {
    uniform(31, SHAPE.iter().product(), -1.0, 1.0)
}

#[test]
fn sf_head_attaches_to_all_nine_blocks_in_both_modes() {
    let gpu = gpu();
    let x = clips();
    for placement in [Placement::Tap, Placement::Inline] {
        let mut store = Store::new();
        let step = train_step(&gpu, &mut store, with_heads(placement));
        let pending = step.submit(&x, &LABELS, 0.01).unwrap();
        let StepLosses { loss, terms } = step.losses(pending).unwrap();
        let names: Vec<&str> = terms.iter().map(|t| t.0).collect();
        assert_eq!(
            names,
            ["ce", "mmd", "l2_z_mean", "con", "red"],
            "{placement:?}"
        );
        assert!(
            loss.is_finite() && terms.iter().all(|t| t.1.is_finite()),
            "{placement:?}: {loss} {terms:?}"
        );
    }
    // A tap leaves evaluation to plain InfoGCN: the same weights give the same logits.
    let mut store = Store::new();
    train_step(&gpu, &mut store, with_heads(Placement::Tap));
    let tapped = eval_logits(&gpu, &mut store, with_heads(Placement::Tap), &x);
    let plain = eval_logits(&gpu, &mut store, infogcn(), &x);
    assert_eq!(tapped, plain);
}

#[test]
fn the_latent_noise_follows_its_key() {
    let gpu = gpu();
    let x = clips();
    let losses = |key: u64| -> Vec<f32> {
        let mut store = Store::new();
        let step = train_step(&gpu, &mut store, infogcn());
        step.reseed_noise(ChaCha8Rng::seed_from_u64(key));
        (0..2)
            .map(|_| step.step(&x, &LABELS, 0.01).unwrap())
            .collect()
    };
    let first = losses(5);
    assert_eq!(first, losses(5), "the same key, the same losses");
    assert_ne!(first, losses(6), "another key draws other noise");
    // Without noise the evaluation logits do not change between calls.
    let mut store = Store::new();
    train_step(&gpu, &mut store, infogcn());
    let a = eval_logits(&gpu, &mut store, infogcn(), &x);
    assert_eq!(a, eval_logits(&gpu, &mut store, infogcn(), &x));
}
