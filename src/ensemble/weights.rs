//! Stream weights: the published presets, and a search on held-out scores.

use super::join::{aligned, join};
use super::{EnsembleError, Stream};
use crate::train::top_k_hits;

/// Published weightings, each for its streams in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// CTR-GCN's `ensemble.py`: joint, bone, joint-motion, bone-motion at 0.6, 0.6, 0.4, 0.4.
    Ctrgcn4,
    /// InfoGCN's six streams: k = 1, 2, 8 positions at 1.5, then k = 1, 2, 8 motions at 1.0.
    Infogcn6,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ctrgcn4 => "ctrgcn4",
            Self::Infogcn6 => "infogcn6",
        }
    }

    /// The streams in the order the inputs must follow.
    pub fn streams(self) -> &'static [&'static str] {
        match self {
            Self::Ctrgcn4 => &["joint", "bone", "joint-motion", "bone-motion"],
            Self::Infogcn6 => &["k1", "k2", "k8", "k1-motion", "k2-motion", "k8-motion"],
        }
    }

    pub fn weights(self) -> &'static [f32] {
        match self {
            Self::Ctrgcn4 => &[0.6, 0.6, 0.4, 0.4],
            Self::Infogcn6 => &[1.5, 1.5, 1.5, 1.0, 1.0, 1.0],
        }
    }
}

/// The weights [`search`] tries for each stream.
pub const DEFAULT_GRID: [f32; 11] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0];

/// Full rounds of the coordinate search at most; it usually settles in two or three.
const MAX_ROUNDS: usize = 20;

/// Weights maximising top-1 on held-out scores (which must carry labels), one per stream.
///
/// Coordinate search from equal weights: for each stream in turn, every value of `grid` is
/// tried with the other weights fixed and the best kept; rounds repeat until none changes. Of
/// values with the same top-1, the one nearest the current weight wins (then the smaller), so
/// a weight moves only for a real gain. The result is deterministic.
pub fn search(holdout: &[Stream], grid: &[f32]) -> Result<Vec<f32>, EnsembleError> {
    let joined = join(holdout)?;
    let labels = joined
        .labels
        .as_deref()
        .ok_or_else(|| EnsembleError::Unlabelled {
            files: holdout.iter().map(|s| s.source.clone()).collect(),
        })?;
    let classes = holdout[0].scores.classes;
    let streams: Vec<Vec<f32>> = (0..holdout.len())
        .map(|s| aligned(holdout, &joined, s))
        .collect();
    let top1 = |fused: &[f32]| top_k_hits(fused, labels, classes).0;
    let mut weights = vec![1.0f32; holdout.len()];
    let mut fused = vec![0f32; streams[0].len()];
    for _ in 0..MAX_ROUNDS {
        let mut changed = false;
        for s in 0..streams.len() {
            // Everything but stream s, then each candidate weight for it on top.
            let mut rest = vec![0f32; fused.len()];
            for (t, values) in streams.iter().enumerate().filter(|&(t, _)| t != s) {
                for (r, &v) in rest.iter_mut().zip(values) {
                    *r += weights[t] * v;
                }
            }
            let others_zero = weights.iter().enumerate().all(|(t, &w)| t == s || w == 0.0);
            let current = weights[s];
            let mut best = (current, {
                fill(&mut fused, &rest, &streams[s], current);
                top1(&fused)
            });
            for &g in grid {
                // All weights zero would rank every class equal.
                if g == 0.0 && others_zero {
                    continue;
                }
                fill(&mut fused, &rest, &streams[s], g);
                let hits = top1(&fused);
                let closer = (g - current).abs() < (best.0 - current).abs()
                    || ((g - current).abs() == (best.0 - current).abs() && g < best.0);
                if hits > best.1 || (hits == best.1 && closer) {
                    best = (g, hits);
                }
            }
            if best.0 != current {
                weights[s] = best.0;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    Ok(weights)
}

fn fill(fused: &mut [f32], rest: &[f32], stream: &[f32], w: f32) {
    for ((f, &r), &v) in fused.iter_mut().zip(rest).zip(stream) {
        *f = r + w * v;
    }
}
