//! Training configurations: named presets, TOML files and `key=value` overrides, all checked
//! against one flat set of keys.

use serde::{Deserialize, Serialize};

use crate::model::ctrgcn::Dataset;

/// Everything a training run depends on. Saved beside its checkpoints, so a run can resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// ntu60, ntu120 or ucla.
    pub dataset: String,
    /// NW-UCLA: an `all_sqe` directory or tar.gz (empty: the bundled set). NTU: a packed file
    /// from `sfhead prepare ntu`.
    pub data: String,
    /// joint or bone.
    pub stream: String,
    pub motion: bool,
    pub epochs: usize,
    pub batch_size: usize,
    pub test_batch_size: usize,
    /// Frames per sample.
    pub frames: usize,
    /// Passes over the training set per epoch (CTR-GCN's NW-UCLA recipe uses 5).
    pub repeat: usize,
    pub seed: u64,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    /// step or cosine.
    pub schedule: String,
    pub warmup_epochs: usize,
    /// step: epochs at which the learning rate is multiplied by `lr_gamma`.
    pub lr_steps: Vec<usize>,
    pub lr_gamma: f32,
    /// cosine: the learning rate the annealing ends at.
    pub min_lr: f32,
    /// At most this many training batches per epoch (0: all); for short trial runs.
    pub max_batches: usize,
    /// Evaluate on the first this many test clips (0: all); for short trial runs.
    pub eval_limit: usize,
    /// Batch-assembly threads (0: one per core).
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown preset `{0}`; presets: {list}", list = PRESETS.join(", "))]
    Preset(String),
    #[error("`--set {0}`: expected key=value")]
    Assignment(String),
    #[error("{0}")]
    Invalid(String),
}

/// The names [`TrainConfig::preset`] knows.
pub const PRESETS: [&str; 4] = [
    "ctrgcn-ucla",
    "ctrgcn-ntu60",
    "ctrgcn-ntu120",
    "ctrgcn-ucla-cosine",
];

impl TrainConfig {
    /// A named recipe. `ctrgcn-*` are CTR-GCN's own (reference-spec §5.1): SGD with Nesterov,
    /// base learning rate 0.1, 5 warm-up epochs, 65 epochs with steps; `ctrgcn-ucla-cosine` is the
    /// SF-Head paper's schedule (90 epochs, cosine from 0.1 to 1e-4) on NW-UCLA.
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        let ucla = Self {
            dataset: "ucla".into(),
            data: String::new(),
            stream: "joint".into(),
            motion: false,
            epochs: 65,
            batch_size: 16,
            test_batch_size: 64,
            frames: 52,
            repeat: 5,
            seed: 1,
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
            schedule: "step".into(),
            warmup_epochs: 5,
            lr_steps: vec![50],
            lr_gamma: 0.1,
            min_lr: 1e-4,
            max_batches: 0,
            eval_limit: 0,
            threads: 0,
        };
        let ntu = |dataset: &str| Self {
            dataset: dataset.into(),
            batch_size: 64,
            frames: 64,
            repeat: 1,
            weight_decay: 4e-4,
            lr_steps: vec![35, 55],
            ..ucla.clone()
        };
        match name {
            "ctrgcn-ucla" => Ok(ucla),
            "ctrgcn-ntu60" => Ok(ntu("ntu60")),
            "ctrgcn-ntu120" => Ok(ntu("ntu120")),
            "ctrgcn-ucla-cosine" => Ok(Self {
                epochs: 90,
                schedule: "cosine".into(),
                ..ucla
            }),
            other => Err(ConfigError::Preset(other.into())),
        }
    }

    /// Reads a full configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Applies `key=value` overrides; a value is read as TOML (`0.05`, `[30, 40]`, `true`) or,
    /// failing that, as a string.
    pub fn with_overrides(&self, assignments: &[String]) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(&self.to_toml()).expect("a serialised config parses");
        for assignment in assignments {
            let (key, value) = assignment
                .split_once('=')
                .ok_or_else(|| ConfigError::Assignment(assignment.clone()))?;
            let key = key.trim();
            if !table.contains_key(key) {
                return Err(ConfigError::Invalid(format!(
                    "unknown key `{key}` in `--set {assignment}`"
                )));
            }
            let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_string()));
            table.insert(key.to_string(), value);
        }
        let text = toml::to_string(&table).expect("a table serialises");
        Self::from_toml(&text)
    }

    pub fn dataset(&self) -> Result<Dataset, ConfigError> {
        match self.dataset.as_str() {
            "ntu60" => Ok(Dataset::Ntu60),
            "ntu120" => Ok(Dataset::Ntu120),
            "ucla" => Ok(Dataset::Ucla),
            other => Err(ConfigError::Invalid(format!(
                "dataset `{other}`: ntu60, ntu120 or ucla"
            ))),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        self.dataset()?;
        if !["joint", "bone"].contains(&self.stream.as_str()) {
            return invalid("stream: joint or bone");
        }
        if !["step", "cosine"].contains(&self.schedule.as_str()) {
            return invalid("schedule: step or cosine");
        }
        if self.batch_size < 2 {
            return invalid("batch_size: at least 2 (batch norm needs a batch)");
        }
        if self.test_batch_size == 0 || self.frames == 0 || self.repeat == 0 || self.epochs == 0 {
            return invalid("test_batch_size, frames, repeat and epochs must be positive");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid("lr: a positive number");
        }
        if self.dataset != "ucla" && self.data.is_empty() {
            return invalid("NTU training needs `data`: a packed file from `sfhead prepare ntu`");
        }
        Ok(())
    }

    /// The learning rate of epoch `epoch` (0-based), set once per epoch: linear warm-up to `lr`
    /// over `warmup_epochs`, then steps or cosine annealing to `min_lr`.
    pub fn learning_rate(&self, epoch: usize) -> f32 {
        if epoch < self.warmup_epochs {
            return self.lr * (epoch + 1) as f32 / self.warmup_epochs as f32;
        }
        match self.schedule.as_str() {
            "cosine" => {
                let span = (self.epochs - self.warmup_epochs).max(1) as f32;
                let progress = (epoch - self.warmup_epochs) as f32 / span;
                self.min_lr
                    + 0.5
                        * (self.lr - self.min_lr)
                        * (1.0 + (std::f32::consts::PI * progress).cos())
            }
            _ => {
                let passed = self.lr_steps.iter().filter(|&&s| s <= epoch).count();
                self.lr * self.lr_gamma.powi(passed as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrgcn_step_schedule_matches_the_recipe() {
        let c = TrainConfig::preset("ctrgcn-ntu60").unwrap();
        let lrs: Vec<f32> = [0, 1, 4, 5, 34, 35, 54, 55, 64]
            .map(|e| c.learning_rate(e))
            .to_vec();
        let want = [0.02, 0.04, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001];
        for (got, want) in lrs.iter().zip(want) {
            assert!((got - want).abs() < 1e-6 * want, "{lrs:?}");
        }
    }

    #[test]
    fn cosine_schedule_runs_from_lr_to_min_lr() {
        let c = TrainConfig::preset("ctrgcn-ucla-cosine").unwrap();
        assert!((c.learning_rate(5) - 0.1).abs() < 1e-6);
        assert!(c.learning_rate(47) < 0.06 && c.learning_rate(47) > 0.04);
        assert!((c.learning_rate(90) - 1e-4).abs() < 1e-6);
    }

    #[test]
    fn overrides_are_typed_and_checked() {
        let base = TrainConfig::preset("ctrgcn-ucla").unwrap();
        let c = base
            .with_overrides(&[
                "epochs=3".into(),
                "lr_steps=[1, 2]".into(),
                "stream=bone".into(),
            ])
            .unwrap();
        assert_eq!(
            (c.epochs, c.lr_steps.clone(), c.stream.as_str()),
            (3, vec![1, 2], "bone")
        );
        assert!(base.with_overrides(&["epoch=3".into()]).is_err());
        assert!(base.with_overrides(&["epochs".into()]).is_err());
        assert!(base.with_overrides(&["stream=legs".into()]).is_err());
        assert!(base.with_overrides(&["batch_size=1".into()]).is_err());
        assert_eq!(TrainConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn ntu_needs_prepared_data() {
        let c = TrainConfig::preset("ctrgcn-ntu60").unwrap();
        assert!(c.with_overrides(&["epochs=2".into()]).is_err());
        assert!(TrainConfig::preset("nope").is_err());
    }
}
