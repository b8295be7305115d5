//! Evaluation of a checkpoint: top-1, top-5 and per-class accuracy on the test set (or on the
//! held-out part of the training set), with per-sample scores saved by sample name in the
//! dataset's order, as safetensors and as the pickle CTR-GCN's `ensemble.py` reads.

mod accuracy;
mod evaluator;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use accuracy::{Accuracy, ClassAccuracy};
pub use evaluator::Evaluator;

use crate::atomic::write_atomic;
use crate::data::batch::Batcher;
use crate::engine::Store;
use crate::gpu::Gpu;
use crate::model::ctrgcn::IN_CHANNELS;
use crate::scores::Scores;
use crate::train::{TrainConfig, data, eval_bar, load};

/// Which samples to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalPart {
    /// The test split.
    Test,
    /// The part of the training set the run held out (`holdout` > 0 in its config): what
    /// ensemble weights are fitted on.
    Holdout,
}

impl EvalPart {
    pub fn name(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Holdout => "holdout",
        }
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub checkpoint: PathBuf,
    /// Another copy of the data than the checkpoint's config names.
    pub data: Option<String>,
    pub part: EvalPart,
    /// Samples per batch (default: the config's test batch size).
    pub batch_size: Option<usize>,
    /// Score only the first this many samples (0: all).
    pub limit: usize,
}

pub struct EvalReport {
    pub config: TrainConfig,
    pub part: EvalPart,
    pub scores: Scores,
    pub accuracy: Accuracy,
    /// The checkpoint's epoch count.
    pub epoch: String,
}

/// The training configuration a checkpoint was saved with (its `config` metadata).
pub fn checkpoint_config(
    metadata: &std::collections::BTreeMap<String, String>,
    path: &Path,
) -> anyhow::Result<TrainConfig> {
    let text = metadata.get("config").ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no `config` in the metadata: not an sfhead checkpoint (a PyTorch state dict is converted with `sfhead import`)",
            path.display()
        )
    })?;
    TrainConfig::from_toml(text)
        .map_err(|e| anyhow::anyhow!("{}: metadata `config`: {e}", path.display()))
}

/// Scores `request.part` with the checkpoint's weights, showing a progress bar on a terminal.
pub fn evaluate(gpu: &Arc<Gpu>, request: &EvalRequest) -> anyhow::Result<EvalReport> {
    let path = &request.checkpoint;
    let metadata = crate::train::read_metadata(path)?;
    let mut config = checkpoint_config(&metadata, path)?;
    if let Some(data) = &request.data {
        config.data = data.clone();
    }
    let model = config.model()?;
    let batch = request.batch_size.unwrap_or(config.test_batch_size);
    let shape = [
        batch,
        IN_CHANNELS,
        config.frames,
        model.joints(),
        model.persons,
    ];
    let data = data::open(&config)?;
    let clips = data.test_feeder.clips();
    let mut store = Store::new();
    let evaluator = Evaluator::new(gpu, &mut store, shape, clips, model, config.seed)?;
    let loaded = load(gpu, &store, path)?;
    if let Some(first) = loaded.missing.first() {
        anyhow::bail!(
            "{}: {} of the model's tensors are missing, first `{first}`",
            path.display(),
            loaded.missing.len()
        );
    }
    let set = match request.part {
        EvalPart::Test => data.test,
        EvalPart::Holdout => {
            if data.holdout.is_empty() {
                anyhow::bail!(
                    "{}: the run held nothing out (its config has holdout = {}); train with `--set holdout=0.1` to fit ensemble weights",
                    path.display(),
                    config.holdout
                );
            }
            data.holdout
        }
    };
    let total = if request.limit == 0 {
        set.len()
    } else {
        request.limit.min(set.len())
    };
    let bar = eval_bar(total);
    let batches = Batcher::new(set, data.test_feeder, config.threads, 2)?;
    let scores = evaluator.score(&batches, request.limit, |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let accuracy = Accuracy::of(&scores).expect("evaluation scores carry labels");
    Ok(EvalReport {
        config,
        part: request.part,
        scores,
        accuracy,
        epoch: metadata.get("epoch").cloned().unwrap_or_default(),
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} part of {} (checkpoint of epoch {}), ",
            self.part.name(),
            self.config.dataset,
            self.epoch
        )?;
        write!(f, "{}", self.accuracy)
    }
}

/// Where `sfhead eval` writes by default: `eval/` (or `eval-holdout/`) beside the checkpoint.
pub fn default_out_dir(checkpoint: &Path, part: EvalPart) -> PathBuf {
    let dir = checkpoint.parent().unwrap_or(Path::new("."));
    match part {
        EvalPart::Test => dir.join("eval"),
        EvalPart::Holdout => dir.join("eval-holdout"),
    }
}

/// File names in an evaluation's output directory.
pub const SCORES_FILE: &str = "scores.safetensors";
pub const PICKLE_FILE: &str = "scores.pkl";
pub const ACCURACY_FILE: &str = "accuracy.json";

/// Writes the scores (safetensors and pickle) and the accuracies (JSON) to `out`.
pub fn write_outputs(report: &EvalReport, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let files = [
        out.join(SCORES_FILE),
        out.join(PICKLE_FILE),
        out.join(ACCURACY_FILE),
    ];
    report
        .scores
        .write_safetensors_part(&files[0], Some(report.part.name()))?;
    report.scores.write_pickle(&files[1])?;
    let json = serde_json::to_string_pretty(&report.accuracy)?;
    write_atomic(&files[2], |f| std::io::Write::write_all(f, json.as_bytes()))?;
    Ok(files.to_vec())
}
