//! Pairwise tanh difference, the relation map of CTR-GC: for x1, x2 of shape (B, R, V),
//! E[b, r, u, v] = tanh(x1[b, r, u] − x2[b, r, v]), shape (B, R, V, V). [`tanh_diff_stacked`]
//! takes the pairs of G branches from one tensor, as one product of their relation convs gives
//! them. The backward reads the forward output (tanh' = 1 − E²), so nothing else is saved; each
//! input gradient element is a sequential sum over V written by one invocation.

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
    stacked: u32,
    pair_rows: u32,
}

/// Where x1 and x2 are: two tensors, or the halves of each of the row groups of one.
#[derive(Debug, Clone, Copy)]
enum Pairs {
    Separate,
    /// (B, G·2·R, V) with R = `pair_rows`.
    Stacked {
        pair_rows: usize,
    },
}

impl Params {
    /// From the (B, R', V, V) shape of E.
    fn new(e_shape: &[usize], pairs: Pairs) -> Self {
        let (stacked, pair_rows) = match pairs {
            Pairs::Separate => (0, 0),
            Pairs::Stacked { pair_rows } => (1, pair_rows as u32),
        };
        Self {
            rows: (e_shape[0] * e_shape[1]) as u32,
            joints: e_shape[2] as u32,
            stacked,
            pair_rows,
        }
    }
}

#[derive(Debug)]
struct TanhDiff {
    pairs: Pairs,
}

#[derive(Debug)]
struct TanhDiffGrad {
    pairs: Pairs,
}

/// `tanh(x1[b, r, u] − x2[b, r, v])` for x1, x2 (B, R, V); the result is (B, R, V, V).
pub fn tanh_diff(g: &mut Graph, x1: TensorId, x2: TensorId) -> TensorId {
    let shape = g.shape(x1).to_vec();
    assert_eq!(shape.len(), 3, "tanh_diff takes (B, R, V) inputs");
    assert_eq!(shape, g.shape(x2), "tanh_diff needs equal shapes");
    let e = g.activation("tanh_diff", &[shape[0], shape[1], shape[2], shape[2]]);
    g.push(
        TanhDiff {
            pairs: Pairs::Separate,
        },
        &[x1, x2],
        &[e],
    );
    e
}

/// [`tanh_diff`] of the `groups` pairs in x (B, G·2·R, V), group s holding x1 then x2 of branch
/// s; the result is their stack (B, G·R, V, V).
pub fn tanh_diff_stacked(g: &mut Graph, x: TensorId, groups: usize) -> TensorId {
    let shape = g.shape(x).to_vec();
    assert!(
        shape.len() == 3 && shape[1].is_multiple_of(2 * groups),
        "tanh_diff_stacked takes (B, {groups}·2·R, V), got {shape:?}"
    );
    let pair_rows = shape[1] / (2 * groups);
    let e = g.activation(
        "tanh_diff",
        &[shape[0], groups * pair_rows, shape[2], shape[2]],
    );
    g.push(
        TanhDiff {
            pairs: Pairs::Stacked { pair_rows },
        },
        &[x, x],
        &[e],
    );
    e
}

impl Op for TanhDiff {
    fn name(&self) -> &'static str {
        "tanh_diff"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        rec.dispatch(
            Kernel::new(shader!("tanh_diff"), "tanh_diff_forward"),
            &Params::new(rec.shape(outputs[0]), self.pairs),
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
        let op = TanhDiffGrad { pairs: self.pairs };
        // One pass yields both gradients: it reads E and gE once either way.
        match self.pairs {
            Pairs::Separate => {
                let gx1 = g.activation_like("tanh_diff_grad.x1", ctx.inputs[0]);
                let gx2 = g.activation_like("tanh_diff_grad.x2", ctx.inputs[1]);
                g.push(op, &[ctx.outputs[0], ge], &[gx1, gx2]);
                Ok(vec![
                    ctx.needs[0].then_some(gx1),
                    ctx.needs[1].then_some(gx2),
                ])
            }
            // The input is bound twice: its whole gradient comes through the first.
            Pairs::Stacked { .. } => {
                let gx = g.activation_like("tanh_diff_grad", ctx.inputs[0]);
                g.push(op, &[ctx.outputs[0], ge], &[gx]);
                Ok(vec![Some(gx), None])
            }
        }
    }
}

impl Op for TanhDiffGrad {
    fn name(&self) -> &'static str {
        "tanh_diff_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let entry = match self.pairs {
            Pairs::Separate => "tanh_diff_backward",
            Pairs::Stacked { .. } => "tanh_diff_backward_stacked",
        };
        let args = [inputs, outputs].concat().into_iter().map(arg).collect();
        rec.dispatch(
            Kernel::new(shader!("tanh_diff"), entry),
            &Params::new(rec.shape(inputs[0]), self.pairs),
            args,
            elementwise_grid(rec.numel(inputs[0]) / rec.shape(inputs[0])[2]),
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
