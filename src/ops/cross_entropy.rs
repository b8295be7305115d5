//! Softmax cross-entropy of (N, K) logits against N class labels, averaged over the batch, with
//! optional label smoothing ε (InfoGCN's `LabelSmoothingCrossEntropy`): each row's loss is
//! (1 − ε)·(−log p_y) + ε·mean_k(−log p_k). Backward: g_logits = g_loss·(softmax(z) − t)/N with
//! the smoothed target t = (1 − ε)·onehot(y) + ε/K. Plain cross-entropy is ε = 0, where every
//! smoothing term is an exact 0 or 1, so it gives the same bits as without them.

use bytemuck::{Pod, Zeroable};

use super::arg;
use super::reduce::{AxisSplit, Summand, record_sum};
use crate::engine::{Arg, AutodiffError, DType, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct CrossEntropy {
    smoothing: f32,
}

#[derive(Debug)]
struct CrossEntropyGrad {
    smoothing: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    smoothing: f32,
}

impl Params {
    fn of(shape: &[usize], smoothing: f32) -> Self {
        Self {
            rows: shape[0] as u32,
            classes: shape[1] as u32,
            smoothing,
        }
    }

    fn grid(&self) -> [u32; 3] {
        [self.rows.div_ceil(64), 1, 1]
    }
}

/// Mean cross-entropy, shape `[1]`. `labels` is a u32 input of length N; a label out of range
/// makes the loss NaN.
pub fn cross_entropy(g: &mut Graph, logits: TensorId, labels: TensorId) -> TensorId {
    cross_entropy_smoothed(g, logits, labels, 0.0)
}

/// Mean label-smoothing cross-entropy with smoothing ε in [0, 1], shape `[1]`. `labels` is a
/// u32 input of length N; a label out of range makes the loss NaN.
pub fn cross_entropy_smoothed(
    g: &mut Graph,
    logits: TensorId,
    labels: TensorId,
    smoothing: f32,
) -> TensorId {
    let shape = g.shape(logits).to_vec();
    assert_eq!(shape.len(), 2, "cross entropy takes (N, K) logits");
    assert_eq!(g.shape(labels), [shape[0]], "one label per row");
    assert_eq!(g.tensor(labels).dtype, DType::U32, "labels are u32");
    assert!(
        (0.0..=1.0).contains(&smoothing),
        "label smoothing must lie in [0, 1], got {smoothing}"
    );
    let loss = g.activation("cross_entropy", &[1]);
    g.push(CrossEntropy { smoothing }, &[logits, labels], &[loss]);
    loss
}

impl Op for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]), self.smoothing);
        let rows = Arg::Scratch {
            slot: 1,
            bytes: 4 * u64::from(params.rows),
        };
        rec.dispatch(
            Kernel::new(shader!("cross_entropy"), "ce_rows"),
            &params,
            vec![arg(inputs[0]), arg(inputs[1]), rows.clone()],
            params.grid(),
        );
        let split = AxisSplit {
            kept: vec![],
            reduced: vec![(params.rows as usize, 1)],
        };
        let scale = 1.0 / params.rows as f32;
        let loss = arg(outputs[0]);
        record_sum(
            rec,
            &split,
            Summand::Value,
            rows,
            None,
            None,
            scale,
            loss,
            0,
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gloss = ctx.grads[0].expect("cross entropy has one output");
        let (logits, labels) = (ctx.inputs[0], ctx.inputs[1]);
        let glogits = g.activation_like("cross_entropy_grad", logits);
        let grad = CrossEntropyGrad {
            smoothing: self.smoothing,
        };
        g.push(grad, &[logits, labels, gloss], &[glogits]);
        Ok(vec![Some(glogits), None])
    }
}

impl Op for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross_entropy_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]), self.smoothing);
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        rec.dispatch(
            Kernel::new(shader!("cross_entropy"), "ce_backward"),
            &params,
            args,
            params.grid(),
        );
    }
}

pub mod cpu {
    fn log_softmax_row(z: &[f64]) -> Vec<f64> {
        let top = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = top + z.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
        z.iter().map(|v| v - lse).collect()
    }

    /// Mean cross-entropy of `logits` (rows × classes).
    pub fn cross_entropy(logits: &[f64], labels: &[u32], classes: usize) -> f64 {
        cross_entropy_smoothed(logits, labels, classes, 0.0)
    }

    /// Gradient of [`cross_entropy`] with respect to the logits, for an incoming gradient `gloss`.
    pub fn cross_entropy_grad(
        logits: &[f64],
        labels: &[u32],
        classes: usize,
        gloss: f64,
    ) -> Vec<f64> {
        cross_entropy_smoothed_grad(logits, labels, classes, 0.0, gloss)
    }

    /// Mean label-smoothing cross-entropy, as InfoGCN's `loss.py` writes it:
    /// ((1 − ε)·nll + ε·(−mean_k log p_k)) averaged over the rows.
    pub fn cross_entropy_smoothed(
        logits: &[f64],
        labels: &[u32],
        classes: usize,
        smoothing: f64,
    ) -> f64 {
        let rows = labels.len();
        (0..rows)
            .map(|i| {
                let lp = log_softmax_row(&logits[i * classes..(i + 1) * classes]);
                let nll = -lp[labels[i] as usize];
                let smooth = -lp.iter().sum::<f64>() / classes as f64;
                (1.0 - smoothing) * nll + smoothing * smooth
            })
            .sum::<f64>()
            / rows as f64
    }

    /// Gradient of [`cross_entropy_smoothed`] with respect to the logits, for an incoming
    /// gradient `gloss`: gloss·(softmax − (1 − ε)·onehot − ε/K)/N.
    pub fn cross_entropy_smoothed_grad(
        logits: &[f64],
        labels: &[u32],
        classes: usize,
        smoothing: f64,
        gloss: f64,
    ) -> Vec<f64> {
        let rows = labels.len();
        let mut g = Vec::with_capacity(logits.len());
        for (i, &y) in labels.iter().enumerate() {
            let lp = log_softmax_row(&logits[i * classes..(i + 1) * classes]);
            for (k, l) in lp.iter().enumerate() {
                let onehot = if k == y as usize { 1.0 } else { 0.0 };
                let target = (1.0 - smoothing) * onehot + smoothing / classes as f64;
                g.push(gloss * (l.exp() - target) / rows as f64);
            }
        }
        g
    }
}
