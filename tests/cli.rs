//! The commands of the binary: `info model`, `debug grads`, `bench step` and `ensemble`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sfhead::engine::{Executor, Graph, Store};
use sfhead::model::ctrgcn::{CtrGcn, CtrGcnConfig, Dataset, SfHeadOptions};
use sfhead::ops::batch_norm::Mode;
use sfhead::scores::Scores;
use sfhead::testing::{gpu, uniform};
use sfhead::train::{OutputTensor, StepOptions, TrainStep, save, write_tensors};

fn sfhead(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sfhead"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfhead-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn info_model_prints_the_exact_counts_and_blocks() {
    // ST-GCN is CTR-GCN's `baseline.py`, 2,108,322 parameters at NTU120 (backbones spec §3);
    // MS-AAGCN is 2s-AGCN's `aagcn.py`, 3,797,088 at NTU120, plain 2s-AGCN `agcn.py`, 3,484,930
    // (§4; the others by tests/reference/aagcn.py); InfoGCN 1,572,227 (§5; the others by
    // tests/reference/infogcn.py).
    for (model, dataset, total) in [
        ("ctrgcn", "ntu60", "1446672"),
        ("ctrgcn", "ntu120", "1462092"),
        ("ctrgcn", "ucla", "1426892"),
        ("stgcn", "ntu60", "2092902"),
        ("stgcn", "ntu120", "2108322"),
        ("stgcn", "ucla", "2073122"),
        ("aagcn", "ntu60", "3781668"),
        ("aagcn", "ntu120", "3797088"),
        ("aagcn", "ucla", "3753440"),
        ("agcn", "ntu60", "3469510"),
        ("agcn", "ntu120", "3484930"),
        ("agcn", "ucla", "3449730"),
        ("infogcn", "ntu60", "1556807"),
        ("infogcn", "ntu120", "1572227"),
        ("infogcn", "ucla", "1533722"),
        ("blockgcn", "ntu60", "1372780"),
        ("blockgcn", "ntu120", "1388200"),
        ("blockgcn", "ucla", "1297370"),
        ("hdgcn", "ntu60", "1659980"),
        ("hdgcn", "ntu120", "1675400"),
        ("hdgcn", "ucla", "1606450"),
        ("protogcn", "ntu60", "4344860"),
        ("protogcn", "ntu120", "4367960"),
        ("protogcn", "ucla", "4249980"),
    ] {
        let out = sfhead(&["info", "model", "--model", model, "--dataset", dataset]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&format!("{total} parameters")), "{text}");
        // The first strided block's residual: 64 → 128 (8,576 with its BN) where the widths
        // start at 64, 128 → 256 (33,536) on BlockGCN's, 96 → 192 (19,008) in ProtoGCN's
        // fifth block `gcn.4`.
        assert!(
            (text.contains("l5")
                && (text.contains("residual 8576") || text.contains("residual 33536")))
                || (text.contains("gcn.4") && text.contains("residual 19008")),
            "{text}"
        );
    }
}

#[test]
fn info_model_prints_each_sf_head() {
    let out = sfhead(&["info", "model", "--dataset", "ntu60", "--sfhead"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1450064 parameters"), "{text}");
    assert!(
        text.contains("SF-Head: 10 heads, 3392 parameters"),
        "{text}"
    );
    assert!(
        text.contains("sf_heads.0") && text.contains("320 parameters (316 used"),
        "{text}"
    );
    assert!(
        text.contains("sf_heads.9") && text.contains("368 parameters"),
        "{text}"
    );
    let out = sfhead(&["info", "model", "--sfhead", "--sfhead-blocks", "frhead"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("SF-Head: 4 heads, 1392 parameters"), "{text}");
    // InfoGCN's nine blocks: three heads at each of the widths 64, 128 and 256.
    let out = sfhead(&["info", "model", "--model", "infogcn", "--sfhead"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("SF-Head: 9 heads, 3072 parameters"), "{text}");
    let out = sfhead(&[
        "info",
        "model",
        "--model",
        "infogcn",
        "--sfhead-blocks",
        "10",
        "--sfhead",
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.contains("InfoGCN has blocks 1 to 9"), "{text}");
}

/// A UCLA-sized CTR-GCN (V = 20, M = 1, K = 10) with SF-Head on 2 short clips, small enough for
/// lavapipe.
const SHAPE: [usize; 5] = [2, 3, 8, 20, 1];
const LABELS: [u32; 2] = [3, 7];

fn model() -> CtrGcnConfig {
    Dataset::Ucla
        .config()
        .with_sf_head(SfHeadOptions::default())
}

fn write_inputs(dir: &Path) -> (PathBuf, PathBuf, Vec<f32>) {
    let gpu = gpu();
    let mut g = Graph::new();
    CtrGcn::new(&mut g, model(), 5);
    let mut store = Store::new();
    Executor::compile(&gpu, &g, &mut store, &[]).unwrap();
    let weights = dir.join("weights.safetensors");
    save(&gpu, &store, &weights, &BTreeMap::new()).unwrap();
    let x = uniform(7, SHAPE.iter().product(), -1.0, 1.0);
    let input = dir.join("batch.safetensors");
    let tensors = [
        OutputTensor::f32("x", SHAPE.to_vec(), x.clone()),
        OutputTensor::f32("y", vec![2], LABELS.map(|l| l as f32).to_vec()),
    ];
    write_tensors(&input, &tensors, &BTreeMap::new()).unwrap();
    (weights, input, x)
}

#[test]
fn debug_grads_writes_what_the_library_step_computes() {
    let dir = temp_dir("grads");
    let (weights, input, x) = write_inputs(&dir);
    let out = dir.join("grads.safetensors");
    let args = |i: &Path| {
        vec![
            "debug".to_string(),
            "grads".into(),
            "--model".into(),
            "ctrgcn".into(),
            "--dataset".into(),
            "ucla".into(),
            "--sfhead".into(),
            "--weights".into(),
            weights.display().to_string(),
            "--input".into(),
            i.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    // Float labels are refused with the file and key named.
    let run = |a: Vec<String>| sfhead(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let refused = run(args(&input));
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("batch.safetensors: key `y`"), "{message}");
    assert!(!out.exists());

    let y: Vec<u8> = LABELS
        .iter()
        .flat_map(|&l| i64::from(l).to_le_bytes())
        .collect();
    let xs: Vec<u8> = bytemuck::cast_slice(&x).to_vec();
    let views = [
        (
            "x",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, SHAPE.to_vec(), &xs)
                .unwrap(),
        ),
        (
            "y",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![2], &y).unwrap(),
        ),
    ];
    std::fs::write(&input, safetensors::serialize(views, None).unwrap()).unwrap();
    let done = run(args(&input));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let bytes = std::fs::read(&out).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let read = |key: &str| -> Vec<f32> {
        bytemuck::pod_collect_to_vec(file.tensor(key).unwrap_or_else(|_| panic!("{key}")).data())
    };
    // The same step through the library, on the same weights: identical bits.
    let gpu = gpu();
    let mut store = Store::new();
    let options = StepOptions {
        sgd: None,
        keep_gradients: true,
    };
    let step = TrainStep::build(&gpu, &mut store, &SHAPE, options, |g, x, _labels| {
        CtrGcn::new(g, model(), 0).forward_with_losses(g, x, Mode::Train)
    })
    .unwrap();
    sfhead::train::load(&gpu, &store, &weights).unwrap();
    let loss = step.step(&x, &LABELS, 0.0).unwrap();
    assert_eq!(read("loss"), vec![loss]);
    assert_eq!(read("logits"), step.logits().unwrap());
    let terms = step.loss_terms().unwrap();
    let names: Vec<&str> = terms.iter().map(|t| t.0).collect();
    assert_eq!(names, ["ce", "con", "red"]);
    for (name, value) in &terms {
        assert_eq!(read(&format!("loss.{name}")), vec![*value], "{name}");
    }
    let gradients = step.gradients().unwrap();
    // SF-Head's unused `bn` has no gradient: 10 heads × weight and bias.
    assert_eq!(gradients.len(), 564 + 10 * 18 - 10 * 2);
    assert_eq!(file.names().len(), 2 + terms.len() + gradients.len());
    for (key, g) in gradients {
        assert_eq!(read(&format!("grad.{key}")), g, "{key}");
        let shape = file
            .tensor(&format!("grad.{key}"))
            .unwrap()
            .shape()
            .to_vec();
        assert_eq!(Some(shape.as_slice()), store.shape(&key), "{key}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_step_reports_time_and_memory() {
    let out = sfhead(&[
        "bench",
        "step",
        "--model",
        "ctrgcn",
        "--dataset",
        "ucla",
        "--batch",
        "1",
        "--frames",
        "8",
        "--steps",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["milliseconds_per_step"].as_f64().unwrap() > 0.0);
    assert!(report["activation_bytes"].as_u64().unwrap() > 0);
    assert!(
        report["activation_bytes"].as_u64() < report["unshared_activation_bytes"].as_u64(),
        "the planner shares buffers"
    );
    assert_eq!(report["batch"], 1);
}

/// Scores of `names` over 3 classes from a simple formula of (stream, sample, class).
fn stream(stream: usize, names: &[&str]) -> Scores {
    Scores {
        names: names.iter().map(|n| n.to_string()).collect(),
        classes: 3,
        values: (0..names.len() * 3)
            .map(|i| ((i * 7 + stream * 5) % 11) as f32 - 4.0)
            .collect(),
        labels: Some((0..names.len()).map(|i| (i % 3) as u32).collect()),
        features: None,
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ensemble_applies_the_preset_by_sample_name_and_refuses_other_sample_sets() {
    let dir = temp_dir("ensemble");
    let names = ["S001A001", "S001A002", "S002A001", "S002A003"];
    let mut files = Vec::new();
    let mut sets = Vec::new();
    for s in 0..4 {
        let mut set = stream(s, &names);
        // Every stream but the first in another order: the join is by name.
        if s > 0 {
            let order = [3, 1, 0, 2];
            set = Scores {
                names: order.iter().map(|&i| set.names[i].clone()).collect(),
                values: order.iter().flat_map(|&i| set.row(i).to_vec()).collect(),
                labels: set
                    .labels
                    .as_ref()
                    .map(|l| order.iter().map(|&i| l[i]).collect()),
                ..set
            };
        }
        let file = dir.join(format!("s{s}.safetensors"));
        set.write_safetensors(&file).unwrap();
        files.push(file);
        sets.push(stream(s, &names));
    }
    let out = dir.join("fused.safetensors");
    let mut args = vec!["ensemble"];
    args.extend(files.iter().map(|f| path_str(f)));
    args.extend(["--preset", "ctrgcn4", "--out", path_str(&out)]);
    let run = sfhead(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = String::from_utf8(run.stdout).unwrap();
    assert!(table.contains("fusion"), "{table}");
    let fused = Scores::read(&out).unwrap();
    assert_eq!(fused.names, names);
    let weights = [0.6f32, 0.6, 0.4, 0.4];
    for i in 0..names.len() {
        for c in 0..3 {
            let want: f32 = (0..4).map(|s| weights[s] * sets[s].row(i)[c]).sum();
            assert!((fused.row(i)[c] - want).abs() < 1e-5, "{i} {c}");
        }
    }
    assert!(dir.join("fused.pkl").exists());

    let short = dir.join("short.safetensors");
    stream(0, &names[..3]).write_safetensors(&short).unwrap();
    let refused = sfhead(&["ensemble", path_str(&files[0]), path_str(&short)]);
    assert!(!refused.status.success());
    let message = String::from_utf8(refused.stderr).unwrap();
    assert!(message.contains("S002A003"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}
