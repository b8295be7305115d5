//! Pictures and tables of finished runs: curves, confusion matrix, per-class accuracy, feature maps.
//!
//! [`report`] reads one or two work directories (`config.toml`, `log.jsonl` and the test scores,
//! `eval/scores.safetensors` where `sfhead eval` wrote it, else `best_scores.safetensors`) and
//! writes its files into one output directory. With two runs, the second is compared with the
//! first (backbone vs + SF-Head): both must hold the same dataset and test samples, which are
//! joined by name.

mod classes;
mod compare;
mod confusion;
mod curves;
mod feature_map;
mod plot;
mod png;
mod run;
mod tables;
pub mod tsne;

use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::scores::ScoresError;

use crate::eval::Accuracy;
use classes::{class_names, is_ntu};
use run::{Run, dataset_key};
use tables::Column;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report takes one or two work directories, not {0}")]
    RunCount(usize),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Log {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error(transparent)]
    Scores(#[from] ScoresError),
    #[error("{} and {} cannot be compared: {message}", first.display(), second.display())]
    Mismatch {
        first: PathBuf,
        second: PathBuf,
        message: String,
    },
    #[error("{}: drawing failed: {message}", path.display())]
    Draw { path: PathBuf, message: String },
}

/// What [`report`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportSummary {
    /// The files written, in the order they were written.
    pub written: Vec<PathBuf>,
    /// What was left out, and why.
    pub notes: Vec<String>,
}

/// One line per file written, then one per note.
impl std::fmt::Display for ReportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for path in &self.written {
            writeln!(f, "wrote {}", path.display())?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// Writes the report of one run, or the comparison of two, into `out` (created if needed).
pub fn report(runs: &[PathBuf], out: &Path) -> Result<ReportSummary, ReportError> {
    if runs.is_empty() || runs.len() > 2 {
        return Err(ReportError::RunCount(runs.len()));
    }
    let mut opened = runs
        .iter()
        .map(|dir| Run::open(dir))
        .collect::<Result<Vec<_>, _>>()?;
    if let [a, b] = opened.as_mut_slice() {
        a.align(b)?;
        if a.label == b.label {
            a.label += " (1)";
            b.label += " (2)";
        }
        // Labels are per sample, so one run's labels serve both.
        if a.scores.labels.is_none() {
            a.scores.labels = b.scores.labels.clone();
        } else if b.scores.labels.is_none() {
            b.scores.labels = a.scores.labels.clone();
        }
    }
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut summary = ReportSummary::default();
    let dataset = opened[0].dataset;
    let names = class_names(dataset);

    let path = out.join("curves.png");
    curves::draw(&path, &opened)?;
    summary.written.push(path);

    let Some(labels) = opened[0].scores.labels.clone() else {
        summary.notes.push(format!(
            "{} has no labels: no confusion matrix, accuracy tables, comparison or t-SNE map",
            opened[0].scores_path.display()
        ));
        return Ok(summary);
    };
    let accuracies: Vec<Accuracy> = opened
        .iter()
        .map(|r| Accuracy::new(&r.scores.values, &labels, r.scores.classes))
        .collect();
    let columns: Vec<Column<'_>> = opened
        .iter()
        .zip(&accuracies)
        .map(|(r, accuracy)| Column {
            label: &r.label,
            accuracy,
        })
        .collect();

    let path = out.join("confusion.png");
    let panels: Vec<(&str, &Accuracy)> = columns.iter().map(|c| (c.label, c.accuracy)).collect();
    confusion::draw(&path, &names, &panels)?;
    summary.written.push(path);

    let text = tables::per_class(dataset_key(dataset), &names, &columns);
    write_text(&out.join("per_class.md"), &text, &mut summary)?;
    if is_ntu(dataset) {
        write_text(
            &out.join("groups.md"),
            &tables::groups(&names, &columns),
            &mut summary,
        )?;
    } else {
        summary
            .notes
            .push("groups.md: the Fig. 3 groups are NTU actions".to_string());
    }
    if let [a, b] = columns.as_slice() {
        write_text(
            &out.join("compare.md"),
            &tables::compare(&names, a, b),
            &mut summary,
        )?;
        let path = out.join("compare.png");
        let (a, b) = ((a.label, a.accuracy), (b.label, b.accuracy));
        compare::draw(&path, &names, is_ntu(dataset), a, b)?;
        summary.written.push(path);
    }

    let mut mapped = Vec::new();
    for run in &opened {
        match &run.scores.features {
            Some(f) => mapped.push((run.label.as_str(), f)),
            None => summary.notes.push(format!(
                "{} has no features: no t-SNE map of {}",
                run.scores_path.display(),
                run.label
            )),
        }
    }
    if !mapped.is_empty() {
        let path = out.join("tsne.png");
        let grey = feature_map::draw(&path, &names, is_ntu(dataset), &mapped, &labels)?;
        summary.written.push(path);
        summary.notes.extend(grey.map(|g| format!("tsne.png: {g}")));
    }
    Ok(summary)
}

fn write_text(path: &Path, text: &str, summary: &mut ReportSummary) -> Result<(), ReportError> {
    write_atomic(path, |f| std::io::Write::write_all(f, text.as_bytes())).map_err(|source| {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    summary.written.push(path.to_path_buf());
    Ok(())
}
