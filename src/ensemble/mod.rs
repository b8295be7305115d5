//! Fusing per-sample scores of several streams, joined by sample name.
//!
//! Score files list samples in their dataset's order, which differs between tools and
//! preprocessing runs; fusing by position silently pairs one sample's joint scores with
//! another's bone scores. Here every input is joined to the first by sample name, and sets that
//! do not hold the same samples are refused. Scores are summed raw (logits), as CTR-GCN's
//! `ensemble.py` does. See docs/ensemble.md.

mod join;
mod table;
mod weights;

use std::path::{Path, PathBuf};

pub use table::{EnsembleReport, HoldoutFit, Row, TopK, accuracy};
pub use weights::{DEFAULT_GRID, Preset, search};

use crate::scores::{Scores, ScoresError, read_part};

#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error(transparent)]
    Scores(#[from] ScoresError),
    #[error("no score sets to fuse")]
    NoInputs,
    #[error("{file}: sample `{name}` appears twice")]
    Duplicate { file: String, name: String },
    #[error("the score sets hold different samples: {0}")]
    Samples(String),
    #[error("{first} has {first_classes} classes, {other} has {classes}")]
    Classes {
        first: String,
        first_classes: usize,
        other: String,
        classes: usize,
    },
    #[error("sample `{sample}` has label {first_label} in {first} and {label} in {other}")]
    Labels {
        sample: String,
        first: String,
        first_label: u32,
        other: String,
        label: u32,
    },
    #[error("{weights} weights for {streams} score sets")]
    WeightCount { weights: usize, streams: usize },
    #[error("weight {0} is not a finite number")]
    BadWeight(f32),
    #[error(
        "preset {} weighs {} streams, in this order: {}; {got} score sets given",
        .preset.name(),
        .preset.weights().len(),
        .preset.streams().join(", ")
    )]
    PresetCount { preset: Preset, got: usize },
    #[error(
        "{holdout} held-out score sets for {streams} streams: give one per stream, in the same order"
    )]
    HoldoutCount { holdout: usize, streams: usize },
    #[error("the held-out scores carry no labels to fit weights on ({}): use sfhead's own score files", .files.join(", "))]
    Unlabelled { files: Vec<String> },
}

/// A score set and the file it came from (named in messages and in the table).
#[derive(Debug, Clone)]
pub struct Stream {
    pub source: String,
    pub scores: Scores,
    /// The part of the dataset it scores, where the file says ([`read_part`]).
    pub part: Option<String>,
}

impl Stream {
    pub fn new(source: impl Into<String>, scores: Scores) -> Self {
        Self {
            source: source.into(),
            scores,
            part: None,
        }
    }

    /// Reads a score file or a work directory's scores ([`Scores::resolve`]).
    pub fn read(path: &Path) -> Result<Self, EnsembleError> {
        Self::read_file(&Scores::resolve(path)?)
    }

    /// Reads a held-out score file or a work directory's held-out scores
    /// ([`Scores::resolve_holdout`]).
    pub fn read_holdout(path: &Path) -> Result<Self, EnsembleError> {
        Self::read_file(&Scores::resolve_holdout(path)?)
    }

    fn read_file(file: &Path) -> Result<Self, EnsembleError> {
        Ok(Self {
            scores: Scores::read(file)?,
            part: read_part(file)?,
            source: file.display().to_string(),
        })
    }
}

/// The weighted sum of `streams`' raw scores, joined by sample name, in the first stream's
/// order; labels from whichever streams carry them.
pub fn fuse(streams: &[Stream], weights: &[f32]) -> Result<Scores, EnsembleError> {
    check_weights(weights, streams.len())?;
    let joined = join::join(streams)?;
    Ok(fuse_joined(streams, &joined, weights))
}

fn fuse_joined(streams: &[Stream], joined: &join::Joined, weights: &[f32]) -> Scores {
    let first = &streams[0].scores;
    Scores {
        names: first.names.clone(),
        classes: first.classes,
        values: join::weighted_sum(streams, joined, weights),
        labels: joined.labels.clone(),
        features: None,
    }
}

fn check_weights(weights: &[f32], streams: usize) -> Result<(), EnsembleError> {
    if weights.len() != streams {
        return Err(EnsembleError::WeightCount {
            weights: weights.len(),
            streams,
        });
    }
    match weights.iter().find(|w| !w.is_finite()) {
        Some(&w) => Err(EnsembleError::BadWeight(w)),
        None => Ok(()),
    }
}

/// How the streams are weighted.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// 1 each (with two streams CTR-GCN's joint + bone).
    Equal,
    Preset(Preset),
    Explicit(Vec<f32>),
    /// Fitted by [`search`] on these held-out score sets, one per stream in the inputs' order.
    Search {
        holdout: Vec<PathBuf>,
    },
}

/// `sfhead ensemble`: reads `inputs` (score files or work directories), fuses them with
/// `weights` and, given `out`, writes the fused scores there as safetensors and as a pickle
/// beside it (or the other way round when `out` ends in `.pkl`).
pub fn run(
    inputs: &[PathBuf],
    weights: Weights,
    out: Option<&Path>,
) -> Result<EnsembleReport, EnsembleError> {
    let streams: Vec<Stream> = inputs
        .iter()
        .map(|p| Stream::read(p))
        .collect::<Result<_, _>>()?;
    // Refuse misaligned inputs before any search.
    let joined = join::join(&streams)?;
    let mut warnings = Vec::new();
    let mut holdout = None;
    let (weights, roles) = match weights {
        Weights::Equal => (vec![1.0; streams.len()], None),
        Weights::Explicit(w) => (w, None),
        Weights::Preset(preset) => {
            if preset.weights().len() != streams.len() {
                return Err(EnsembleError::PresetCount {
                    preset,
                    got: streams.len(),
                });
            }
            (preset.weights().to_vec(), Some(preset.streams()))
        }
        Weights::Search { holdout: paths } => {
            if paths.len() != streams.len() {
                return Err(EnsembleError::HoldoutCount {
                    holdout: paths.len(),
                    streams: streams.len(),
                });
            }
            let held: Vec<Stream> = paths
                .iter()
                .map(|p| Stream::read_holdout(p))
                .collect::<Result<_, _>>()?;
            warnings.extend(leakage(&held, &streams));
            let fitted = search(&held, &DEFAULT_GRID)?;
            let top1 = |w: &[f32]| -> Result<f64, EnsembleError> {
                let fused = fuse(&held, w)?;
                Ok(accuracy(&fused).map_or(0.0, |a| a.top1))
            };
            holdout = Some(HoldoutFit {
                equal: top1(&vec![1.0; held.len()])?,
                fitted: top1(&fitted)?,
            });
            (fitted, None)
        }
    };
    check_weights(&weights, streams.len())?;
    let fused = fuse_joined(&streams, &joined, &weights);
    let mut rows: Vec<Row> = streams
        .iter()
        .enumerate()
        .map(|(s, stream)| Row {
            name: match roles {
                Some(roles) => format!("{} ({})", roles[s], stream.source),
                None => stream.source.clone(),
            },
            weight: Some(weights[s]),
            accuracy: fused.labels.as_deref().and_then(|labels| {
                TopK::of(&join::aligned(&streams, &joined, s), labels, fused.classes)
            }),
        })
        .collect();
    rows.push(Row {
        name: "fusion".into(),
        weight: None,
        accuracy: accuracy(&fused),
    });
    if fused.labels.is_none() {
        warnings.push(
            "no input carries labels (pickles have none), so there is no accuracy: add one of sfhead's own score files"
                .into(),
        );
    }
    let written = match out {
        Some(out) => write(&fused, out)?,
        None => Vec::new(),
    };
    Ok(EnsembleReport {
        rows,
        weights,
        holdout,
        warnings,
        fused,
        written,
    })
}

/// Reasons the held-out scores may overstate the fusion: samples the model was trained on, or
/// the samples the weights are then applied to.
fn leakage(held: &[Stream], inputs: &[Stream]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (h, input) in held.iter().zip(inputs) {
        match h.part.as_deref() {
            Some("train") => warnings.push(format!(
                "{} scores training samples: the model has fitted them, so weights fitted on them favour the streams that overfit most (leakage); score the held-out part instead (`sfhead eval --part holdout`)",
                h.source
            )),
            Some("test") => warnings.push(format!(
                "{} scores the test set: weights fitted on it overstate the fusion's test accuracy (leakage)",
                h.source
            )),
            _ => {}
        }
        let shared = join::shared_names(&h.scores, &input.scores);
        if shared > 0 {
            warnings.push(format!(
                "{} shares {shared} of its {} samples with {}: weights fitted on the samples they are applied to overstate the fusion (leakage)",
                h.source,
                h.scores.len(),
                input.source
            ));
        }
    }
    warnings
}

/// Writes the fused scores as safetensors and as a pickle, `out` naming one and the other
/// going beside it.
fn write(fused: &Scores, out: &Path) -> Result<Vec<PathBuf>, EnsembleError> {
    let is_pickle = matches!(
        out.extension().and_then(|e| e.to_str()),
        Some("pkl" | "pickle")
    );
    let (safetensors, pickle) = if is_pickle {
        (out.with_extension("safetensors"), out.to_path_buf())
    } else {
        (out.to_path_buf(), out.with_extension("pkl"))
    };
    fused.write_safetensors(&safetensors)?;
    fused.write_pickle(&pickle)?;
    Ok(vec![safetensors, pickle])
}
