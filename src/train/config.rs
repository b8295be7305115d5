//! Training configurations: named presets, TOML files and `key=value` overrides, all checked
//! against one flat set of keys.

use serde::{Deserialize, Serialize};

use crate::data::feed::Stream;
use crate::model::blockgcn::TopologyRows;
use crate::model::ctrgcn::{Backbone, Dataset, Placement, SfHeadOptions, parse_blocks};
use crate::model::sf_head::{Combine, Item, SfLossConfig};
use crate::ops::sf_loss::PhiSign;

/// Everything a training run depends on. Saved beside its checkpoints, so a run can resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The backbone: ctrgcn, stgcn, aagcn, agcn, infogcn or blockgcn.
    #[serde(default = "default_model")]
    pub model: String,
    /// ntu60, ntu120, ucla or pku.
    pub dataset: String,
    /// NW-UCLA: an `all_sqe` directory or tar.gz (empty: the bundled set). NTU: a packed file
    /// from `sfhead prepare ntu`.
    pub data: String,
    /// joint, bone, or `k1`, `k2`, … for InfoGCN's k-th mode (NTU's joint order only).
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
    /// step, cosine (annealed once per epoch) or cosine_iter (annealed at every step, as HD-GCN
    /// and pyskl do).
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
    /// SF-Head: off, tap (training-only, the default of the SF-Head presets) or inline.
    pub sfhead: String,
    /// The blocks a head attaches to: all, frhead (FR-Head's 1, 5, 8, 10) or a list such as
    /// "1,5,8,10".
    pub sfhead_blocks: String,
    /// Channel groups G.
    pub sfhead_groups: usize,
    /// Weights of F-CL and F-RL in the total loss.
    pub lambda_con: f32,
    pub lambda_red: f32,
    /// α of the modified cosine, τ of F-RL, m and γ of the losses, ε of F-CL's focal gate.
    pub sfhead_alpha: f32,
    pub sfhead_tau: f32,
    pub sfhead_margin: f32,
    pub sfhead_gamma: f32,
    pub sfhead_eps: f32,
    /// Sign of F-CL's φ: focal (−(1−δ)^γ·log δ) or printed (the paper's +).
    pub sfhead_phi: String,
    /// What one item of the losses is: sample (persons concatenated), mean_persons or rows.
    pub sfhead_item: String,
    /// F-CL's four terms: sum or mean.
    pub sfhead_fcl_terms: String,
    /// Over the heads: mean or sum.
    pub sfhead_heads: String,
    /// Hold this fraction of the training set out of training (chosen by sample name and seed),
    /// so that `sfhead eval --part holdout` can score it for fitting ensemble weights.
    #[serde(default)]
    pub holdout: f64,
    /// BlockGCN: which sample's topology features each person gets, `official` (the released
    /// code's `repeat(2, 1)`, another sample's whenever a batch has several) or `aligned`.
    #[serde(default = "default_blockgcn_topology")]
    pub blockgcn_topology: String,
    /// HD-GCN: the centre of mass of its hierarchy, a joint number (NTU: 21, 1 or 2; NW-UCLA: 3);
    /// 0 takes the skeleton's first (`graph/*.toml`).
    #[serde(default)]
    pub hdgcn_com: usize,
    /// The data pipeline: `ctrgcn` (CTR-GCN's feeders) or `pyskl` (ProtoGCN's: PreNormalize3D,
    /// rotation, left-right flip, uniform sampling of `frames` frames; `docs/pyskl.md`).
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// pyskl: clips per test sample, their probabilities averaged (the evaluation after each
    /// epoch takes one, as pyskl's validation does).
    #[serde(default = "default_test_clips")]
    pub test_clips: usize,
}

fn default_pipeline() -> String {
    "ctrgcn".into()
}

fn default_test_clips() -> usize {
    crate::data::feed::TEST_CLIPS
}

fn default_blockgcn_topology() -> String {
    TopologyRows::default().name().into()
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

fn default_model() -> String {
    Backbone::Ctrgcn.name().into()
}

/// The names [`TrainConfig::preset`] knows.
pub const PRESETS: [&str; 54] = [
    "sfhead-ucla",
    "sfhead-ntu60",
    "sfhead-ntu120",
    "sfhead-pku-xsub",
    "sfhead-pku-xview",
    "ctrgcn-ucla",
    "ctrgcn-ntu60",
    "ctrgcn-ntu120",
    "ctrgcn-ucla-cosine",
    "ctrgcn-pku-xsub",
    "ctrgcn-pku-xview",
    "stgcn-ntu60",
    "stgcn-ntu120",
    "stgcn-ucla",
    "sfhead-stgcn-ntu60",
    "sfhead-stgcn-ntu120",
    "sfhead-stgcn-ucla",
    "aagcn-ntu60",
    "aagcn-ntu120",
    "aagcn-ucla",
    "sfhead-aagcn-ntu60",
    "sfhead-aagcn-ntu120",
    "sfhead-aagcn-ucla",
    "agcn-ntu60",
    "agcn-ntu120",
    "agcn-ucla",
    "sfhead-agcn-ntu60",
    "sfhead-agcn-ntu120",
    "sfhead-agcn-ucla",
    "infogcn-ntu60",
    "infogcn-ntu120",
    "infogcn-ucla",
    "sfhead-infogcn-ntu60",
    "sfhead-infogcn-ntu120",
    "sfhead-infogcn-ucla",
    "blockgcn-ntu60",
    "blockgcn-ntu120",
    "blockgcn-ucla",
    "sfhead-blockgcn-ntu60",
    "sfhead-blockgcn-ntu120",
    "sfhead-blockgcn-ucla",
    "hdgcn-ntu60",
    "hdgcn-ntu120",
    "hdgcn-ucla",
    "sfhead-hdgcn-ntu60",
    "sfhead-hdgcn-ntu120",
    "sfhead-hdgcn-ucla",
    "protogcn-ntu60",
    "protogcn-ntu120",
    "protogcn-ucla",
    "sfhead-protogcn-ntu60",
    "sfhead-protogcn-ntu120",
    "sfhead-protogcn-ucla",
    "smoke",
];

/// The preset `sfhead train` uses when given none: CTR-GCN + SF-Head on the bundled NW-UCLA set.
pub const DEFAULT_PRESET: &str = "sfhead-ucla";

impl TrainConfig {
    /// A named recipe. `ctrgcn-*` are CTR-GCN's own (reference-spec §5.1): SGD with Nesterov,
    /// base learning rate 0.1, 5 warm-up epochs, 65 epochs with steps; `ctrgcn-ucla-cosine` is the
    /// SF-Head paper's schedule (90 epochs, cosine from 0.1 to 1e-4) on NW-UCLA. `sfhead-*` are
    /// CTR-GCN + SF-Head (tap on every block) with the paper's recipe (§4.2: 90 epochs, 5 warm-up,
    /// cosine from 0.1 to 1e-4, weight decay 4e-4). PKU-MMD I reads the `.npz` of
    /// `sfhead prepare pku` (`data` = its path). `smoke` runs the whole loop on a few NW-UCLA
    /// clips in about a minute on a CPU driver. `infogcn-*` are InfoGCN's own recipe (backbones
    /// spec §5e: 110 epochs, steps at 90 and 100, weight decay 5e-4, batch 128, the k = 1 stream
    /// on NTU), `sfhead-infogcn-*` the SF-Head paper's recipe on InfoGCN's input. `blockgcn-*`
    /// are BlockGCN's (§7e: 140 epochs, lr 0.05, steps at 110 and 120, weight decay 4e-4, batch
    /// 64), `sfhead-blockgcn-*` the paper's recipe on BlockGCN. `hdgcn-*` are HD-GCN's (§6e: 90
    /// epochs, 5 warm-up, cosine to 1e-4 at every step, weight decay 4e-4, batch 64),
    /// `sfhead-hdgcn-*` the paper's recipe on HD-GCN. `protogcn-*` are ProtoGCN's (§8e: 150
    /// epochs, per-step cosine to 0, weight decay 5e-4, lr 0.1 per 64 samples, the pyskl
    /// pipeline with 100 frames and a 10-clip test), `sfhead-protogcn-*` the paper's recipe on
    /// that input.
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        if let Some(rest) = name.strip_prefix("infogcn-") {
            let base = Self::preset(&format!("ctrgcn-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            let ntu = base.dataset != "ucla";
            return Ok(Self {
                epochs: 110,
                lr_steps: vec![90, 100],
                weight_decay: 5e-4,
                batch_size: if ntu { 128 } else { base.batch_size },
                test_batch_size: if ntu { 128 } else { base.test_batch_size },
                ..Self::on_infogcn_input(base)
            });
        }
        if let Some(rest) = name.strip_prefix("blockgcn-") {
            let base = Self::preset(&format!("ctrgcn-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            return Ok(Self {
                model: Backbone::Blockgcn.name().into(),
                epochs: 140,
                lr: 0.05,
                lr_steps: vec![110, 120],
                weight_decay: 4e-4,
                ..base
            });
        }
        if let Some(rest) = name.strip_prefix("sfhead-blockgcn-") {
            let base = Self::preset(&format!("sfhead-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            return Ok(Self {
                model: Backbone::Blockgcn.name().into(),
                ..base
            });
        }
        if let Some(rest) = name.strip_prefix("hdgcn-") {
            // HD-GCN's recipe: 90 epochs, 5 warm-up epochs, cosine annealing to 1e-4.
            let base = Self::preset(&format!("ctrgcn-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            return Ok(Self {
                model: Backbone::Hdgcn.name().into(),
                epochs: 90,
                schedule: "cosine_iter".into(),
                min_lr: 1e-4,
                ..base
            });
        }
        if let Some(rest) = name.strip_prefix("sfhead-hdgcn-") {
            let base = Self::preset(&format!("sfhead-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            return Ok(Self {
                model: Backbone::Hdgcn.name().into(),
                ..base
            });
        }
        if let Some(rest) = name.strip_prefix("protogcn-") {
            // ProtoGCN's configs/ntu120_xsub/j.py: 150 epochs, per-step cosine to 0 without
            // warm-up, weight decay 5e-4, lr 0.1 for a batch of 64 (0.025 for 16).
            let base = Self::preset(&format!("ctrgcn-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            return Ok(Self {
                epochs: 150,
                lr: 0.1 * base.batch_size as f32 / 64.0,
                schedule: "cosine_iter".into(),
                warmup_epochs: 0,
                min_lr: 0.0,
                weight_decay: 5e-4,
                ..Self::on_pyskl_input(base)
            });
        }
        if let Some(rest) = name.strip_prefix("sfhead-protogcn-") {
            let base = Self::preset(&format!("sfhead-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            return Ok(Self::on_pyskl_input(base));
        }
        if let Some(rest) = name.strip_prefix("sfhead-infogcn-") {
            let base = Self::preset(&format!("sfhead-{rest}"))
                .map_err(|_| ConfigError::Preset(name.into()))?;
            return Ok(Self::on_infogcn_input(base));
        }
        // Another backbone on a CTR-GCN recipe: the recipe the SF-Head paper's ST-GCN and
        // 2s-AGCN counts point to is FR-Head's, which is CTR-GCN's (backbones spec §3e, §4e), and
        // the SF-Head paper's own recipe is the same for every backbone.
        for backbone in [Backbone::Stgcn, Backbone::Aagcn, Backbone::Agcn] {
            let b = backbone.name();
            let on_ctrgcn_recipe = name
                .strip_prefix(&format!("{b}-"))
                .map(|rest| format!("ctrgcn-{rest}"))
                .or_else(|| {
                    name.strip_prefix(&format!("sfhead-{b}-"))
                        .map(|rest| format!("sfhead-{rest}"))
                });
            if let Some(recipe) = on_ctrgcn_recipe {
                let mut config =
                    Self::preset(&recipe).map_err(|_| ConfigError::Preset(name.into()))?;
                config.model = b.into();
                return Ok(config);
            }
        }
        let ucla = Self {
            model: default_model(),
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
            sfhead: "off".into(),
            sfhead_blocks: "all".into(),
            sfhead_groups: crate::model::sf_head::DEFAULT_GROUPS,
            lambda_con: 0.2,
            lambda_red: 0.1,
            sfhead_alpha: crate::ops::sf_loss::ALPHA,
            sfhead_tau: crate::ops::sf_loss::TAU,
            sfhead_margin: crate::ops::sf_loss::MARGIN,
            sfhead_gamma: crate::ops::sf_loss::GAMMA,
            sfhead_eps: crate::ops::sf_loss::EPS,
            sfhead_phi: "focal".into(),
            sfhead_item: "sample".into(),
            sfhead_fcl_terms: "sum".into(),
            sfhead_heads: "mean".into(),
            holdout: 0.0,
            blockgcn_topology: default_blockgcn_topology(),
            hdgcn_com: 0,
            pipeline: default_pipeline(),
            test_clips: default_test_clips(),
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
        // The SF-Head paper's recipe on top of a backbone's data settings.
        let paper = |base: Self| Self {
            sfhead: "tap".into(),
            epochs: 90,
            schedule: "cosine".into(),
            warmup_epochs: 5,
            weight_decay: 4e-4,
            ..base
        };
        match name {
            "ctrgcn-ucla" => Ok(ucla),
            "ctrgcn-ntu60" => Ok(ntu("ntu60")),
            "ctrgcn-ntu120" => Ok(ntu("ntu120")),
            "ctrgcn-pku-xsub" | "ctrgcn-pku-xview" => Ok(ntu("pku")),
            "ctrgcn-ucla-cosine" => Ok(Self {
                epochs: 90,
                schedule: "cosine".into(),
                ..ucla
            }),
            "sfhead-ucla" => Ok(paper(ucla)),
            "sfhead-ntu60" => Ok(paper(ntu("ntu60"))),
            "sfhead-ntu120" => Ok(paper(ntu("ntu120"))),
            "sfhead-pku-xsub" | "sfhead-pku-xview" => Ok(paper(ntu("pku"))),
            "smoke" => Ok(Self {
                sfhead: "tap".into(),
                // Three batches of four cannot take the recipe's 0.1 from the first step.
                lr: 0.01,
                epochs: 2,
                batch_size: 4,
                test_batch_size: 8,
                frames: 16,
                repeat: 1,
                warmup_epochs: 1,
                max_batches: 3,
                eval_limit: 16,
                ..ucla
            }),
            other => Err(ConfigError::Preset(other.into())),
        }
    }

    /// `base` with InfoGCN as the model, on its k = 1 input where the skeleton has NTU's joints.
    fn on_infogcn_input(base: Self) -> Self {
        let stream = if base.dataset == "ucla" {
            base.stream.clone()
        } else {
            "k1".into()
        };
        Self {
            model: Backbone::Infogcn.name().into(),
            stream,
            ..base
        }
    }

    /// `base` with ProtoGCN as the model on its pyskl pipeline: 100 frames, a 10-clip test, one
    /// pass over the training set per epoch.
    fn on_pyskl_input(base: Self) -> Self {
        Self {
            model: Backbone::Protogcn.name().into(),
            pipeline: "pyskl".into(),
            frames: crate::data::feed::CLIP_LEN,
            test_clips: crate::data::feed::TEST_CLIPS,
            repeat: 1,
            ..base
        }
    }

    /// The input stream the feeder makes.
    pub fn stream(&self) -> Result<Stream, ConfigError> {
        let stream = match self.stream.as_str() {
            "joint" => Stream::Joint,
            "bone" => Stream::Bone,
            other => match other.strip_prefix('k').map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 => Stream::KthMode(k),
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "stream: joint, bone or k1, k2, … (InfoGCN's k-th mode), not `{other}`"
                    )));
                }
            },
        };
        if matches!(stream, Stream::KthMode(_)) && self.dataset == "ucla" {
            return Err(ConfigError::Invalid(format!(
                "stream `{}`: the k-th mode is defined on NTU's joint order (ntu60, ntu120, pku), \
                 not on NW-UCLA's",
                self.stream
            )));
        }
        Ok(stream)
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
    /// failing that or where the key holds text, as a string.
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
            // A text key takes the text as given (`sfhead_blocks=10` is the block list "10").
            let value = if table[key].is_str() {
                toml::Value::String(value.trim_matches('"').to_string())
            } else {
                toml::from_str::<toml::Table>(&format!("v = {value}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(value.to_string()))
            };
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
            "pku" => Ok(Dataset::Pku),
            other => Err(ConfigError::Invalid(format!(
                "dataset `{other}`: ntu60, ntu120, ucla or pku"
            ))),
        }
    }

    /// SF-Head as configured (`None` when `sfhead = "off"`).
    pub fn sf_head(&self) -> Result<Option<SfHeadOptions>, ConfigError> {
        let invalid = |key: &str, allowed: &str, value: &str| {
            ConfigError::Invalid(format!("{key}: {allowed}, not `{value}`"))
        };
        let placement = match self.sfhead.as_str() {
            "off" => return Ok(None),
            "tap" => Placement::Tap,
            "inline" => Placement::Inline,
            other => return Err(invalid("sfhead", "off, tap or inline", other)),
        };
        let phi = match self.sfhead_phi.as_str() {
            "focal" => PhiSign::Focal,
            "printed" => PhiSign::Printed,
            other => return Err(invalid("sfhead_phi", "focal or printed", other)),
        };
        let item = match self.sfhead_item.as_str() {
            "sample" => Item::Sample,
            "mean_persons" => Item::MeanPersons,
            "rows" => Item::Rows,
            other => {
                return Err(invalid(
                    "sfhead_item",
                    "sample, mean_persons or rows",
                    other,
                ));
            }
        };
        let combine = |key: &str, value: &str| match value {
            "sum" => Ok(Combine::Sum),
            "mean" => Ok(Combine::Mean),
            other => Err(invalid(key, "sum or mean", other)),
        };
        let backbone = self.backbone()?;
        let blocks = parse_blocks(&self.sfhead_blocks, backbone.block_widths().len())
            .map_err(ConfigError::Invalid)?;
        let options = SfHeadOptions {
            placement,
            blocks,
            groups: self.sfhead_groups,
            loss: SfLossConfig {
                alpha: self.sfhead_alpha,
                tau: self.sfhead_tau,
                margin: self.sfhead_margin,
                gamma: self.sfhead_gamma,
                eps: self.sfhead_eps,
                phi,
                item,
                fcl_terms: combine("sfhead_fcl_terms", &self.sfhead_fcl_terms)?,
                heads: combine("sfhead_heads", &self.sfhead_heads)?,
                lambda_con: self.lambda_con,
                lambda_red: self.lambda_red,
            },
        };
        options.check(backbone).map_err(ConfigError::Invalid)?;
        if !(self.sfhead_tau > 0.0 && self.sfhead_alpha > 0.0) {
            return Err(ConfigError::Invalid(
                "sfhead_tau and sfhead_alpha must be positive".into(),
            ));
        }
        Ok(Some(options))
    }

    /// The network this configuration trains.
    pub fn backbone(&self) -> Result<Backbone, ConfigError> {
        Backbone::parse(&self.model).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "model `{}`: ctrgcn, stgcn, aagcn, agcn, infogcn, blockgcn, hdgcn or protogcn",
                self.model
            ))
        })
    }

    /// BlockGCN's topology rows as configured.
    pub fn blockgcn_topology(&self) -> Result<TopologyRows, ConfigError> {
        TopologyRows::parse(&self.blockgcn_topology).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "blockgcn_topology: official or aligned, not `{}`",
                self.blockgcn_topology
            ))
        })
    }

    pub fn model(&self) -> Result<crate::model::ctrgcn::CtrGcnConfig, ConfigError> {
        let mut model = self.dataset()?.config().with_backbone(self.backbone()?);
        model.blockgcn_topology = self.blockgcn_topology()?;
        if self.hdgcn_com > 0 {
            let com = self.hdgcn_com - 1;
            if model.topology.hierarchy(com).is_none() {
                let known: Vec<String> = model
                    .topology
                    .hdgcn()
                    .iter()
                    .map(|h| (h.com + 1).to_string())
                    .collect();
                return Err(ConfigError::Invalid(format!(
                    "hdgcn_com: {} has no HD-GCN hierarchy around joint {}; it has {}",
                    model.topology.name(),
                    self.hdgcn_com,
                    known.join(", ")
                )));
            }
            model.hdgcn_com = Some(com);
        }
        Ok(match self.sf_head()? {
            Some(options) => model.with_sf_head(options),
            None => model,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        self.dataset()?;
        self.backbone()?;
        self.sf_head()?;
        self.stream()?;
        self.blockgcn_topology()?;
        self.model()?;
        if self.backbone()? == Backbone::Blockgcn && (self.stream != "joint" || self.motion) {
            return invalid(
                "BlockGCN takes the joint stream without motion: its topology branch reads the \
                 raw joints from the same input",
            );
        }
        match self.pipeline.as_str() {
            "ctrgcn" => {}
            "pyskl" if self.stream != "joint" || self.motion => {
                return invalid("pipeline pyskl: the joint stream without motion only");
            }
            "pyskl" if self.test_clips == 0 => return invalid("test_clips: at least 1"),
            "pyskl" => {}
            other => return invalid(&format!("pipeline: ctrgcn or pyskl, not `{other}`")),
        }
        if !["step", "cosine", "cosine_iter"].contains(&self.schedule.as_str()) {
            return invalid("schedule: step, cosine or cosine_iter");
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
        if !(0.0..1.0).contains(&self.holdout) {
            return invalid("holdout: a fraction of the training set, at least 0 and below 1");
        }
        if self.dataset == "pku" && self.data.is_empty() {
            return invalid("PKU-MMD training needs `data`: the .npz of `sfhead prepare pku`");
        }
        if self.dataset != "ucla" && self.data.is_empty() {
            return invalid("NTU training needs `data`: a packed file from `sfhead prepare ntu`");
        }
        Ok(())
    }

    /// The learning rate at the start of epoch `epoch` (0-based): linear warm-up to `lr` over
    /// `warmup_epochs`, then steps or cosine annealing to `min_lr`.
    pub fn learning_rate(&self, epoch: usize) -> f32 {
        self.learning_rate_at(epoch, 0, 1)
    }

    /// The learning rate of step `step` of the `steps` of epoch `epoch`: the epoch's own but for
    /// `cosine_iter`, whose annealing (after the warm-up epochs, which stay per epoch as in
    /// HD-GCN's `adjust_learning_rate`) moves at every step.
    pub fn learning_rate_at(&self, epoch: usize, step: usize, steps: usize) -> f32 {
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
            "cosine_iter" => {
                let steps = steps.max(1);
                let span = ((self.epochs - self.warmup_epochs).max(1) * steps) as f64;
                let progress = ((epoch - self.warmup_epochs) * steps + step) as f64 / span;
                let (lr, min_lr) = (f64::from(self.lr), f64::from(self.min_lr));
                (min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()))
                    as f32
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
    fn hdgcn_presets_and_its_centre_of_mass() {
        let c = TrainConfig::preset("hdgcn-ucla").unwrap();
        assert_eq!(c.backbone().unwrap(), Backbone::Hdgcn);
        assert_eq!(
            (c.epochs, c.schedule.as_str(), c.min_lr),
            (90, "cosine_iter", 1e-4)
        );
        // Per step after the warm-up: HD-GCN's T_cur / T_max over every step of epochs 5…90.
        assert_eq!(c.learning_rate_at(2, 7, 10), c.learning_rate(2));
        let mid = c.learning_rate_at(47, 5, 10);
        let want = 1e-4 + 0.5 * (0.1 - 1e-4) * (1.0 + (std::f64::consts::PI * 425.0 / 850.0).cos());
        assert!((f64::from(mid) - want).abs() < 1e-8, "{mid} {want}");
        assert!(c.learning_rate_at(47, 4, 10) > mid && mid > c.learning_rate_at(48, 0, 10));
        let end = c.learning_rate_at(89, 9, 10);
        assert!(end > 1e-4 && end < 1.1e-4, "{end}");
        assert_eq!(c.model().unwrap().hierarchy().com, 2);
        let mut ntu = TrainConfig::preset("hdgcn-ntu120").unwrap();
        ntu.data = "ntu120_xsub.sfpk".into();
        assert_eq!(ntu.model().unwrap().hierarchy().com, 20);
        let com1 = ntu.with_overrides(&["hdgcn_com=1".into()]).unwrap();
        assert_eq!(com1.model().unwrap().hierarchy().com, 0);
        let e = ntu
            .with_overrides(&["hdgcn_com=5".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no HD-GCN hierarchy around joint 5; it has 21, 1, 2"),
            "{e}"
        );
        let paper = TrainConfig::preset("sfhead-hdgcn-ucla").unwrap();
        assert_eq!(paper.backbone().unwrap(), Backbone::Hdgcn);
        assert_eq!(paper.sfhead, "tap");
    }

    #[test]
    fn protogcn_presets_take_the_pyskl_pipeline() {
        let c = TrainConfig::preset("protogcn-ucla").unwrap();
        assert_eq!(c.backbone().unwrap(), Backbone::Protogcn);
        assert_eq!(
            (c.pipeline.as_str(), c.frames, c.test_clips, c.repeat),
            ("pyskl", 100, 10, 1)
        );
        assert_eq!(
            (c.epochs, c.schedule.as_str(), c.warmup_epochs),
            (150, "cosine_iter", 0)
        );
        assert_eq!((c.batch_size, c.lr, c.weight_decay), (16, 0.025, 5e-4));
        let last = c.learning_rate_at(149, 9, 10);
        assert!(last > 0.0 && last < 1e-5, "{last}");
        let ntu = TrainConfig::preset("protogcn-ntu120").unwrap();
        assert_eq!((ntu.batch_size, ntu.lr), (64, 0.1));
        let paper = TrainConfig::preset("sfhead-protogcn-ntu60").unwrap();
        assert_eq!(
            (paper.sfhead.as_str(), paper.pipeline.as_str()),
            ("tap", "pyskl")
        );
        for bad in [
            "stream=bone",
            "motion=true",
            "test_clips=0",
            "pipeline=mmaction",
        ] {
            assert!(c.with_overrides(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn blockgcn_presets_and_its_switch() {
        let mut c = TrainConfig::preset("blockgcn-ntu120").unwrap();
        c.data = "ntu120_xsub.sfpk".into();
        assert_eq!(c.backbone().unwrap(), Backbone::Blockgcn);
        assert_eq!(
            (c.epochs, c.lr, c.lr_steps.clone(), c.batch_size),
            (140, 0.05, vec![110, 120], 64)
        );
        assert_eq!(c.model().unwrap().blockgcn_topology, TopologyRows::Official);
        let aligned = c
            .with_overrides(&["blockgcn_topology=aligned".into()])
            .unwrap();
        assert_eq!(
            aligned.model().unwrap().blockgcn_topology,
            TopologyRows::Aligned
        );
        for bad in ["blockgcn_topology=shuffled", "stream=bone", "motion=true"] {
            assert!(c.with_overrides(&[bad.into()]).is_err(), "{bad}");
        }
        let paper = TrainConfig::preset("sfhead-blockgcn-ucla").unwrap();
        assert_eq!((paper.sfhead.as_str(), paper.epochs), ("tap", 90));
    }

    #[test]
    fn infogcn_presets_take_its_recipe_and_k_th_mode_input() {
        let mut c = TrainConfig::preset("infogcn-ntu120").unwrap();
        c.data = "ntu120_xsub.sfpk".into();
        assert_eq!(c.backbone().unwrap(), Backbone::Infogcn);
        assert_eq!(c.stream().unwrap(), Stream::KthMode(1));
        assert_eq!(
            (c.epochs, c.lr_steps.clone(), c.batch_size, c.weight_decay),
            (110, vec![90, 100], 128, 5e-4)
        );
        let paper = TrainConfig::preset("sfhead-infogcn-ntu60").unwrap();
        let ctrgcn = TrainConfig::preset("sfhead-ntu60").unwrap();
        assert_eq!(
            (
                paper.epochs,
                paper.batch_size,
                paper.schedule.as_str(),
                paper.sfhead.as_str()
            ),
            (ctrgcn.epochs, ctrgcn.batch_size, "cosine", "tap")
        );
        assert_eq!(paper.stream().unwrap(), Stream::KthMode(1));
        let ucla = TrainConfig::preset("sfhead-infogcn-ucla").unwrap();
        assert_eq!(ucla.stream().unwrap(), Stream::Joint);
        assert_eq!(
            ucla.model().unwrap().sf_head.unwrap().blocks,
            (1..=9).collect::<Vec<_>>()
        );
        let k2 = c.with_overrides(&["stream=k2".into()]).unwrap();
        assert_eq!(k2.stream().unwrap(), Stream::KthMode(2));
        for bad in ["stream=k0", "stream=kx", "stream=k"] {
            assert!(c.with_overrides(&[bad.into()]).is_err(), "{bad}");
        }
        let e = ucla.with_overrides(&["stream=k1".into()]).unwrap_err();
        assert!(e.to_string().contains("NTU's joint order"), "{e}");
        let e = c
            .with_overrides(&["sfhead=tap".into(), "sfhead_blocks=10".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("InfoGCN has blocks 1 to 9"), "{e}");
    }

    #[test]
    fn every_preset_resolves_and_other_backbones_keep_the_ctrgcn_recipe() {
        for name in PRESETS {
            TrainConfig::preset(name).unwrap();
        }
        for (other, recipe, backbone) in [
            ("stgcn-ntu120", "ctrgcn-ntu120", Backbone::Stgcn),
            ("sfhead-stgcn-ucla", "sfhead-ucla", Backbone::Stgcn),
            ("aagcn-ntu60", "ctrgcn-ntu60", Backbone::Aagcn),
            ("sfhead-aagcn-ntu120", "sfhead-ntu120", Backbone::Aagcn),
            ("agcn-ucla", "ctrgcn-ucla", Backbone::Agcn),
        ] {
            let a = TrainConfig::preset(other).unwrap();
            let b = TrainConfig::preset(recipe).unwrap();
            assert_eq!(a.model, backbone.name());
            assert_eq!(a.backbone().unwrap(), backbone);
            assert_eq!(
                TrainConfig {
                    model: b.model.clone(),
                    ..a
                },
                b
            );
        }
        assert!(TrainConfig::preset("stgcn-nothing").is_err());
        assert!(TrainConfig::preset("aagcn-pku").is_err());
    }

    #[test]
    fn a_configuration_without_a_model_key_is_ctrgcn() {
        let mut table: toml::Table =
            toml::from_str(&TrainConfig::preset("ctrgcn-ucla").unwrap().to_toml()).unwrap();
        table.remove("model");
        let c = TrainConfig::from_toml(&toml::to_string(&table).unwrap()).unwrap();
        assert_eq!(c.backbone().unwrap(), Backbone::Ctrgcn);
    }

    #[test]
    fn ntu_needs_prepared_data() {
        let c = TrainConfig::preset("ctrgcn-ntu60").unwrap();
        assert!(c.with_overrides(&["epochs=2".into()]).is_err());
        assert!(TrainConfig::preset("nope").is_err());
    }
}
