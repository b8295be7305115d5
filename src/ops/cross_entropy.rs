//! Softmax cross-entropy of (N, K) logits against N class labels, averaged over the batch (no
//! label smoothing). Backward: g_logits = g_loss·(softmax(z) − onehot(y))/N.

use bytemuck::{Pod, Zeroable};

use super::arg;
use super::reduce::{AxisSplit, Summand, record_sum};
use crate::engine::{Arg, AutodiffError, DType, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct CrossEntropy;

#[derive(Debug)]
struct CrossEntropyGrad;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
}

impl Params {
    fn of(shape: &[usize]) -> Self {
        Self {
            rows: shape[0] as u32,
            classes: shape[1] as u32,
        }
    }

    fn grid(&self) -> [u32; 3] {
        [self.rows.div_ceil(64), 1, 1]
    }
}

/// Mean cross-entropy, shape `[1]`. `labels` is a u32 input of length N; a label out of range
/// makes the loss NaN.
pub fn cross_entropy(g: &mut Graph, logits: TensorId, labels: TensorId) -> TensorId {
    let shape = g.shape(logits).to_vec();
    assert_eq!(shape.len(), 2, "cross entropy takes (N, K) logits");
    assert_eq!(g.shape(labels), [shape[0]], "one label per row");
    assert_eq!(g.tensor(labels).dtype, DType::U32, "labels are u32");
    let loss = g.activation("cross_entropy", &[1]);
    g.push(CrossEntropy, &[logits, labels], &[loss]);
    loss
}

impl Op for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]));
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
        g.push(CrossEntropyGrad, &[logits, labels, gloss], &[glogits]);
        Ok(vec![Some(glogits), None])
    }
}

impl Op for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross_entropy_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]));
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
        let rows = labels.len();
        (0..rows)
            .map(|i| -log_softmax_row(&logits[i * classes..(i + 1) * classes])[labels[i] as usize])
            .sum::<f64>()
            / rows as f64
    }

    /// Gradient with respect to the logits, for an incoming gradient `gloss`.
    pub fn cross_entropy_grad(
        logits: &[f64],
        labels: &[u32],
        classes: usize,
        gloss: f64,
    ) -> Vec<f64> {
        let rows = labels.len();
        let mut g = Vec::with_capacity(logits.len());
        for (i, &y) in labels.iter().enumerate() {
            let lp = log_softmax_row(&logits[i * classes..(i + 1) * classes]);
            for (k, l) in lp.iter().enumerate() {
                let target = if k == y as usize { 1.0 } else { 0.0 };
                g.push(gloss * (l.exp() - target) / rows as f64);
            }
        }
        g
    }
}
