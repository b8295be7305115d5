//! `sfhead train` on the bundled NW-UCLA set (its main job: CTR-GCN + SF-Head), cut down to
//! seconds: the same configuration gives bit-identical runs, and a run stopped and resumed matches
//! an uninterrupted one (also InfoGCN's, whose latent noise must be drawn again the same).

use std::path::{Path, PathBuf};

use sfhead::eval::{EvalPart, EvalRequest, evaluate};
use sfhead::scores::Scores;
use sfhead::testing::gpu;
use sfhead::train::{EpochLog, TrainConfig, train};

fn tiny(epochs: usize) -> TrainConfig {
    TrainConfig::preset(sfhead::train::DEFAULT_PRESET)
        .unwrap()
        .with_overrides(&[
            format!("epochs={epochs}"),
            "batch_size=2".into(),
            "test_batch_size=3".into(),
            "max_batches=2".into(),
            "eval_limit=4".into(),
            "frames=8".into(),
            "warmup_epochs=1".into(),
            "threads=1".into(),
        ])
        .unwrap()
}

fn work_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfhead-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    out.sort();
    out
}

fn without_times(logs: &[EpochLog]) -> Vec<EpochLog> {
    logs.iter()
        .map(|l| EpochLog {
            seconds: 0.0,
            wall_time: 0.0,
            ..l.clone()
        })
        .collect()
}

/// Trains `config` for two epochs straight and for one epoch plus a resumed second: the logs
/// and the last checkpoint must be the same bit for bit. Returns the straight run's logs.
fn resume_matches(tag: &str, config: impl Fn(usize) -> TrainConfig) -> Vec<EpochLog> {
    let gpu = gpu();
    let straight = work_dir(&format!("{tag}-straight"));
    let whole = train(&gpu, &config(2), &straight, false, |_| {}).unwrap();
    assert_eq!(whole.epochs.len(), 2);
    assert!(straight.join("best.safetensors").exists());
    assert!(straight.join("best_scores.safetensors").exists());

    let split = work_dir(&format!("{tag}-split"));
    train(&gpu, &config(1), &split, false, |_| {}).unwrap();
    let mut reported = Vec::new();
    let resumed = train(&gpu, &config(2), &split, true, |l| reported.push(l.epoch)).unwrap();
    assert_eq!(reported, vec![1], "only the missing epoch runs");
    assert_eq!(without_times(&resumed.epochs), without_times(&whole.epochs));
    assert_eq!(
        tensors(&split.join("last.safetensors")),
        tensors(&straight.join("last.safetensors"))
    );
    for dir in [straight, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
    whole.epochs
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    for log in resume_matches("ctrgcn", tiny) {
        assert_eq!(log.batch_losses.len(), 2);
        assert!(log.batch_losses.iter().all(|l| l.is_finite()));
        assert_eq!(log.test_samples, 4);
        let terms: Vec<&str> = log.loss_terms.keys().map(String::as_str).collect();
        assert_eq!(terms, ["ce", "con", "red"]);
    }
}

#[test]
fn a_resumed_infogcn_run_draws_the_same_latent_noise() {
    // The latent noise is keyed by seed and epoch, so the resumed epoch draws what the
    // uninterrupted one did.
    let infogcn = |epochs| {
        tiny(epochs)
            .with_overrides(&[
                "model=infogcn".into(),
                "sfhead=off".into(),
                "lr=0.001".into(),
            ])
            .unwrap()
    };
    for log in resume_matches("infogcn", infogcn) {
        let terms: Vec<&str> = log.loss_terms.keys().map(String::as_str).collect();
        assert_eq!(terms, ["ce", "l2_z_mean", "mmd"]);
    }
}

#[test]
fn the_smoke_preset_runs_the_whole_loop() {
    let gpu = gpu();
    let dir = work_dir("smoke");
    let config = TrainConfig::preset("smoke")
        .unwrap()
        .with_overrides(&["threads=1".into()])
        .unwrap();
    let summary = train(&gpu, &config, &dir, false, |_| {}).unwrap();
    assert_eq!(summary.epochs.len(), 2);
    for log in &summary.epochs {
        assert_eq!(log.batch_losses.len(), 3);
        assert!(log.batch_losses.iter().all(|l| l.is_finite()));
        assert_eq!(log.test_samples, 16);
    }
    for file in [
        "config.toml",
        "log.jsonl",
        "log.csv",
        "events.out.tfevents.sfhead",
        "last.safetensors",
        "best.safetensors",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let csv = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "epoch,lr,loss,ce,con,red,top1,top5,test_samples,seconds"
    );
    assert_eq!(rows.len(), 3);
    let first: Vec<&str> = rows[1].split(',').collect();
    let log = &summary.epochs[0];
    assert_eq!(first[0], "1");
    assert_eq!(first[2].parse::<f64>().unwrap(), log.train_loss);
    assert_eq!(first[6].parse::<f64>().unwrap(), log.top1);

    // The best epoch's scores, re-made by `sfhead eval` from its checkpoint, bit for bit.
    let best = Scores::read_safetensors(&dir.join("best_scores.safetensors")).unwrap();
    assert_eq!(best.len(), 16);
    assert!(best.labels.is_some() && best.features.is_some());
    let request = EvalRequest {
        checkpoint: dir.join("best.safetensors"),
        data: None,
        part: EvalPart::Test,
        batch_size: None,
        limit: 16,
    };
    let report = evaluate(&gpu, &request).unwrap();
    assert_eq!(report.scores.names, best.names);
    assert_eq!(report.scores.values, best.values);
    assert_eq!(report.scores.features, best.features);
    assert_eq!(report.accuracy.top1, summary.best_top1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_pyskl_pipeline_trains_and_tests_on_several_clips() {
    let gpu = gpu();
    let dir = work_dir("pyskl");
    let config = tiny(1)
        .with_overrides(&[
            "sfhead=off".into(),
            "pipeline=pyskl".into(),
            "test_clips=3".into(),
            "frames=12".into(),
            "repeat=1".into(),
        ])
        .unwrap();
    let summary = train(&gpu, &config, &dir, false, |_| {}).unwrap();
    assert!(summary.epochs[0].train_loss.is_finite());
    let request = EvalRequest {
        checkpoint: dir.join("last.safetensors"),
        data: None,
        part: EvalPart::Test,
        batch_size: Some(2),
        limit: 3,
    };
    // The evaluation after the epoch took one clip per sample (pyskl's validation); `sfhead
    // eval` takes three, whose scores are the log of their mean probabilities.
    let one_clip = Scores::read_safetensors(&dir.join("best_scores.safetensors")).unwrap();
    let report = evaluate(&gpu, &request).unwrap();
    assert_eq!(report.scores.names, one_clip.names[..3]);
    assert_ne!(
        report.scores.values,
        one_clip.values[..report.scores.values.len()]
    );
    for row in report.scores.values.chunks(report.scores.classes) {
        let total: f64 = row.iter().map(|&s| f64::from(s).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{row:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_loss_stops_the_run_naming_epoch_step_and_term_and_keeps_the_checkpoint() {
    let gpu = gpu();
    let dir = work_dir("nan");
    // A sane first epoch, then a learning rate that overflows the weights at once.
    let config = tiny(2)
        .with_overrides(&[
            "schedule=step".into(),
            "warmup_epochs=0".into(),
            "lr_steps=[1]".into(),
            "lr_gamma=3e38".into(),
        ])
        .unwrap();
    let error = train(&gpu, &config, &dir, false, |_| {})
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("epoch 2, step 2: the loss is"), "{error}");
    assert!(error.contains("(term `"), "{error}");
    assert!(error.contains("still holds epoch 1"), "{error}");
    let metadata = sfhead::train::read_metadata(&dir.join("last.safetensors")).unwrap();
    assert_eq!(metadata["epoch"], "1");
    std::fs::remove_dir_all(dir).unwrap();
}
