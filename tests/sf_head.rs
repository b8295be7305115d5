//! SF-Head on CTR-GCN as a model: the official parameter counts, refusal of widths the groups
//! cannot split, finite-difference gradients of the whole module and its losses, every loss
//! choice against its definition, and the training-only tap's promise that a tap-trained
//! checkpoint is plain CTR-GCN.

use std::sync::Arc;

use sfhead::engine::{Executor, Graph, Store};
use sfhead::gpu::Gpu;
use sfhead::model::ctrgcn::{
    Backbone, CtrGcn, CtrGcnConfig, Dataset, FRHEAD_BLOCKS, IN_CHANNELS, Placement, SfHeadOptions,
};
use sfhead::model::init::Init;
use sfhead::model::sf_head::{Item, SfHead, SfLossConfig};
use sfhead::model::summary::{parameter_counts, sf_head_counts};
use sfhead::ops::add::add;
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::sgd::SgdConfig;
use sfhead::testing::{Harness, gpu, gradcheck, to_f64, uniform};
use sfhead::train::{TrainConfig, TrainStep, load, save};

fn parameters(g: &Graph) -> usize {
    parameter_counts(g).iter().map(|c| c.parameters).sum()
}

#[test]
fn heads_have_the_official_parameter_counts() {
    let mut g = Graph::new();
    let options = SfHeadOptions::default();
    CtrGcn::new(
        &mut g,
        Dataset::Ntu60.config().with_sf_head(options.clone()),
        0,
    );
    let heads = sf_head_counts(&g, &options.blocks, options.groups);
    let per_head: Vec<(usize, usize, usize)> = heads
        .iter()
        .map(|h| (h.channels, h.parameters, h.used))
        .collect();
    let mut want = vec![(64, 320, 316); 4];
    want.extend([(128, 336, 328); 3]);
    want.extend([(256, 368, 352); 3]);
    assert_eq!(per_head, want);
    assert_eq!(heads.iter().map(|h| h.parameters).sum::<usize>(), 3_392);
    assert_eq!(parameters(&g), 1_450_064);

    let mut g = Graph::new();
    let frhead = SfHeadOptions {
        blocks: FRHEAD_BLOCKS.to_vec(),
        ..SfHeadOptions::default()
    };
    CtrGcn::new(&mut g, Dataset::Ntu60.config().with_sf_head(frhead), 0);
    assert_eq!(parameters(&g), 1_446_672 + 320 + 336 + 368 + 368);
    // The heads' tensors follow the backbone's.
    let names: Vec<String> = g
        .tensors()
        .filter(|(_, t)| t.role.is_stored())
        .map(|(_, t)| t.name.clone())
        .collect();
    let first = names
        .iter()
        .position(|n| n.starts_with("sf_heads."))
        .unwrap();
    assert_eq!(names[first - 1], "fc.bias");
    assert!(names[first..].iter().all(|n| n.starts_with("sf_heads.")));
}

#[test]
fn widths_the_groups_cannot_split_are_refused_naming_the_block() {
    let options = SfHeadOptions {
        groups: 32,
        ..SfHeadOptions::default()
    };
    let error = options.check(Backbone::Ctrgcn).unwrap_err();
    assert!(
        error.contains("`l1`") && error.contains("64 channels"),
        "{error}"
    );
    let config = TrainConfig::preset("sfhead-ucla").unwrap();
    let error = config
        .with_overrides(&["sfhead_groups=32".into()])
        .unwrap_err()
        .to_string();
    assert!(error.contains("`l1`"), "{error}");
    let error = config
        .with_overrides(&["sfhead_blocks=1,11".into()])
        .unwrap_err()
        .to_string();
    assert!(error.contains("block 11"), "{error}");
    let mut g = Graph::new();
    let refused = SfHead::new(&mut g, "h", "l7", 100, 8, &mut Init::new(0)).unwrap_err();
    assert!(refused.to_string().contains("`l7`"), "{refused}");
}

/// The module's output and both losses, differentiated with respect to its input, against
/// central differences; the gates' BatchNorm runs in training mode.
#[test]
fn module_and_losses_pass_finite_differences() {
    // Two samples of two persons, C = 64 (q = 2: the degenerate 2×V and T×2 gate planes).
    let (b, c, t, v, q) = (4, 64, 6, 5, 2);
    let shape = vec![b, c, t, v];
    // Non-negative, as the GCN output it taps, and ordered along every pooled axis with gaps far
    // wider than the finite-difference step, so no max-pool decision flips: +0.3 per chunk
    // channel k, +0.05 per frame, +0.011 per joint, and a random level per (b, group, chunk).
    let levels = uniform(11, b * c / q, 0.0, 0.2);
    let y: Vec<f32> = (0..b * c * t * v)
        .map(|i| {
            let (bc, tv) = (i / (t * v), i % (t * v));
            let k = bc % q;
            0.1 + 0.3 * k as f32 + 0.05 * (tv / v) as f32 + 0.011 * (tv % v) as f32 + levels[bc / q]
        })
        .collect();
    let build = |losses: bool| {
        move |g: &mut Graph, xs: &[sfhead::engine::TensorId]| {
            let head = SfHead::new(g, "sf_heads.0", "l1", 64, 8, &mut Init::new(3)).unwrap();
            let (out, features) = head.forward(g, xs[0], Mode::Train);
            if !losses {
                return out;
            }
            let l = SfLossConfig::default().losses(g, &features, 2, 2);
            add(g, l.con, l.red)
        }
    };
    let report = gradcheck(&[(shape.clone(), y.clone())], build(false), 1e-3, 5);
    assert!(report.worst < 1e-2, "module output: {:.3e}", report.worst);
    let report = gradcheck(&[(shape, y)], build(true), 1e-3, 6);
    assert!(report.worst < 1e-2, "losses: {:.3e}", report.worst);
}

fn ucla_tap() -> CtrGcnConfig {
    Dataset::Ucla
        .config()
        .with_sf_head(SfHeadOptions::default())
}

/// Evaluation logits of `model` on `x` with the weights in `store`.
fn eval_logits(gpu: &Arc<Gpu>, store: &mut Store, model: CtrGcnConfig, x: &[f32]) -> Vec<f32> {
    let mut g = Graph::new();
    let input = g.input("x", &SHAPE);
    let logits = CtrGcn::new(&mut g, model, 0).forward(&mut g, input, Mode::Eval);
    let exe = Executor::compile(gpu, &g, store, &[logits]).unwrap();
    exe.write(input, x).unwrap();
    exe.run();
    exe.read(logits).unwrap()
}

const SHAPE: [usize; 5] = [2, IN_CHANNELS, 8, 20, 1];

/// Trains two SGD steps of `model` and returns its store.
fn trained(gpu: &Arc<Gpu>, model: CtrGcnConfig, x: &[f32]) -> Store {
    let mut store = Store::new();
    let step = TrainStep::new(
        gpu,
        &mut store,
        &SHAPE,
        SgdConfig::default(),
        |g, input, _labels| CtrGcn::new(g, model, 0).forward_with_losses(g, input, Mode::Train),
    )
    .unwrap();
    for _ in 0..2 {
        step.step(x, &[3, 7], 0.05).unwrap();
    }
    store
}

#[test]
fn a_tap_trained_checkpoint_is_plain_ctrgcn() {
    let gpu = gpu();
    let x = uniform(21, SHAPE.iter().product(), -1.0, 1.0);
    let mut tap = trained(&gpu, ucla_tap(), &x);
    let tap_logits = eval_logits(&gpu, &mut tap, ucla_tap(), &x);

    let path = std::env::temp_dir().join(format!("sfhead-tap-{}.safetensors", std::process::id()));
    save(&gpu, &tap, &path, &Default::default()).unwrap();
    let mut plain = Store::new();
    let plain_logits = {
        let mut g = Graph::new();
        let input = g.input("x", &SHAPE);
        let logits =
            CtrGcn::new(&mut g, Dataset::Ucla.config(), 9).forward(&mut g, input, Mode::Eval);
        let exe = Executor::compile(&gpu, &g, &mut plain, &[logits]).unwrap();
        let loaded = load(&gpu, &plain, &path).unwrap();
        assert!(loaded.missing.is_empty(), "{:?}", loaded.missing);
        // What plain CTR-GCN does not have: the heads, and every optimiser state (an
        // evaluation graph keeps none).
        let heads = loaded
            .unexpected
            .iter()
            .filter(|k| k.starts_with("sf_heads."));
        assert_eq!(heads.count(), 10 * 30);
        let mut rest = loaded
            .unexpected
            .iter()
            .filter(|k| !k.starts_with("sf_heads."));
        assert!(
            rest.all(|k| k.starts_with("optim.")),
            "{:?}",
            loaded.unexpected
        );
        exe.write(input, &x).unwrap();
        exe.run();
        exe.read(logits).unwrap()
    };
    std::fs::remove_file(&path).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&tap_logits), bits(&plain_logits));

    // The tap is not inert: its losses' gradients reach the backbone, which trains differently
    // from plain CTR-GCN on the same batches.
    let backbone = trained(&gpu, Dataset::Ucla.config(), &x);
    let key = "l1.gcn1.convs.0.conv3.weight";
    assert_ne!(
        bits(&tap.read(&gpu, key).unwrap()),
        bits(&backbone.read(&gpu, key).unwrap())
    );
    // In-line, the head changes the function itself.
    let inline = ucla_tap().with_sf_head(SfHeadOptions {
        placement: Placement::Inline,
        ..SfHeadOptions::default()
    });
    let inline_logits = eval_logits(&gpu, &mut tap, inline, &x);
    assert_ne!(bits(&inline_logits), bits(&tap_logits));
}

/// Rows of `f` (B·G, q, T, V) as the loss items of `item`, from the definitions of
/// reference-spec §3.1; B = samples · persons.
fn items(f: &[f64], item: Item, samples: usize, persons: usize, rows: usize) -> Vec<Vec<f64>> {
    match item {
        Item::Sample => f.chunks(f.len() / samples).map(<[f64]>::to_vec).collect(),
        Item::Rows => f.chunks(f.len() / rows).map(<[f64]>::to_vec).collect(),
        Item::MeanPersons => f
            .chunks(f.len() / samples)
            .map(|sample| {
                let d = sample.len() / persons;
                (0..d)
                    .map(|i| (0..persons).map(|m| sample[m * d + i]).sum::<f64>() / persons as f64)
                    .collect()
            })
            .collect(),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Each item definition and each way of combining F-CL's terms gives the losses their
/// definitions give on the module's own features.
#[test]
fn every_loss_choice_matches_its_definition() {
    use sfhead::model::sf_head::Combine;
    use sfhead::ops::sf_loss::{FclConfig, cpu};
    let (samples, persons) = (3, 2);
    let shape = [samples * persons, 64, 5, 4];
    let rows = shape[0] * 8;
    let mut g = Graph::new();
    let x = g.input("y", &shape);
    let head = SfHead::new(&mut g, "h", "l1", 64, 8, &mut Init::new(4)).unwrap();
    let (_, f) = head.forward(&mut g, x, Mode::Train);
    let choices = [
        (Item::Sample, Combine::Sum),
        (Item::MeanPersons, Combine::Sum),
        (Item::Rows, Combine::Sum),
        (Item::Sample, Combine::Mean),
    ];
    let mut losses = Vec::new();
    for (item, fcl_terms) in choices {
        let config = SfLossConfig {
            item,
            fcl_terms,
            ..SfLossConfig::default()
        };
        let l = config.losses(&mut g, &f, samples, persons);
        losses.extend([l.con, l.red]);
    }
    let features = [f.r, f.c, f.s, f.t, f.o];
    let keep: Vec<_> = features.iter().chain(&losses).copied().collect();
    let h = Harness::new(g, &keep);
    let y = uniform(31, shape.iter().product(), 0.0, 1.0);
    let out = h.run(&[(x, &y)], &keep);
    let feats: Vec<Vec<f64>> = out[..5].iter().map(|v| to_f64(v)).collect();
    let defaults = SfLossConfig::default();
    let fcl = FclConfig::default();
    for (i, (item, fcl_terms)) in choices.into_iter().enumerate() {
        let [a, c, s, t, o] =
            [0, 1, 2, 3, 4].map(|k| items(&feats[k], item, samples, persons, rows));
        let gram: Vec<f64> = s
            .iter()
            .flat_map(|si| t.iter().map(|tj| dot(si, tj)))
            .collect();
        let norms = |m: &[Vec<f64>]| m.iter().map(|v| dot(v, v)).collect::<Vec<_>>();
        let kappa = f64::from(defaults.margin / defaults.tau);
        let red = cpu::frl(
            &gram,
            &norms(&s),
            &norms(&t),
            f64::from(defaults.alpha),
            kappa,
        );
        let mut con = 0.0;
        for other in [&c, &s, &t, &o] {
            let ab: Vec<f64> = a.iter().zip(other.iter()).map(|(u, v)| dot(u, v)).collect();
            con += cpu::fcl_term(&ab, &norms(&a), &norms(other), &fcl)
                .iter()
                .sum::<f64>();
        }
        con /= a.len() as f64;
        if fcl_terms == Combine::Mean {
            con /= 4.0;
        }
        let got = (f64::from(out[5 + 2 * i][0]), f64::from(out[6 + 2 * i][0]));
        for (what, got, want) in [("F-CL", got.0, con), ("F-RL", got.1, red)] {
            let error = (got - want).abs() / want.abs();
            assert!(
                error < 1e-5,
                "{item:?}, {fcl_terms:?}: {what} {got} against {want}"
            );
        }
    }
}

/// Summed over the ten heads, the losses are ten times their mean.
#[test]
fn heads_are_averaged_or_summed() {
    use sfhead::model::sf_head::Combine;
    use sfhead::train::StepOptions;
    let gpu = gpu();
    let x = uniform(41, SHAPE.iter().product(), -1.0, 1.0);
    let terms = |heads: Combine| {
        let mut options = SfHeadOptions::default();
        options.loss.heads = heads;
        let model = Dataset::Ucla.config().with_sf_head(options);
        let step_options = StepOptions {
            sgd: None,
            keep_gradients: false,
        };
        let step = TrainStep::build(
            &gpu,
            &mut Store::new(),
            &SHAPE,
            step_options,
            |g, input, _labels| CtrGcn::new(g, model, 0).forward_with_losses(g, input, Mode::Train),
        )
        .unwrap();
        step.step(&x, &[3, 7], 0.0).unwrap();
        step.loss_terms().unwrap()
    };
    let (mean, sum) = (terms(Combine::Mean), terms(Combine::Sum));
    assert_eq!(mean[0], sum[0], "the cross-entropy does not depend on it");
    for (m, s) in mean[1..].iter().zip(&sum[1..]) {
        assert_eq!(m.0, s.0);
        let ratio = f64::from(s.1) / f64::from(m.1);
        assert!((ratio - 10.0).abs() < 1e-5, "{}: {ratio}", m.0);
    }
}
