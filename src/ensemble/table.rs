//! Accuracy of score sets and the table `sfhead ensemble` prints.

use std::fmt;
use std::path::PathBuf;

use crate::scores::Scores;
use crate::train::top_k_hits;

/// Top-1 and top-5 accuracy, as fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopK {
    pub top1: f64,
    pub top5: f64,
}

impl TopK {
    /// Of `values` (N × `classes`, row-major) against `labels`; `None` without samples.
    pub fn of(values: &[f32], labels: &[u32], classes: usize) -> Option<Self> {
        if labels.is_empty() {
            return None;
        }
        let (top1, top5) = top_k_hits(values, labels, classes);
        let n = labels.len() as f64;
        Some(Self {
            top1: top1 as f64 / n,
            top5: top5 as f64 / n,
        })
    }
}

/// The accuracy of a score set that carries labels.
pub fn accuracy(scores: &Scores) -> Option<TopK> {
    TopK::of(&scores.values, scores.labels.as_deref()?, scores.classes)
}

/// One line of the table: a stream, or the fusion (no weight).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub weight: Option<f32>,
    /// `None` where no input carries labels.
    pub accuracy: Option<TopK>,
}

/// Top-1 on the held-out scores the weights were fitted on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldoutFit {
    pub equal: f64,
    pub fitted: f64,
}

/// What `sfhead ensemble` did; `Display` is the table it prints.
#[derive(Debug, Clone)]
pub struct EnsembleReport {
    /// One row per stream, then the fusion.
    pub rows: Vec<Row>,
    pub weights: Vec<f32>,
    pub holdout: Option<HoldoutFit>,
    /// Things the numbers may not mean what they seem to (leakage, no labels).
    pub warnings: Vec<String>,
    pub fused: Scores,
    pub written: Vec<PathBuf>,
}

impl fmt::Display for EnsembleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0);
        let width = width.max("stream".len());
        writeln!(
            f,
            "{:<width$}  {:>6}  {:>6}  {:>6}",
            "stream", "weight", "top-1", "top-5"
        )?;
        for row in &self.rows {
            let weight = row.weight.map_or(String::new(), |w| format!("{w:.2}"));
            let (top1, top5) = match row.accuracy {
                Some(a) => (percent(a.top1), percent(a.top5)),
                None => ("-".into(), "-".into()),
            };
            writeln!(f, "{:<width$}  {weight:>6}  {top1:>6}  {top5:>6}", row.name)?;
        }
        if let Some(fit) = self.holdout {
            writeln!(
                f,
                "held-out top-1: {} with these weights, {} with equal weights",
                percent(fit.fitted),
                percent(fit.equal)
            )?;
        }
        for path in &self.written {
            writeln!(f, "wrote {}", path.display())?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

fn percent(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}
