//! The evaluation graph: a model in evaluation mode on a fixed batch shape, giving logits and
//! pooled features per sample.

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
    batch: usize,
    classes: usize,
}

impl Evaluator {
    /// Compiles the model for batches of `shape` (N, C, T, V, M); its weights live in `store`
    /// under their state-dict names, shared with a training step compiled on the same store.
    pub fn new(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        shape: [usize; 5],
        model: CtrGcnConfig,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let classes = model.classes;
        let mut g = Graph::new();
        let x = g.input("x", &shape);
        let out = Network::new(&mut g, model, seed).forward(&mut g, x, None, Mode::Eval);
        let features = out.features.expect("CTR-GCN exposes its pooled features");
        let exe = Executor::compile(gpu, &g, store, &[out.logits, features])?;
        Ok(Self {
            exe,
            x,
            logits: out.logits,
            features,
            batch: shape[0],
            classes,
        })
    }

    /// Logits and features of the first `rows` samples of a batch; a short batch is padded with
    /// zeros, which evaluation-mode BN keeps from affecting the real rows.
    fn batch(&self, x: &[f32], rows: usize) -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
        let mut padded = x.to_vec();
        padded.resize(x.len() / rows * self.batch, 0.0);
        self.exe.write(self.x, &padded)?;
        self.exe.run();
        let logits = self.exe.read(self.logits)?;
        let features = self.exe.read(self.features)?;
        let keep = |v: Vec<f32>| v[..v.len() / self.batch * rows].to_vec();
        Ok((keep(logits), keep(features)))
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
            for batch in batches.epoch(EpochPlan::test(self.batch)) {
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
