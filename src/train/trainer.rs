//! The training loop: epochs of shuffled, augmented batches through the compiled step, an
//! evaluation on the test split after each, and atomic checkpoints, so that a run can stop and
//! resume with exactly the results of an uninterrupted one (data order and augmentation are
//! keyed by seed, epoch and sample; parameters, BN statistics and optimiser state are saved).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint::{OutputTensor, load, save, write_tensors};
use super::config::TrainConfig;
use super::metrics::top_k_hits;
use super::step::TrainStep;
use crate::atomic::write_atomic;
use crate::data::batch::{Batcher, EpochPlan};
use crate::data::feed::{Feeder, NtuFeeder, Stream, UclaFeeder};
use crate::data::ntu::npz::NpzClips;
use crate::data::ucla::UclaSplits;
use crate::data::{ClipSet, PackedClips, Part};
use crate::engine::{Executor, Graph, Store, TensorId};
use crate::gpu::Gpu;
use crate::model::ctrgcn::{CtrGcn, CtrGcnConfig, Dataset, IN_CHANNELS};
use crate::ops::batch_norm::Mode;
use crate::ops::sgd::SgdConfig;

/// Files of a work directory.
pub const CONFIG_FILE: &str = "config.toml";
pub const LOG_FILE: &str = "log.jsonl";
pub const LAST_CHECKPOINT: &str = "last.safetensors";
pub const BEST_CHECKPOINT: &str = "best.safetensors";
pub const BEST_SCORES: &str = "best_scores.safetensors";

/// One line of the training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    /// Epoch means of the loss terms, unweighted: `ce`, and SF-Head's `con` (F-CL) and `red`
    /// (F-RL) when it is attached.
    pub loss_terms: BTreeMap<String, f64>,
    /// Loss of every training batch, for bit-exact comparisons of runs.
    pub batch_losses: Vec<f32>,
    pub top1: f64,
    pub top5: f64,
    pub test_samples: usize,
    pub seconds: f64,
}

/// The datasets and feeders of a configuration.
struct Data {
    train: Arc<dyn ClipSet>,
    test: Arc<dyn ClipSet>,
    train_feeder: Arc<dyn Feeder>,
    test_feeder: Arc<dyn Feeder>,
}

fn data(config: &TrainConfig, dataset: Dataset) -> anyhow::Result<Data> {
    let stream = if config.stream == "bone" {
        Stream::Bone
    } else {
        Stream::Joint
    };
    Ok(match dataset {
        Dataset::Ucla => {
            let source = (!config.data.is_empty()).then(|| Path::new(&config.data));
            let splits = UclaSplits::open(source)?;
            let feeder = |train| UclaFeeder {
                frames: config.frames,
                ..UclaFeeder::new(train, stream, config.motion)
            };
            Data {
                train: Arc::new(splits.train),
                test: Arc::new(splits.test),
                train_feeder: Arc::new(feeder(true)),
                test_feeder: Arc::new(feeder(false)),
            }
        }
        Dataset::Ntu60 | Dataset::Ntu120 | Dataset::Pku => {
            let path = Path::new(&config.data);
            let window = config.frames;
            // CTR-GCN's `.npz` layout (what `prepare pku` writes) or our packed file.
            let open = |part| -> anyhow::Result<Arc<dyn ClipSet>> {
                Ok(if path.extension().is_some_and(|e| e == "npz") {
                    Arc::new(NpzClips::open(path, part)?)
                } else {
                    Arc::new(PackedClips::open(path, part)?)
                })
            };
            Data {
                train: open(Part::Train)?,
                test: open(Part::Test)?,
                train_feeder: Arc::new(NtuFeeder {
                    window,
                    ..NtuFeeder::train(stream, config.motion)
                }),
                test_feeder: Arc::new(NtuFeeder {
                    window,
                    ..NtuFeeder::test(stream, config.motion)
                }),
            }
        }
    })
}

/// The evaluation graph: the same model in evaluation mode, sharing the training weights.
struct Evaluator {
    exe: Executor,
    x: TensorId,
    logits: TensorId,
    batch: usize,
}

impl Evaluator {
    fn new(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        shape: [usize; 5],
        model: CtrGcnConfig,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let mut g = Graph::new();
        let x = g.input("x", &shape);
        let logits = CtrGcn::new(&mut g, model, seed).forward(&mut g, x, Mode::Eval);
        let exe = Executor::compile(gpu, &g, store, &[logits])?;
        Ok(Self {
            exe,
            x,
            logits,
            batch: shape[0],
        })
    }

    /// Logits of a batch of up to `batch` samples; a short batch is padded with zeros, which
    /// evaluation-mode BN keeps from affecting the real rows.
    fn logits(&self, x: &[f32], rows: usize) -> anyhow::Result<Vec<f32>> {
        let mut padded = x.to_vec();
        padded.resize(x.len() / rows * self.batch, 0.0);
        self.exe.write(self.x, &padded)?;
        self.exe.run();
        let logits = self.exe.read(self.logits)?;
        Ok(logits[..logits.len() / self.batch * rows].to_vec())
    }
}

/// What a finished run reached.
#[derive(Debug, Clone)]
pub struct Summary {
    pub epochs: Vec<EpochLog>,
    pub best_top1: f64,
    pub best_epoch: usize,
}

/// Trains `config` in `work_dir`; with `resume`, continues from the work directory's last
/// checkpoint. `report` is called after each epoch.
pub fn train(
    gpu: &Arc<Gpu>,
    config: &TrainConfig,
    work_dir: &Path,
    resume: bool,
    mut report: impl FnMut(&EpochLog),
) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(work_dir)?;
    let dataset = config.dataset()?;
    let model = config.model()?;
    let (joints, persons, classes) = (model.joints(), model.persons, model.classes);
    let data = data(config, dataset)?;
    let shape = |batch| [batch, IN_CHANNELS, config.frames, joints, persons];

    let mut store = Store::new();
    let sgd = SgdConfig {
        momentum: config.momentum,
        weight_decay: config.weight_decay,
        nesterov: config.nesterov,
    };
    let step = TrainStep::new(gpu, &mut store, &shape(config.batch_size), sgd, |g, x| {
        CtrGcn::new(g, model.clone(), config.seed).forward_with_losses(g, x, Mode::Train)
    })?;
    let evaluator = Evaluator::new(
        gpu,
        &mut store,
        shape(config.test_batch_size),
        model,
        config.seed,
    )?;

    let mut logs: Vec<EpochLog> = Vec::new();
    let (mut best_top1, mut best_epoch) = (f64::NEG_INFINITY, 0);
    if resume {
        let loaded = load(gpu, &store, &work_dir.join(LAST_CHECKPOINT))?;
        if !loaded.missing.is_empty() {
            anyhow::bail!(
                "{}: {} tensors missing, first `{}`",
                work_dir.join(LAST_CHECKPOINT).display(),
                loaded.missing.len(),
                loaded.missing[0]
            );
        }
        let number = |key: &str| -> anyhow::Result<f64> {
            let value = loaded.metadata.get(key).ok_or_else(|| {
                anyhow::anyhow!("{}: no `{key}` in the metadata", LAST_CHECKPOINT)
            })?;
            Ok(value.parse()?)
        };
        best_top1 = number("best_top1")?;
        best_epoch = number("best_epoch")? as usize;
        let text = std::fs::read_to_string(work_dir.join(LOG_FILE))?;
        for (i, line) in text.lines().enumerate() {
            logs.push(serde_json::from_str(line).map_err(|e| {
                anyhow::anyhow!("{}: line {}: {e}", work_dir.join(LOG_FILE).display(), i + 1)
            })?);
        }
        logs.truncate(number("epoch")? as usize);
    }
    write_atomic(&work_dir.join(CONFIG_FILE), |f| {
        f.write_all(config.to_toml().as_bytes())
    })?;

    let train_batches = Batcher::new(data.train.clone(), data.train_feeder, config.threads, 2)?;
    let test_batches = Batcher::new(data.test.clone(), data.test_feeder, config.threads, 2)?;
    for epoch in logs.len()..config.epochs {
        let start = Instant::now();
        let lr = config.learning_rate(epoch);
        let plan = EpochPlan::train(config.batch_size, config.seed, epoch as u64)
            .with_repeat(config.repeat);
        let limit = if config.max_batches == 0 {
            usize::MAX
        } else {
            config.max_batches
        };
        let mut batch_losses = Vec::new();
        let mut term_sums: BTreeMap<String, f64> = BTreeMap::new();
        for batch in train_batches.epoch(plan).take(limit) {
            let batch = batch?;
            let loss = step.step(&batch.x, &batch.labels, lr)?;
            let terms = step.loss_terms()?;
            if !loss.is_finite() {
                let culprit = terms
                    .iter()
                    .find(|(_, v)| !v.is_finite())
                    .map_or(String::new(), |(name, v)| {
                        format!(" (term `{name}` is {v})")
                    });
                anyhow::bail!(
                    "epoch {epoch}, batch {}: the loss is {loss}{culprit}",
                    batch_losses.len()
                );
            }
            for (name, value) in terms {
                *term_sums.entry(name.to_string()).or_default() += f64::from(value);
            }
            batch_losses.push(loss);
        }
        let batches = batch_losses.len().max(1) as f64;
        let loss_terms = term_sums
            .into_iter()
            .map(|(name, sum)| (name, sum / batches))
            .collect();

        let eval_limit = if config.eval_limit == 0 {
            data.test.len()
        } else {
            config.eval_limit
        };
        let (mut hits, mut seen) = ((0, 0), 0);
        let mut scores = Vec::new();
        for batch in test_batches.epoch(EpochPlan::test(config.test_batch_size)) {
            let batch = batch?;
            let rows = batch.labels.len().min(eval_limit - seen);
            let logits =
                evaluator.logits(&batch.x[..batch.x.len() / batch.labels.len() * rows], rows)?;
            let (top1, top5) = top_k_hits(&logits, &batch.labels[..rows], classes);
            hits = (hits.0 + top1, hits.1 + top5);
            scores.extend(logits);
            seen += rows;
            if seen >= eval_limit {
                break;
            }
        }
        let log = EpochLog {
            epoch,
            lr,
            train_loss: batch_losses.iter().map(|&l| f64::from(l)).sum::<f64>() / batches,
            loss_terms,
            batch_losses,
            top1: hits.0 as f64 / seen.max(1) as f64,
            top5: hits.1 as f64 / seen.max(1) as f64,
            test_samples: seen,
            seconds: start.elapsed().as_secs_f64(),
        };
        if log.top1 > best_top1 {
            best_top1 = log.top1;
            best_epoch = epoch;
            save(
                gpu,
                &store,
                &work_dir.join(BEST_CHECKPOINT),
                &metadata(config, epoch + 1, best_top1, best_epoch),
            )?;
            let names: Vec<&str> = (0..seen).map(|i| data.test.name(i)).collect();
            let meta = BTreeMap::from([("names".to_string(), names.join(","))]);
            let logits = OutputTensor::f32("logits", vec![seen, classes], scores);
            write_tensors(&work_dir.join(BEST_SCORES), &[logits], &meta)?;
        }
        logs.push(log);
        let text: String = logs
            .iter()
            .map(|l| serde_json::to_string(l).expect("logs serialise") + "\n")
            .collect();
        write_atomic(&work_dir.join(LOG_FILE), |f| f.write_all(text.as_bytes()))?;
        save(
            gpu,
            &store,
            &work_dir.join(LAST_CHECKPOINT),
            &metadata(config, epoch + 1, best_top1, best_epoch),
        )?;
        report(logs.last().expect("just pushed"));
    }
    Ok(Summary {
        epochs: logs,
        best_top1,
        best_epoch,
    })
}

fn metadata(
    config: &TrainConfig,
    epoch: usize,
    best_top1: f64,
    best_epoch: usize,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("model".to_string(), "ctrgcn".to_string()),
        ("sfhead".to_string(), config.sfhead.clone()),
        ("dataset".to_string(), config.dataset.clone()),
        ("epoch".to_string(), epoch.to_string()),
        ("best_top1".to_string(), best_top1.to_string()),
        ("best_epoch".to_string(), best_epoch.to_string()),
        ("config".to_string(), config.to_toml()),
    ])
}

/// The configuration saved in a work directory.
pub fn saved_config(work_dir: &Path) -> anyhow::Result<TrainConfig> {
    let path: PathBuf = work_dir.join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    TrainConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
