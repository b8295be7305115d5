//! ProtoGCN beyond its parity step: the parameter counts and the official state-dict order, the
//! official initialisation, a training step with its contrastive term, SGD lowering the loss on
//! a fixed batch, the class memory, which only a training step with true positives changes, and
//! SF-Head on all ten blocks.

use sfhead::engine::{Data, Executor, Graph, Role, Store};
use sfhead::model::ctrgcn::{CtrGcnConfig, Dataset, IN_CHANNELS, SfHeadOptions};
use sfhead::model::protogcn::{CLASS_MEMORY, ProtoGcn};
use sfhead::ops::batch_norm::Mode;
use sfhead::ops::sgd::SgdConfig;
use sfhead::testing::{gpu, uniform};
use sfhead::train::{StepOptions, TrainStep};

/// Two NW-UCLA-sized clips (V = 20, M = 1, K = 10) of 8 frames, small enough for lavapipe.
const SHAPE: [usize; 5] = [2, IN_CHANNELS, 8, 20, 1];
const CLASSES: usize = 10;

fn declared(config: CtrGcnConfig) -> Graph {
    let mut g = Graph::new();
    ProtoGcn::new(&mut g, config, 0);
    g
}

/// (name, shape, role) of every stored tensor in declaration order.
fn stored(g: &Graph) -> Vec<(String, Vec<usize>, Role)> {
    g.tensors()
        .filter(|(_, t)| t.role.is_stored())
        .map(|(_, t)| (t.name.clone(), t.shape.clone(), t.role))
        .collect()
}

fn initial(g: &Graph, name: &str) -> Vec<f32> {
    let t = g.find(name).unwrap_or_else(|| panic!("no tensor {name}"));
    match &g.tensor(t).init {
        Some(Data::F32(v)) => v.clone(),
        other => panic!("{name} has no f32 values: {other:?}"),
    }
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

#[test]
fn parameter_counts_match_the_official_model() {
    // NTU-120 is the spec's count of the official constructor. NTU-60 has 60 classes fewer
    // in fc_cls (60·385); NW-UCLA (V = 20, 10 classes) has 2·3·5 fewer data_bn parameters,
    // 10·8·(625 − 400) fewer in A, 256·225 fewer in cl_fc and 110·385 fewer in fc_cls; the
    // MS-TCNs keep their 25 add_coeff entries.
    let want = [
        (Dataset::Ntu120, 4_367_960),
        (Dataset::Ntu60, 4_367_960 - 60 * 385),
        (Dataset::Ucla, 4_367_960 - 30 - 18_000 - 57_600 - 110 * 385),
    ];
    for (dataset, count) in want {
        let g = declared(dataset.config());
        let params: usize = g
            .tensors()
            .filter(|(_, t)| t.role == Role::Parameter)
            .map(|(_, t)| t.numel())
            .sum();
        println!("ProtoGCN {dataset:?}: {params} parameters");
        assert_eq!(params, count, "{dataset:?}");
    }
}

#[test]
fn the_state_dict_follows_the_official_order() {
    let g = declared(Dataset::Ntu120.config());
    let all = stored(&g);
    let names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    let bn = |p: &str| -> Vec<String> {
        [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ]
        .map(|k| format!("{p}.{k}"))
        .to_vec()
    };
    let conv = |p: &str| -> Vec<String> { vec![format!("{p}.weight"), format!("{p}.bias")] };
    let g0 = "backbone.gcn.0.gcn";
    let mut head: Vec<String> = bn("backbone.data_bn");
    head.extend([
        format!("{g0}.A"),
        format!("{g0}.alpha"),
        format!("{g0}.beta"),
    ]);
    head.extend(conv(&format!("{g0}.pre.0")));
    head.extend(bn(&format!("{g0}.pre.1")));
    for c in ["post", "conv1", "conv2", "down.0"] {
        head.extend(conv(&format!("{g0}.{c}")));
    }
    head.extend(bn(&format!("{g0}.down.1")));
    head.extend(bn(&format!("{g0}.bn")));
    let t0 = "backbone.gcn.0.tcn";
    head.push(format!("{t0}.add_coeff"));
    for b in 0..4 {
        head.extend(conv(&format!("{t0}.branches.{b}.0")));
        head.extend(bn(&format!("{t0}.branches.{b}.1")));
        head.extend(conv(&format!("{t0}.branches.{b}.3.conv")));
    }
    head.extend(conv(&format!("{t0}.branches.4.0")));
    head.extend(bn(&format!("{t0}.branches.4.1")));
    head.extend(conv(&format!("{t0}.branches.5")));
    head.extend(bn(&format!("{t0}.transform.0")));
    head.extend(conv(&format!("{t0}.transform.2")));
    head.extend(bn(&format!("{t0}.bn")));
    head.push("backbone.gcn.1.gcn.A".into());
    assert_eq!(names[..head.len()], head, "the first block");

    let mut tail: Vec<String> = bn("backbone.gcn.9.tcn.bn");
    tail.extend(conv("backbone.post"));
    tail.extend(bn("backbone.bn"));
    tail.push("backbone.prn.query_matrix.weight".into());
    tail.push("backbone.prn.memory_matrix.weight".into());
    // BaseHead registers csc_loss before SimpleHead registers fc_cls.
    tail.extend(conv("cls_head.csc_loss.cl_fc"));
    tail.extend(conv("cls_head.fc_cls"));
    tail.push(CLASS_MEMORY.into());
    assert_eq!(names[names.len() - tail.len()..], tail, "the end");

    // The strided blocks end in their residual unit_tcn.
    for i in [4, 7] {
        let at = names
            .iter()
            .position(|n| *n == format!("backbone.gcn.{i}.tcn.bn.num_batches_tracked"))
            .unwrap();
        let mut want = conv(&format!("backbone.gcn.{i}.residual.conv"));
        want.extend(bn(&format!("backbone.gcn.{i}.residual.bn")));
        assert_eq!(names[at + 1..at + 8], want, "block {i}");
    }
    // 843 official entries: data_bn 5, ten blocks of 21 (unit_gcn) + 58 (mstcn), 7 more for
    // each of the three downs and the two residuals, post + bn + PRN 9, the head 4; then avg_f.
    assert_eq!(names.len(), 5 + 10 * (21 + 58) + 5 * 7 + 9 + 4 + 1);
    let shape = |name: &str| &all.iter().find(|(n, _, _)| n == name).unwrap().1;
    assert_eq!(shape("backbone.data_bn.weight"), &[75]);
    assert_eq!(shape("backbone.gcn.0.gcn.A"), &[8, 25, 25]);
    assert_eq!(shape("backbone.gcn.0.gcn.pre.0.weight"), &[96, 3, 1, 1]);
    assert_eq!(shape("backbone.gcn.0.tcn.add_coeff"), &[25]);
    assert_eq!(
        shape("backbone.gcn.0.tcn.branches.3.3.conv.weight"),
        &[16, 16, 3, 1]
    );
    assert_eq!(
        shape("backbone.gcn.9.tcn.branches.5.weight"),
        &[64, 384, 1, 1]
    );
    assert_eq!(
        shape("backbone.gcn.7.residual.conv.weight"),
        &[384, 192, 1, 1]
    );
    assert_eq!(shape("backbone.prn.query_matrix.weight"), &[400, 384]);
    assert_eq!(shape("backbone.prn.memory_matrix.weight"), &[384, 400]);
    assert_eq!(shape("cls_head.csc_loss.cl_fc.weight"), &[256, 625]);
    assert_eq!(shape("cls_head.fc_cls.weight"), &[120, 384]);
    assert_eq!(shape(CLASS_MEMORY), &[256, 120]);
    let memory = all.iter().find(|(n, _, _)| n == CLASS_MEMORY).unwrap();
    assert_eq!(memory.2, Role::State, "the class memory is not learnable");
    // NW-UCLA's contrastive input is V·V = 400.
    let ucla = stored(&declared(Dataset::Ucla.config()));
    let cl_fc = ucla
        .iter()
        .find(|(n, _, _)| n == "cls_head.csc_loss.cl_fc.weight");
    assert_eq!(cl_fc.unwrap().1, [256, 400]);
}

#[test]
fn the_initialisation_is_the_official_one() {
    let g = declared(Dataset::Ntu120.config());
    // One N(0.04, 0.02²) draw of A, the same in every block.
    let a = initial(&g, "backbone.gcn.0.gcn.A");
    let (mean, std) = mean_std(&a);
    assert!(
        (mean - 0.04).abs() < 2e-3 && (std - 0.02).abs() < 2e-3,
        "A: {mean} ± {std}"
    );
    for i in 1..10 {
        assert_eq!(
            initial(&g, &format!("backbone.gcn.{i}.gcn.A")),
            a,
            "block {i}"
        );
    }
    for zero in [
        "backbone.gcn.3.gcn.alpha",
        "backbone.gcn.3.gcn.beta",
        "backbone.gcn.3.tcn.add_coeff",
        "cls_head.fc_cls.bias",
        "backbone.gcn.3.gcn.bn.bias",
    ] {
        assert!(initial(&g, zero).iter().all(|&v| v == 0.0), "{zero}");
    }
    // No γ = 1e-6 trick: every BN starts at 1.
    assert!(
        initial(&g, "backbone.gcn.3.gcn.bn.weight")
            .iter()
            .all(|&v| v == 1.0)
    );
    let (mean, std) = mean_std(&initial(&g, "cls_head.fc_cls.weight"));
    assert!(
        mean.abs() < 1e-3 && (std - 0.01).abs() < 1e-3,
        "fc_cls: {mean} ± {std}"
    );
    // PyTorch's default convs, Linear layers and the un-initialised unit_tcn: U(±1/√fan_in),
    // which spreads to bound/√3 (a kaiming-normal conv would cross the bound).
    for (name, fan_in) in [
        ("backbone.gcn.4.residual.conv.weight", 96),
        ("backbone.gcn.4.residual.conv.bias", 96),
        ("backbone.gcn.2.tcn.branches.1.3.conv.weight", 16 * 3),
        ("backbone.gcn.2.gcn.pre.0.weight", 96),
        ("backbone.post.weight", 384),
        ("backbone.prn.query_matrix.weight", 384),
        ("backbone.prn.memory_matrix.weight", 400),
        ("cls_head.csc_loss.cl_fc.weight", 625),
    ] {
        let v = initial(&g, name);
        let bound = 1.0 / (fan_in as f32).sqrt();
        assert!(
            v.iter().all(|x| x.abs() <= bound),
            "{name} exceeds ±{bound}"
        );
        let (_, std) = mean_std(&v);
        let want = f64::from(bound) / 3f64.sqrt();
        assert!(
            (std - want).abs() < 0.15 * want,
            "{name}: std {std}, want {want}"
        );
    }
    let (mean, std) = mean_std(&initial(&g, CLASS_MEMORY));
    assert!(
        mean.abs() < 0.02 && (std - 1.0).abs() < 0.02,
        "avg_f: {mean} ± {std}"
    );
}

fn ucla_step(store: &mut Store, options: StepOptions) -> TrainStep {
    TrainStep::build(&gpu(), store, &SHAPE, options, |g, x, labels| {
        let out =
            ProtoGcn::new(g, Dataset::Ucla.config(), 0).forward(g, x, Some(labels), Mode::Train);
        let noise: Vec<usize> = out.noise.iter().map(|&t| g.numel(t)).collect();
        assert_eq!(noise, [2 * 400 * 384], "one dropout noise input at the PRN");
        out
    })
    .unwrap()
}

fn clips() -> Vec<f32> {
    uniform(31, SHAPE.iter().product(), -1.0, 1.0)
}

const INSPECT: StepOptions = StepOptions {
    sgd: None,
    keep_gradients: true,
};

#[test]
fn a_training_step_gives_finite_logits_and_the_csc_term() {
    let mut store = Store::new();
    let step = ucla_step(&mut store, INSPECT);
    let pending = step.submit(&clips(), &[3, 7], 0.0).unwrap();
    let losses = step.losses(pending).unwrap();
    let names: Vec<&str> = losses.terms.iter().map(|t| t.0).collect();
    assert_eq!(names, ["ce", "csc"]);
    let (ce, csc) = (losses.terms[0].1, losses.terms[1].1);
    assert!(ce.is_finite() && csc.is_finite() && csc > 0.0, "{losses:?}");
    assert!((losses.loss - (ce + 0.2 * csc)).abs() < 1e-5 * losses.loss.abs().max(1.0));
    let logits = step.logits().unwrap();
    assert_eq!(logits.len(), 2 * CLASSES);
    assert!(logits.iter().all(|v| v.is_finite()), "{logits:?}");
    // The contrastive loss trains the PRN, cl_fc and, through the last graph, the units. With
    // α = β = 0 the graph starts at zero, so the queries are uniform whatever their weight.
    let grads = step.gradients().unwrap();
    let query = grads
        .iter()
        .find(|(n, _)| n == "backbone.prn.query_matrix.weight");
    assert!(query.unwrap().1.iter().all(|&v| v == 0.0));
    for name in [
        "backbone.prn.memory_matrix.weight",
        "backbone.post.weight",
        "cls_head.csc_loss.cl_fc.weight",
        "backbone.gcn.9.gcn.alpha",
        "backbone.gcn.9.gcn.beta",
    ] {
        let (_, g) = grads
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0),
            "{name}"
        );
    }
}

#[test]
fn sgd_steps_lower_the_loss_on_a_fixed_batch() {
    let mut store = Store::new();
    let step = TrainStep::new(
        &gpu(),
        &mut store,
        &SHAPE,
        SgdConfig::default(),
        |g, x, labels| {
            ProtoGcn::new(g, Dataset::Ucla.config(), 0).forward(g, x, Some(labels), Mode::Train)
        },
    )
    .unwrap();
    let x = clips();
    let losses: Vec<f32> = (0..6)
        .map(|_| step.step(&x, &[3, 7], 0.02).unwrap())
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < 0.5 * losses[0], "{losses:?}");
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn only_training_with_true_positives_changes_the_class_memory() {
    let gpu = gpu();
    let mut store = Store::new();
    let step = ucla_step(&mut store, INSPECT);
    let memory = |store: &Store| store.read(&gpu, CLASS_MEMORY).unwrap();
    let start = memory(&store);
    let x = clips();
    // Without updates the logits of every step are the same; learn them first.
    step.step(&x, &[0, 0], 0.0).unwrap();
    let logits = step.logits().unwrap();
    let predicted: Vec<u32> = logits.chunks(CLASSES).map(argmax).collect();
    let after_first = memory(&store);
    // Labels the prediction misses: no true positive, the memory stays.
    let missed: Vec<u32> = predicted.iter().map(|p| (p + 1) % CLASSES as u32).collect();
    let before = memory(&store);
    step.step(&x, &missed, 0.0).unwrap();
    assert_eq!(memory(&store), before, "no true positive, no update");

    // Evaluation leaves the memory as it is.
    let mut g = Graph::new();
    let input = g.input("x", &SHAPE);
    let logits_eval = ProtoGcn::new(&mut g, Dataset::Ucla.config(), 0)
        .forward(&mut g, input, None, Mode::Eval)
        .logits;
    let exe = Executor::compile(&gpu, &g, &mut store, &[logits_eval]).unwrap();
    exe.write(input, &x).unwrap();
    exe.run();
    assert!(exe.read(logits_eval).unwrap().iter().all(|v| v.is_finite()));
    assert_eq!(
        memory(&store),
        before,
        "evaluation does not touch the memory"
    );

    // The predicted labels are true positives: exactly their columns move.
    step.step(&x, &predicted, 0.0).unwrap();
    let after = memory(&store);
    for class in 0..CLASSES {
        let column =
            |m: &[f32]| -> Vec<f32> { m.iter().skip(class).step_by(CLASSES).copied().collect() };
        let hit = predicted.contains(&(class as u32));
        assert_eq!(column(&after) != column(&before), hit, "class {class}");
    }
    // The first step's labels were true positives only where 0 was predicted.
    assert_eq!(after_first != start, predicted.contains(&0));
}

#[test]
fn sf_head_attaches_to_its_ten_blocks() {
    let config = Dataset::Ucla.config().with_sf_head(SfHeadOptions {
        blocks: (1..=10).collect(),
        ..SfHeadOptions::default()
    });
    let mut store = Store::new();
    let step = TrainStep::new(
        &gpu(),
        &mut store,
        &SHAPE,
        SgdConfig::default(),
        |g, x, labels| ProtoGcn::new(g, config, 0).forward(g, x, Some(labels), Mode::Train),
    )
    .unwrap();
    let pending = step.submit(&clips(), &[3, 7], 0.01).unwrap();
    let terms = step.losses(pending).unwrap().terms;
    let names: Vec<&str> = terms.iter().map(|t| t.0).collect();
    assert_eq!(names, ["ce", "csc", "con", "red"]);
    assert!(terms.iter().all(|t| t.1.is_finite()), "{terms:?}");
}
