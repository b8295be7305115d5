//! The Markdown tables: per-class accuracy, the Fig. 3 groups and the comparison of two runs.
//! Classes are numbered from 1, as the datasets number them (NTU's A1–A120).

use std::fmt::Write;

use super::classes::{AMBIGUOUS_GROUPS, ambiguous_actions};
use crate::eval::Accuracy;

/// A run's name and accuracy, as the tables show it.
pub struct Column<'a> {
    pub label: &'a str,
    pub accuracy: &'a Accuracy,
}

/// `per_class.md`: the overall figures, then every class in label order.
pub fn per_class(dataset: &str, names: &[&str], runs: &[Column<'_>]) -> String {
    let first = runs[0].accuracy;
    let total = first.samples;
    let mut md = format!("# Per-class accuracy ({dataset}, {total} test samples)\n\n");
    md += "| run | top-1 (%) | top-5 (%) | mean class accuracy (%) |\n|---|---:|---:|---:|\n";
    for run in runs {
        let a = run.accuracy;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            cell(run.label),
            percent(a.top1),
            percent(a.top5),
            percent(a.mean_class)
        );
    }
    md += "\n| # | class | samples |";
    for run in runs {
        let _ = write!(md, " top-1 {} (%) |", cell(run.label));
    }
    md += "\n|---:|---|---:|";
    md += &"---:|".repeat(runs.len());
    md += "\n";
    for (c, name) in names.iter().enumerate() {
        let _ = write!(
            md,
            "| {} | {} | {} |",
            c + 1,
            cell(name),
            first.per_class[c].samples
        );
        for run in runs {
            let _ = write!(md, " {} |", class_percent(run.accuracy, c));
        }
        md += "\n";
    }
    md
}

/// `groups.md`: the 23 ambiguous actions of the paper's Fig. 3 by group, with the difference of
/// the second run to the first where there are two.
pub fn groups(names: &[&str], runs: &[Column<'_>]) -> String {
    let mut md = String::from(
        "# Ambiguous actions (Fig. 3 of the SF-Head paper)\n\n\
         Nine groups of similar NTU actions, 23 in all; top-1 accuracy of each action.\n\n",
    );
    md += "| group | # | action | samples |";
    for run in runs {
        let _ = write!(md, " top-1 {} (%) |", cell(run.label));
    }
    if runs.len() == 2 {
        md += " Δ (pp) |";
    }
    md += "\n|---:|---:|---|---:|";
    md += &"---:|".repeat(runs.len() + usize::from(runs.len() == 2));
    md += "\n";
    for (group, c) in ambiguous_actions() {
        let samples = runs[0].accuracy.per_class[c].samples;
        let _ = write!(
            md,
            "| {group} | {} | {} | {samples} |",
            c + 1,
            cell(names[c])
        );
        for run in runs {
            let _ = write!(md, " {} |", class_percent(run.accuracy, c));
        }
        if let [a, b] = runs {
            let _ = write!(md, " {} |", difference(a.accuracy, b.accuracy, c));
        }
        md += "\n";
    }
    let _ = writeln!(
        md,
        "\n{} groups; Δ is the second run's accuracy minus the first's, in percentage points.",
        AMBIGUOUS_GROUPS.len()
    );
    md
}

/// Classes by the second run's gain over the first, largest first (Fig. 3's order); classes
/// without test samples last, then by label.
pub fn by_gain(a: &Accuracy, b: &Accuracy, classes: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let gain = |c: usize| Some(b.class(c)? - a.class(c)?);
    let mut order: Vec<usize> = classes.into_iter().collect();
    order.sort_by(|&x, &y| match (gain(x), gain(y)) {
        (Some(gx), Some(gy)) => gy.total_cmp(&gx).then(x.cmp(&y)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => x.cmp(&y),
    });
    order
}

/// `compare.md`: both runs per class, sorted by the difference, largest first.
pub fn compare(names: &[&str], a: &Column<'_>, b: &Column<'_>) -> String {
    let (la, lb) = (cell(a.label), cell(b.label));
    let (aa, ab) = (a.accuracy, b.accuracy);
    let mut md = format!("# Per-class top-1: {la} vs {lb}\n\n");
    md += "| | top-1 (%) | top-5 (%) | mean class accuracy (%) |\n|---|---:|---:|---:|\n";
    for (label, acc) in [(&la, aa), (&lb, ab)] {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            percent(acc.top1),
            percent(acc.top5),
            percent(acc.mean_class)
        );
    }
    let _ = writeln!(
        md,
        "| Δ (pp) | {:+.2} | {:+.2} | {:+.2} |\n",
        100.0 * (ab.top1 - aa.top1),
        100.0 * (ab.top5 - aa.top5),
        100.0 * (ab.mean_class - aa.mean_class)
    );
    let improved = (0..names.len())
        .filter(|&c| matches!((aa.class(c), ab.class(c)), (Some(x), Some(y)) if y > x))
        .count();
    let worse = (0..names.len())
        .filter(|&c| matches!((aa.class(c), ab.class(c)), (Some(x), Some(y)) if y < x))
        .count();
    let _ = writeln!(
        md,
        "{lb} is better on {improved} classes and worse on {worse} of {}; Δ = {lb} − {la}, \
         in percentage points, largest first.\n",
        names.len()
    );
    let _ = writeln!(
        md,
        "| rank | # | class | samples | {la} (%) | {lb} (%) | Δ (pp) |\n|---:|---:|---|---:|---:|---:|---:|"
    );
    for (rank, c) in by_gain(aa, ab, 0..names.len()).into_iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            rank + 1,
            c + 1,
            cell(names[c]),
            aa.per_class[c].samples,
            class_percent(aa, c),
            class_percent(ab, c),
            difference(aa, ab, c)
        );
    }
    md
}

fn percent(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn class_percent(a: &Accuracy, c: usize) -> String {
    a.class(c).map_or("–".to_string(), percent)
}

fn difference(a: &Accuracy, b: &Accuracy, c: usize) -> String {
    match (a.class(c), b.class(c)) {
        (Some(x), Some(y)) => format!("{:+.2}", 100.0 * (y - x)),
        _ => "–".to_string(),
    }
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
