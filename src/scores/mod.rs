//! Per-sample class scores: what `eval` writes, `ensemble` fuses and `report` draws. A score set
//! is keyed by sample name, in the dataset's test order, so that sets from different runs join
//! by name rather than by position.
//!
//! On disk: safetensors (`scores` (N, K) f32, optional `labels` (N) i64 and `features` (N, C)
//! f32, the names in the metadata under `names`, comma-separated, and the part of the dataset
//! under `part`) or a pickle of
//! `{name: numpy.ndarray}`, the format of CTR-GCN's `epoch1_test_score.pkl` (`pickle.rs`).

mod pickle;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};

use crate::train::{OutputTensor, write_tensors};

#[derive(Debug, thiserror::Error)]
pub enum ScoresError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

/// Scores of `names.len()` samples over `classes` classes, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub names: Vec<String>,
    pub classes: usize,
    pub values: Vec<f32>,
    /// The true classes, where known (our files carry them; CTR-GCN's pickles do not).
    pub labels: Option<Vec<u32>>,
    /// Pooled backbone features (N, C), for pictures of the feature space.
    pub features: Option<Features>,
}

/// Row-major (N, width) features.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub width: usize,
    pub values: Vec<f32>,
}

/// The metadata key of the sample names.
const NAMES_KEY: &str = "names";

/// The metadata key of the part of the dataset a score file covers: `test`, `holdout` (the
/// part of the training set a run held out) or `train`.
pub const PART_KEY: &str = "part";

/// The largest safetensors header [`read_part`] reads (the format's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// What a work directory's scores are, in the order [`Scores::resolve`] tries them: the last
/// evaluation's, then those of the best epoch saved during training.
pub const WORK_DIR_SCORES: [&str; 2] = ["eval/scores.safetensors", "best_scores.safetensors"];

/// A work directory's held-out scores (`sfhead eval --part holdout`), see
/// [`Scores::resolve_holdout`].
pub const WORK_DIR_HOLDOUT_SCORES: &str = "eval-holdout/scores.safetensors";

impl Scores {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The score row of sample `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.classes..(i + 1) * self.classes]
    }

    /// Reads a score file by its extension: `.safetensors`, or `.pkl` / `.pickle`.
    pub fn read(path: &Path) -> Result<Self, ScoresError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => Self::read_safetensors(path),
            Some("pkl" | "pickle") => Self::read_pickle(path),
            _ => Err(ScoresError::Format {
                path: path.to_path_buf(),
                message: "not a score file: expected a .safetensors, .pkl or .pickle extension"
                    .into(),
            }),
        }
    }

    /// The score file `path` names: itself, or for a work directory the first of
    /// [`WORK_DIR_SCORES`] in it that exists.
    pub fn resolve(path: &Path) -> Result<PathBuf, ScoresError> {
        if !path.is_dir() {
            return Ok(path.to_path_buf());
        }
        WORK_DIR_SCORES
            .iter()
            .map(|name| path.join(name))
            .find(|file| file.is_file())
            .ok_or_else(|| ScoresError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "a directory without scores: neither {} (`sfhead eval`) nor {} (training)",
                    WORK_DIR_SCORES[0], WORK_DIR_SCORES[1]
                ),
            })
    }

    /// The held-out score file `path` names: itself, or for a work directory its
    /// [`WORK_DIR_HOLDOUT_SCORES`].
    pub fn resolve_holdout(path: &Path) -> Result<PathBuf, ScoresError> {
        if !path.is_dir() {
            return Ok(path.to_path_buf());
        }
        let file = path.join(WORK_DIR_HOLDOUT_SCORES);
        if file.is_file() {
            return Ok(file);
        }
        Err(ScoresError::Format {
            path: path.to_path_buf(),
            message: format!(
                "a directory without held-out scores {WORK_DIR_HOLDOUT_SCORES}: run `sfhead eval --part holdout` on its checkpoint"
            ),
        })
    }

    /// Reads a score file, or the scores of a work directory (see [`Scores::resolve`]).
    pub fn read_dir_or_file(path: &Path) -> Result<Self, ScoresError> {
        Self::read(&Self::resolve(path)?)
    }

    /// Writes the safetensors form atomically.
    pub fn write_safetensors(&self, path: &Path) -> Result<(), ScoresError> {
        self.write_safetensors_part(path, None)
    }

    /// Writes the safetensors form atomically, recording which part of the dataset it scores
    /// under [`PART_KEY`] (see [`read_part`]).
    pub fn write_safetensors_part(
        &self,
        path: &Path,
        part: Option<&str>,
    ) -> Result<(), ScoresError> {
        let mut tensors = vec![OutputTensor::f32(
            "scores",
            vec![self.len(), self.classes],
            self.values.clone(),
        )];
        if let Some(labels) = &self.labels {
            tensors.push(OutputTensor::i64(
                "labels",
                vec![labels.len()],
                labels.iter().map(|&l| i64::from(l)).collect(),
            ));
        }
        if let Some(f) = &self.features {
            tensors.push(OutputTensor::f32(
                "features",
                vec![self.len(), f.width],
                f.values.clone(),
            ));
        }
        let mut meta = BTreeMap::from([(NAMES_KEY.to_string(), self.names.join(","))]);
        if let Some(part) = part {
            meta.insert(PART_KEY.to_string(), part.to_string());
        }
        write_tensors(path, &tensors, &meta).map_err(|e| ScoresError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads the safetensors form (also the `logits` tensor of older work directories).
    pub fn read_safetensors(path: &Path) -> Result<Self, ScoresError> {
        let format = |message: String| ScoresError::Format {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|source| ScoresError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
        let names: Vec<String> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(NAMES_KEY))
            .ok_or_else(|| format(format!("no `{NAMES_KEY}` in the metadata")))?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let key = if file.names().contains(&"scores") {
            "scores"
        } else {
            "logits"
        };
        let matrix = |key: &str| -> Result<(usize, Vec<f32>), ScoresError> {
            let view = file
                .tensor(key)
                .map_err(|e| format(format!("tensor `{key}`: {e}")))?;
            if view.dtype() != Dtype::F32 || view.shape().len() != 2 {
                return Err(format(format!(
                    "tensor `{key}`: expected 2-D F32, found {:?} {:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            if view.shape()[0] != names.len() {
                return Err(format(format!(
                    "tensor `{key}` has {} rows for {} names",
                    view.shape()[0],
                    names.len()
                )));
            }
            Ok((view.shape()[1], bytemuck::pod_collect_to_vec(view.data())))
        };
        let (classes, values) = matrix(key)?;
        let labels = match file.tensor("labels") {
            Err(_) => None,
            Ok(view) => {
                if view.dtype() != Dtype::I64 || view.shape() != [names.len()] {
                    return Err(format(format!(
                        "tensor `labels`: expected I64 [{}], found {:?} {:?}",
                        names.len(),
                        view.dtype(),
                        view.shape()
                    )));
                }
                let raw: Vec<i64> = bytemuck::pod_collect_to_vec(view.data());
                let mut labels = Vec::with_capacity(raw.len());
                for (i, &l) in raw.iter().enumerate() {
                    if l < 0 || l as usize >= classes {
                        return Err(format(format!(
                            "label {l} of `{}` is not among the {classes} classes",
                            names[i]
                        )));
                    }
                    labels.push(l as u32);
                }
                Some(labels)
            }
        };
        let features = if file.names().contains(&"features") {
            let (width, values) = matrix("features")?;
            Some(Features { width, values })
        } else {
            None
        };
        Ok(Self {
            names,
            classes,
            values,
            labels,
            features,
        })
    }
}

/// The part of the dataset a score file covers, from its safetensors metadata ([`PART_KEY`]);
/// `None` for pickles and for files that do not say. Reads only the header.
pub fn read_part(path: &Path) -> Result<Option<String>, ScoresError> {
    if path.extension().is_some_and(|e| e != "safetensors") {
        return Ok(None);
    }
    let format = |message: String| ScoresError::Format {
        path: path.to_path_buf(),
        message,
    };
    let io = |source| ScoresError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    let short = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format("the file ends inside its safetensors header".into())
        }
        _ => io(e),
    };
    file.read_exact(&mut len).map_err(short)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(format(format!(
            "a safetensors header of {len} bytes (at most {MAX_HEADER})"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(short)?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| format(format!("the safetensors header: {e}")))?;
    match header.get("__metadata__").and_then(|m| m.get(PART_KEY)) {
        None => Ok(None),
        Some(serde_json::Value::String(part)) => Ok(Some(part.clone())),
        Some(other) => Err(format(format!(
            "metadata `{PART_KEY}` is {other}, not a string"
        ))),
    }
}
