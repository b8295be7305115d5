//! The evaluation graph: a model in evaluation mode on a fixed batch shape, giving logits and
//! pooled features per sample. Where the test feeder makes several clips of a sample (pyskl's
//! 10-clip test), the sample's score is the log of its clips' mean softmax probabilities, as
//! pyskl's `average_clips='prob'` (the softmax of the score is that mean), and its features the
//! clips' mean.

use std::sync::Arc;

use crate::data::batch::{Batcher, EpochPlan};
use crate::engine::{Executor, Graph, Store, TensorId};
use crate::gpu::Gpu;
use crate::model::ctrgcn::CtrGcnConfig;
use crate::model::network::Network;
use crate::ops::batch_norm::Mode;
use crate::scores::{Features, Scores};

pub struct Evaluator {
    exe: Executor,
    x: TensorId,
    logits: TensorId,
    features: TensorId,
    /// Rows of the compiled batch: samples × clips.
    batch: usize,
    clips: usize,
    classes: usize,
}

impl Evaluator {
    /// Compiles the model for batches of `shape` (N, C, T, V, M) samples of `clips` clips each
    /// (N·clips rows); its weights live in `store` under their state-dict names, shared with a
    /// training step compiled on the same store.
    pub fn new(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        shape: [usize; 5],
        clips: usize,
        model: CtrGcnConfig,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let classes = model.classes;
        let mut g = Graph::new();
        let rows = [shape[0] * clips, shape[1], shape[2], shape[3], shape[4]];
        let x = g.input("x", &rows);
        let out = Network::new(&mut g, model, seed).forward(&mut g, x, None, Mode::Eval);
        let features = out.features.expect("CTR-GCN exposes its pooled features");
        let exe = Executor::compile(gpu, &g, store, &[out.logits, features])?;
        Ok(Self {
            exe,
            x,
            logits: out.logits,
            features,
            batch: rows[0],
            clips,
            classes,
        })
    }

    /// Scores and features of the first `samples` samples of a batch; a short batch is padded
    /// with zeros, which evaluation-mode BN keeps from affecting the real rows.
    fn batch(&self, x: &[f32], samples: usize) -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
        let rows = samples * self.clips;
        let mut padded = x.to_vec();
        padded.resize(x.len() / rows * self.batch, 0.0);
        self.exe.write(self.x, &padded)?;
        self.exe.run();
        let logits = self.exe.read(self.logits)?;
        let features = self.exe.read(self.features)?;
        let keep = |v: Vec<f32>| v[..v.len() / self.batch * rows].to_vec();
        let (logits, features) = (keep(logits), keep(features));
        if self.clips == 1 {
            return Ok((logits, features));
        }
        Ok((
            mean_probability_scores(&logits, self.classes, self.clips),
            mean_rows(&features, features.len() / rows, self.clips),
        ))
    }

    /// Scores of the first `limit` samples of `set` (0: all), in the set's order, with labels
    /// and pooled features; `progress` is called after each batch with the samples done.
    pub fn score(
        &self,
        batches: &Batcher,
        limit: usize,
        mut progress: impl FnMut(usize),
    ) -> anyhow::Result<Scores> {
        let set = batches.set();
        let total = if limit == 0 {
            set.len()
        } else {
            limit.min(set.len())
        };
        let (mut values, mut features, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = 0;
        if total > 0 {
            for batch in batches.epoch(EpochPlan::test(self.batch / self.clips)) {
                let batch = batch?;
                let rows = batch.labels.len().min(total - seen);
                let per_row = batch.x.len() / batch.labels.len();
                let (l, f) = self.batch(&batch.x[..per_row * rows], rows)?;
                values.extend(l);
                features.extend(f);
                labels.extend_from_slice(&batch.labels[..rows]);
                seen += rows;
                progress(seen);
                if seen >= total {
                    break;
                }
            }
        }
        let width = features.len() / seen.max(1);
        Ok(Scores {
            names: (0..seen).map(|i| set.name(i).to_string()).collect(),
            classes: self.classes,
            values,
            labels: Some(labels),
            features: Some(Features {
                width,
                values: features,
            }),
        })
    }
}

/// ln of the mean over each sample's `clips` consecutive rows of softmax(logits), per class, in
/// f64 with the max subtracted.
fn mean_probability_scores(logits: &[f32], classes: usize, clips: usize) -> Vec<f32> {
    logits
        .chunks_exact(classes * clips)
        .flat_map(|sample| {
            let mut mean = vec![0.0f64; classes];
            for row in sample.chunks_exact(classes) {
                let top = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let exps: Vec<f64> = row.iter().map(|&l| f64::from(l - top).exp()).collect();
                let total: f64 = exps.iter().sum();
                for (m, e) in mean.iter_mut().zip(&exps) {
                    *m += e / total / clips as f64;
                }
            }
            mean.into_iter().map(|p| p.ln() as f32)
        })
        .collect()
}

/// The mean of each `clips` consecutive rows of `width` values.
fn mean_rows(values: &[f32], width: usize, clips: usize) -> Vec<f32> {
    values
        .chunks_exact(width * clips)
        .flat_map(|sample| {
            (0..width).map(move |i| {
                let sum: f64 = (0..clips).map(|j| f64::from(sample[j * width + i])).sum();
                (sum / clips as f64) as f32
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_clips_average_their_probabilities() {
        // Two clips of one sample over two classes: softmax rows (0.5, 0.5) and (e/(1+e), 1/(1+e)).
        let scores = mean_probability_scores(&[0.0, 0.0, 1.0, 0.0], 2, 2);
        let p = 1.0f64.exp() / (1.0 + 1.0f64.exp());
        let want = [(0.25 + p / 2.0).ln(), (0.25 + (1.0 - p) / 2.0).ln()];
        for (got, want) in scores.iter().zip(want) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{scores:?}");
        }
        // A shift of one clip's logits changes nothing: the probabilities are averaged.
        assert_eq!(mean_probability_scores(&[5.0, 5.0, 1.0, 0.0], 2, 2), scores);
        assert_eq!(mean_rows(&[1.0, 2.0, 3.0, 6.0], 2, 2), [2.0, 4.0]);
    }
}
