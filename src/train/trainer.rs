//! The training loop: epochs of shuffled, augmented batches through the compiled step, an
//! evaluation on the test split after each, and atomic checkpoints, so that a run can stop and
//! resume with exactly the results of an uninterrupted one (data order and augmentation are
//! keyed by seed, epoch and sample; parameters, BN statistics and optimiser state are saved).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::checkpoint::{load, save};
use super::config::TrainConfig;
use super::data;
use super::metrics::top_k_hits;
use super::progress::{Lap, RunProgress, eval_bar};
use super::run_log;
use super::step::{PendingStep, StepLosses, TrainError, TrainStep};
use crate::atomic::write_atomic;
use crate::data::batch::{Batcher, EpochPlan};
use crate::data::feed::noise_rng;
use crate::engine::{CompileError, Store};
use crate::eval::Evaluator;
use crate::gpu::Gpu;
use crate::model::ctrgcn::IN_CHANNELS;
use crate::model::network::Network;
use crate::ops::batch_norm::Mode;
use crate::ops::sgd::SgdConfig;

/// Files of a work directory.
pub const CONFIG_FILE: &str = "config.toml";
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
    /// When the epoch ended, in seconds since the Unix epoch (TensorBoard's time axis).
    #[serde(default)]
    pub wall_time: f64,
}

impl EpochLog {
    /// The line printed after the epoch, numbered from 1 of `epochs`.
    pub fn line(&self, epochs: usize) -> String {
        let terms: Vec<String> = self
            .loss_terms
            .iter()
            .map(|(name, value)| format!("{name} {value:.4}"))
            .collect();
        format!(
            "epoch {:>3}/{epochs}  lr {:.5}  loss {:.4} ({})  top-1 {:.2} %  top-5 {:.2} %  {:.1} s",
            self.epoch + 1,
            self.lr,
            self.train_loss,
            terms.join(", "),
            100.0 * self.top1,
            100.0 * self.top5,
            self.seconds
        )
    }
}

/// Where a run's configuration comes from: a preset (the default one if none), a TOML file, or
/// the work directory of a run being resumed.
pub struct ConfigSource<'a> {
    pub preset: Option<&'a str>,
    pub config: Option<&'a Path>,
    pub resume: Option<&'a Path>,
    /// Default: `work_dirs/<preset>`.
    pub work_dir: Option<PathBuf>,
}

impl ConfigSource<'_> {
    /// The configuration with `set` (`key=value`) applied, and the work directory.
    pub fn resolve(self, set: &[String]) -> anyhow::Result<(TrainConfig, PathBuf)> {
        let preset = self.preset.unwrap_or(super::DEFAULT_PRESET);
        let work_dir = self
            .work_dir
            .unwrap_or_else(|| PathBuf::from("work_dirs").join(preset));
        let (base, work_dir) = match (self.resume, self.config) {
            (Some(dir), _) => (saved_config(dir)?, dir.to_path_buf()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let config = TrainConfig::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                (config, work_dir)
            }
            (None, None) => (TrainConfig::preset(preset)?, work_dir),
        };
        Ok((base.with_overrides(set)?, work_dir))
    }
}

/// What a finished run reached.
#[derive(Debug, Clone)]
pub struct Summary {
    pub epochs: Vec<EpochLog>,
    pub best_top1: f64,
    pub best_epoch: usize,
}

/// Compiles a graph, and on running out of GPU memory says which batch size would fit by
/// compiling at halved batches (each failed attempt's buffers are freed before the next).
fn fit_batch<T>(
    what: &str,
    batch: usize,
    mut compile: impl FnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let error = match compile(batch) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let Some(CompileError::OutOfMemory { .. }) = error
        .downcast_ref::<TrainError>()
        .and_then(|t| match t {
            TrainError::Compile(c) => Some(c),
            _ => None,
        })
        .or_else(|| error.downcast_ref::<CompileError>())
    else {
        return Err(error);
    };
    let mut smaller = batch / 2;
    while smaller >= 2 && compile(smaller).is_err() {
        smaller /= 2;
    }
    let hint = if smaller >= 2 {
        format!("{what} batch {smaller} fits on this adapter")
    } else {
        format!("not even a {what} batch of 2 fits on this adapter")
    };
    Err(error.context(format!(
        "the {what} batch of {batch} does not fit in GPU memory; {hint}"
    )))
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
    let model = config.model()?;
    let (joints, persons, classes) = (model.joints(), model.persons, model.classes);
    let data = data::open(config)?;
    let shape = |batch| [batch, IN_CHANNELS, config.frames, joints, persons];

    let mut store = Store::new();
    let sgd = SgdConfig {
        momentum: config.momentum,
        weight_decay: config.weight_decay,
        nesterov: config.nesterov,
    };
    let step = fit_batch("training", config.batch_size, |batch| {
        let mut trial = Store::new();
        let step = TrainStep::new(gpu, &mut trial, &shape(batch), sgd, |g, x, labels| {
            Network::new(g, model.clone(), config.seed).forward(g, x, Some(labels), Mode::Train)
        })?;
        store = trial;
        Ok(step)
    })?;
    let clips = data.val_feeder.clips();
    let evaluator = fit_batch("test", config.test_batch_size, |batch| {
        Evaluator::new(
            gpu,
            &mut store,
            shape(batch),
            clips,
            model.clone(),
            config.seed,
        )
    })?;

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
        let path = work_dir.join(run_log::LOG_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            logs.push(
                serde_json::from_str(line)
                    .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", path.display(), i + 1))?,
            );
        }
        logs.truncate(number("epoch")? as usize);
    }
    write_atomic(&work_dir.join(CONFIG_FILE), |f| {
        f.write_all(config.to_toml().as_bytes())
    })?;

    let train_batches = Batcher::new(data.train.clone(), data.train_feeder, config.threads, 2)?;
    let test_batches = Batcher::new(data.test.clone(), data.val_feeder, config.threads, 2)?;
    let limit = if config.max_batches == 0 {
        usize::MAX
    } else {
        config.max_batches
    };
    let per_epoch = EpochPlan::train(config.batch_size, config.seed, 0)
        .with_repeat(config.repeat)
        .batches(data.train.len())
        .min(limit);
    let eval_samples = if config.eval_limit == 0 {
        data.test.len()
    } else {
        config.eval_limit.min(data.test.len())
    };
    let software = gpu.is_software().then(|| gpu.report().info.name.clone());
    let mut progress = RunProgress::new(
        software,
        config.epochs,
        config.batch_size,
        per_epoch,
        eval_samples.div_ceil(config.test_batch_size),
    );
    for epoch in logs.len()..config.epochs {
        let start = Instant::now();
        let lr = config.learning_rate(epoch);
        let plan = EpochPlan::train(config.batch_size, config.seed, epoch as u64)
            .with_repeat(config.repeat);
        step.reseed_noise(noise_rng(config.seed, epoch as u64));
        let mut batch_losses = Vec::new();
        let mut term_sums: BTreeMap<String, f64> = BTreeMap::new();
        let bar = progress.epoch_bar(epoch);
        let mut lap = Lap::start();
        // One step ahead: step n + 1 is submitted before the losses of step n are read, so
        // the device is never idle while the host checks and logs a step.
        let mut pending: Option<PendingStep> = None;
        let mut batches = train_batches.epoch(plan).take(limit).enumerate();
        loop {
            let next = match batches.next() {
                Some((index, batch)) => {
                    let batch = batch?;
                    let lr = config.learning_rate_at(epoch, index, per_epoch);
                    Some(step.submit(&batch.x, &batch.labels, lr)?)
                }
                None => None,
            };
            let Some(done) = std::mem::replace(&mut pending, next) else {
                if pending.is_none() {
                    break;
                }
                continue;
            };
            let StepLosses { loss, terms } = step.losses(done)?;
            if !loss.is_finite() {
                bar.abandon();
                let culprit = terms
                    .iter()
                    .find(|(_, v)| !v.is_finite())
                    .map_or(String::new(), |(name, v)| {
                        format!(" (term `{name}` is {v})")
                    });
                let kept = if logs.is_empty() {
                    "no checkpoint was written yet".to_string()
                } else {
                    format!(
                        "{} still holds epoch {}",
                        work_dir.join(LAST_CHECKPOINT).display(),
                        logs.len()
                    )
                };
                anyhow::bail!(
                    "epoch {}, step {}: the loss is {loss}{culprit}; training stopped and {kept}. \
                     A lower `lr` or a longer warm-up usually helps",
                    epoch + 1,
                    batch_losses.len() + 1
                );
            }
            for (name, value) in terms {
                *term_sums.entry(name.to_string()).or_default() += f64::from(value);
            }
            progress.step(&bar, epoch, batch_losses.len(), lap.next(), loss, lr);
            batch_losses.push(loss);
        }
        bar.finish_and_clear();
        let batches = batch_losses.len().max(1) as f64;
        let loss_terms = term_sums
            .into_iter()
            .map(|(name, sum)| (name, sum / batches))
            .collect();

        let bar = eval_bar(eval_samples);
        let mut lap = Lap::start();
        let mut eval_laps = Vec::new();
        let scores = evaluator.score(&test_batches, config.eval_limit, |done| {
            eval_laps.push(lap.next());
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        for took in eval_laps {
            progress.eval_batch(took);
        }
        let (top1, top5) = top_k_hits(
            &scores.values,
            scores.labels.as_deref().expect("evaluation keeps labels"),
            classes,
        );
        let seen = scores.len();
        let log = EpochLog {
            epoch,
            lr,
            train_loss: batch_losses.iter().map(|&l| f64::from(l)).sum::<f64>() / batches,
            loss_terms,
            batch_losses,
            top1: top1 as f64 / seen.max(1) as f64,
            top5: top5 as f64 / seen.max(1) as f64,
            test_samples: seen,
            seconds: start.elapsed().as_secs_f64(),
            wall_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        if log.top1 > best_top1 {
            best_top1 = log.top1;
            best_epoch = epoch;
            save(
                gpu,
                &store,
                &work_dir.join(BEST_CHECKPOINT),
                &checkpoint_metadata(config, epoch + 1, best_top1, best_epoch),
            )?;
            scores.write_safetensors_part(&work_dir.join(BEST_SCORES), Some("test"))?;
        }
        logs.push(log);
        run_log::write(work_dir, &logs)?;
        save(
            gpu,
            &store,
            &work_dir.join(LAST_CHECKPOINT),
            &checkpoint_metadata(config, epoch + 1, best_top1, best_epoch),
        )?;
        report(logs.last().expect("just pushed"));
    }
    Ok(Summary {
        epochs: logs,
        best_top1,
        best_epoch,
    })
}

/// The metadata of a checkpoint: what it is, the epochs done, the best top-1 so far and at which
/// epoch, and the configuration that rebuilds its model.
pub fn checkpoint_metadata(
    config: &TrainConfig,
    epoch: usize,
    best_top1: f64,
    best_epoch: usize,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("model".to_string(), config.model.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_memory_names_the_batch_that_fits() {
        let mut tried = Vec::new();
        let error = fit_batch("training", 64, |batch| -> anyhow::Result<()> {
            tried.push(batch);
            if batch > 8 {
                Err(CompileError::OutOfMemory {
                    mib: batch as f64,
                    activation_mib: batch as f64 / 2.0,
                    message: "Out of Memory".into(),
                })?;
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(tried, [64, 32, 16, 8]);
        let text = format!("{error:#}");
        assert!(
            text.starts_with("the training batch of 64 does not fit in GPU memory; training batch 8 fits on this adapter: out of GPU memory allocating 64 MiB"),
            "{text}"
        );
    }

    #[test]
    fn other_compile_errors_are_not_retried() {
        let mut calls = 0;
        let error = fit_batch("test", 64, |_| -> anyhow::Result<()> {
            calls += 1;
            anyhow::bail!("a shader failed to compile")
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(error.to_string(), "a shader failed to compile");
    }
}
