//! Pairwise tanh difference, the relation map of CTR-GC: for x1, x2 of shape (B, R, V),
//! E[b, r, u, v] = tanh(x1[b, r, u] − x2[b, r, v]), shape (B, R, V, V). The backward reads the
//! forward output (tanh' = 1 − E²), so nothing else is saved; each input gradient element is a
//! sequential sum over V written by one invocation.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    joints: u32,
}

impl Params {
    /// From the (B, R, V) shape of x1.
    fn new(shape: &[usize]) -> Self {
        Self {
            rows: (shape[0] * shape[1]) as u32,
            joints: shape[2] as u32,
        }
    }
}

#[derive(Debug)]
struct TanhDiff;

#[derive(Debug)]
struct TanhDiffGrad;

/// `tanh(x1[b, r, u] − x2[b, r, v])` for x1, x2 (B, R, V); the result is (B, R, V, V).
pub fn tanh_diff(g: &mut Graph, x1: TensorId, x2: TensorId) -> TensorId {
    let shape = g.shape(x1).to_vec();
    assert_eq!(shape.len(), 3, "tanh_diff takes (B, R, V) inputs");
    assert_eq!(shape, g.shape(x2), "tanh_diff needs equal shapes");
    let e = g.activation("tanh_diff", &[shape[0], shape[1], shape[2], shape[2]]);
    g.push(TanhDiff, &[x1, x2], &[e]);
    e
}

impl Op for TanhDiff {
    fn name(&self) -> &'static str {
        "tanh_diff"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        rec.dispatch(
            Kernel::new(shader!("tanh_diff"), "tanh_diff_forward"),
            &Params::new(rec.shape(inputs[0])),
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(rec.numel(outputs[0])),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let ge = ctx.grads[0].expect("tanh_diff has one output");
        let gx1 = g.activation_like("tanh_diff_grad.x1", ctx.inputs[0]);
        let gx2 = g.activation_like("tanh_diff_grad.x2", ctx.inputs[1]);
        // One pass yields both gradients: it reads E and gE once either way.
        g.push(TanhDiffGrad, &[ctx.outputs[0], ge], &[gx1, gx2]);
        Ok(vec![
            ctx.needs[0].then_some(gx1),
            ctx.needs[1].then_some(gx2),
        ])
    }
}

impl Op for TanhDiffGrad {
    fn name(&self) -> &'static str {
        "tanh_diff_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        rec.dispatch(
            Kernel::new(shader!("tanh_diff"), "tanh_diff_backward"),
            &Params::new(rec.shape(outputs[0])),
            vec![
                arg(inputs[0]),
                arg(inputs[1]),
                arg(outputs[0]),
                arg(outputs[1]),
            ],
            elementwise_grid(rec.numel(outputs[0])),
        );
    }
}

pub mod cpu {
    /// E for x1, x2 of shape (`rows` = B·R, V), flattened.
    pub fn tanh_diff(x1: &[f64], x2: &[f64], joints: usize) -> Vec<f64> {
        let rows = x1.len() / joints;
        let mut e = Vec::with_capacity(rows * joints * joints);
        for row in 0..rows {
            for u in 0..joints {
                for v in 0..joints {
                    e.push((x1[row * joints + u] - x2[row * joints + v]).tanh());
                }
            }
        }
        e
    }

    /// (g_x1, g_x2) given the forward output `e` and its gradient `ge`.
    pub fn tanh_diff_grad(e: &[f64], ge: &[f64], joints: usize) -> (Vec<f64>, Vec<f64>) {
        let rows = e.len() / (joints * joints);
        let mut gx1 = vec![0.0; rows * joints];
        let mut gx2 = vec![0.0; rows * joints];
        for row in 0..rows {
            for u in 0..joints {
                for v in 0..joints {
                    let i = (row * joints + u) * joints + v;
                    let gp = ge[i] * (1.0 - e[i] * e[i]);
                    gx1[row * joints + u] += gp;
                    gx2[row * joints + v] -= gp;
                }
            }
        }
        (gx1, gx2)
    }
}
