//! A finished run as the report reads it from its work directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::model::ctrgcn::Dataset;
use crate::scores::{Features, Scores};
use crate::train::run_log::LOG_FILE;
use crate::train::{CONFIG_FILE, EpochLog};

use super::ReportError;
use super::classes::{class_names, parse_dataset};

pub struct Run {
    /// How pictures and tables name the run: its directory's name.
    pub label: String,
    pub dataset: Dataset,
    pub logs: Vec<EpochLog>,
    pub scores: Scores,
    /// Where the scores came from, for notes.
    pub scores_path: PathBuf,
}

impl Run {
    pub fn open(dir: &Path) -> Result<Self, ReportError> {
        let dataset = read_dataset(&dir.join(CONFIG_FILE))?;
        let logs = read_log(&dir.join(LOG_FILE))?;
        // `sfhead eval`'s scores where present, else the best epoch's.
        let scores_path = Scores::resolve(dir)?;
        let scores = Scores::read(&scores_path)?;
        let classes = class_names(dataset).len();
        if scores.classes != classes {
            return Err(ReportError::Format {
                path: scores_path,
                message: format!(
                    "{} score columns, but {} has {classes} classes",
                    scores.classes,
                    dataset_key(dataset)
                ),
            });
        }
        let label = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            label,
            dataset,
            logs,
            scores,
            scores_path,
        })
    }

    /// Reorders `other`'s samples into this run's order: the two must hold the same dataset and
    /// the same test samples, with the same labels where both have them.
    pub fn align(&self, other: &mut Run) -> Result<(), ReportError> {
        let mismatch = |message: String| ReportError::Mismatch {
            first: self.scores_path.clone(),
            second: other.scores_path.clone(),
            message,
        };
        if self.dataset != other.dataset {
            return Err(mismatch(format!(
                "datasets differ: {} and {}",
                dataset_key(self.dataset),
                dataset_key(other.dataset)
            )));
        }
        let position = index_names(&other.scores.names, &other.scores_path)?;
        index_names(&self.scores.names, &self.scores_path)?;
        if self.scores.len() != other.scores.len() {
            return Err(mismatch(format!(
                "different test samples: {} and {}",
                self.scores.len(),
                other.scores.len()
            )));
        }
        let mut order = Vec::with_capacity(self.scores.len());
        for name in &self.scores.names {
            match position.get(name.as_str()) {
                Some(&i) => order.push(i),
                None => {
                    return Err(mismatch(format!(
                        "different test samples: `{name}` is only in the first"
                    )));
                }
            }
        }
        let b = &other.scores;
        let k = b.classes;
        let labels = b
            .labels
            .as_ref()
            .map(|l| order.iter().map(|&i| l[i]).collect::<Vec<_>>());
        if let (Some(a), Some(b)) = (&self.scores.labels, &labels) {
            if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
                return Err(mismatch(format!(
                    "sample `{}` has label {} in the first and {} in the second",
                    self.scores.names[i], a[i], b[i]
                )));
            }
        }
        let features = b.features.as_ref().map(|f| Features {
            width: f.width,
            values: order
                .iter()
                .flat_map(|&i| &f.values[i * f.width..(i + 1) * f.width])
                .copied()
                .collect(),
        });
        other.scores = Scores {
            names: self.scores.names.clone(),
            classes: k,
            values: order.iter().flat_map(|&i| b.row(i)).copied().collect(),
            labels,
            features,
        };
        Ok(())
    }
}

pub fn dataset_key(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Ntu60 => "ntu60",
        Dataset::Ntu120 => "ntu120",
        Dataset::Ucla => "ucla",
        Dataset::Pku => "pku",
    }
}

/// Sample name → row, refusing a name that appears twice.
fn index_names<'a>(
    names: &'a [String],
    path: &Path,
) -> Result<HashMap<&'a str, usize>, ReportError> {
    let mut index = HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if index.insert(name.as_str(), i).is_some() {
            return Err(ReportError::Format {
                path: path.to_path_buf(),
                message: format!("sample `{name}` appears twice"),
            });
        }
    }
    Ok(index)
}

/// The `dataset` key of a work directory's configuration.
fn read_dataset(path: &Path) -> Result<Dataset, ReportError> {
    #[derive(serde::Deserialize)]
    struct Key {
        dataset: Option<String>,
    }
    let format = |message: String| ReportError::Format {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let key: Key = toml::from_str(&text).map_err(|e| format(e.to_string()))?;
    let name = key
        .dataset
        .ok_or_else(|| format("no `dataset` key".to_string()))?;
    parse_dataset(&name)
        .ok_or_else(|| format(format!("dataset `{name}`: ntu60, ntu120, ucla or pku")))
}

/// The epochs of `log.jsonl`, one JSON object a line.
fn read_log(path: &Path) -> Result<Vec<EpochLog>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let logs = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| ReportError::Log {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<EpochLog>, _>>()?;
    if logs.is_empty() {
        return Err(ReportError::Format {
            path: path.to_path_buf(),
            message: "no epoch logged".to_string(),
        });
    }
    Ok(logs)
}
