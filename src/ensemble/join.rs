//! The join of score sets by sample name, and their weighted sum.

use std::collections::{HashMap, HashSet};

use super::{EnsembleError, Stream};
use crate::scores::Scores;

/// How many names an error lists.
const SHOWN: usize = 5;

/// Score sets joined by sample name: `rows[s][i]` is the row of stream `s` holding the `i`-th
/// sample of the first stream.
pub(super) struct Joined {
    pub rows: Vec<Vec<usize>>,
    /// Labels in the first stream's order, from whichever streams carry them.
    pub labels: Option<Vec<u32>>,
}

/// Joins `streams` by sample name; they must hold the same samples, once each, over the same
/// classes, and agree on every label they carry.
pub(super) fn join(streams: &[Stream]) -> Result<Joined, EnsembleError> {
    let first = streams.first().ok_or(EnsembleError::NoInputs)?;
    let index: Vec<HashMap<&str, usize>> =
        streams.iter().map(name_index).collect::<Result<_, _>>()?;
    for (s, stream) in streams.iter().enumerate().skip(1) {
        if stream.scores.classes != first.scores.classes {
            return Err(EnsembleError::Classes {
                first: first.source.clone(),
                first_classes: first.scores.classes,
                other: stream.source.clone(),
                classes: stream.scores.classes,
            });
        }
        let missing = absent(&first.scores, &index[s]);
        let extra = absent(&stream.scores, &index[0]);
        if !missing.is_empty() || !extra.is_empty() {
            return Err(EnsembleError::Samples(describe(
                first, stream, &missing, &extra,
            )));
        }
    }
    let rows: Vec<Vec<usize>> = index
        .iter()
        .map(|names| {
            first
                .scores
                .names
                .iter()
                .map(|n| names[n.as_str()])
                .collect()
        })
        .collect();
    let labels = join_labels(streams, &rows)?;
    Ok(Joined { rows, labels })
}

fn name_index(stream: &Stream) -> Result<HashMap<&str, usize>, EnsembleError> {
    let mut index = HashMap::with_capacity(stream.scores.len());
    for (i, name) in stream.scores.names.iter().enumerate() {
        if index.insert(name.as_str(), i).is_some() {
            return Err(EnsembleError::Duplicate {
                file: stream.source.clone(),
                name: name.clone(),
            });
        }
    }
    Ok(index)
}

/// The names of `scores` that `other` lacks, in order.
fn absent<'a>(scores: &'a Scores, other: &HashMap<&str, usize>) -> Vec<&'a str> {
    scores
        .names
        .iter()
        .map(String::as_str)
        .filter(|n| !other.contains_key(n))
        .collect()
}

fn describe(first: &Stream, other: &Stream, missing: &[&str], extra: &[&str]) -> String {
    let list = |names: &[&str]| {
        let shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
        let more = names.len().saturating_sub(SHOWN);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{tail}", shown.join(", "))
    };
    let mut parts = vec![format!(
        "{} holds {} samples, {} holds {}",
        first.source,
        first.scores.len(),
        other.source,
        other.scores.len()
    )];
    if !missing.is_empty() {
        parts.push(format!(
            "{} samples of {} are missing from {}: {}",
            missing.len(),
            first.source,
            other.source,
            list(missing)
        ));
    }
    if !extra.is_empty() {
        parts.push(format!(
            "{} samples of {} are missing from {}: {}",
            extra.len(),
            other.source,
            first.source,
            list(extra)
        ));
    }
    parts.join("; ")
}

fn join_labels(streams: &[Stream], rows: &[Vec<usize>]) -> Result<Option<Vec<u32>>, EnsembleError> {
    let labelled: Vec<(usize, &[u32])> = streams
        .iter()
        .enumerate()
        .filter_map(|(s, st)| st.scores.labels.as_deref().map(|l| (s, l)))
        .collect();
    let Some(&(first, reference)) = labelled.first() else {
        return Ok(None);
    };
    let labels: Vec<u32> = rows[first].iter().map(|&r| reference[r]).collect();
    for &(s, other) in &labelled[1..] {
        for (i, &label) in labels.iter().enumerate() {
            let theirs = other[rows[s][i]];
            if theirs != label {
                return Err(EnsembleError::Labels {
                    sample: streams[0].scores.names[i].clone(),
                    first: streams[first].source.clone(),
                    first_label: label,
                    other: streams[s].source.clone(),
                    label: theirs,
                });
            }
        }
    }
    Ok(Some(labels))
}

/// Stream `s`'s scores in the first stream's order.
pub(super) fn aligned(streams: &[Stream], joined: &Joined, s: usize) -> Vec<f32> {
    let scores = &streams[s].scores;
    joined.rows[s]
        .iter()
        .flat_map(|&r| scores.row(r).iter().copied())
        .collect()
}

/// Σ weights[s]·scores[s], in the first stream's order, summed in stream order.
pub(super) fn weighted_sum(streams: &[Stream], joined: &Joined, weights: &[f32]) -> Vec<f32> {
    let first = &streams[0].scores;
    let mut sum = vec![0f32; first.values.len()];
    for (s, (stream, &w)) in streams.iter().zip(weights).enumerate() {
        for (i, &r) in joined.rows[s].iter().enumerate() {
            let out = &mut sum[i * first.classes..(i + 1) * first.classes];
            for (o, &v) in out.iter_mut().zip(stream.scores.row(r)) {
                *o += w * v;
            }
        }
    }
    sum
}

/// The names two sets share.
pub(super) fn shared_names(a: &Scores, b: &Scores) -> usize {
    let a: HashSet<&str> = a.names.iter().map(String::as_str).collect();
    b.names.iter().filter(|n| a.contains(n.as_str())).count()
}
