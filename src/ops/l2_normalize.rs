//! Row L2 normalisation over the last axis, as ProtoGCN's class-specific contrastive loss makes
//! its features and class centroids unit vectors for cosine scores:
//! `y = x / (torch.norm(x, p=2, dim=-1, keepdim=True) + eps)`. One invocation handles a whole row
//! with serial loops. The backward recomputes each row's norm from the input instead of saving
//! it: g_x = g/n − x·(Σ g⊙x)/(n²·‖x‖) with n = ‖x‖ + eps, the second term 0 in a zero row (the
//! subgradient PyTorch's norm takes there).

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
}

impl Params {
    fn new(shape: &[usize], eps: f32) -> Self {
        let dim = *shape.last().expect("l2_normalize checked the rank");
        let total: usize = shape.iter().product();
        Self {
            rows: (total / dim) as u32,
            dim: dim as u32,
            eps,
        }
    }
}

#[derive(Debug)]
struct L2Normalize {
    eps: f32,
}

#[derive(Debug)]
struct L2NormalizeGrad {
    eps: f32,
}

/// `x / (‖x‖₂ + eps)` for each row of the last axis of `x` (any rank ≥ 1), eps ≥ 0.
pub fn l2_normalize(g: &mut Graph, x: TensorId, eps: f32) -> TensorId {
    let shape = g.shape(x);
    assert!(
        !shape.is_empty(),
        "l2_normalize needs a tensor with a last axis, got shape {shape:?}"
    );
    assert!(
        u32::try_from(g.numel(x)).is_ok(),
        "l2_normalize: shape {shape:?} has too many elements for u32 indices"
    );
    assert!(
        eps.is_finite() && eps >= 0.0,
        "l2_normalize needs a finite eps ≥ 0, got {eps}"
    );
    let y = g.activation_like("l2_normalize", x);
    g.push(L2Normalize { eps }, &[x], &[y]);
    y
}

/// Records `entry` over `inputs` → `output`, one invocation per row.
fn record_rows(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    eps: f32,
    inputs: &[TensorId],
    output: TensorId,
) {
    let params = Params::new(rec.shape(output), eps);
    let args = inputs.iter().chain([&output]).copied().map(arg).collect();
    rec.dispatch(
        Kernel::new(shader!("l2_normalize"), entry),
        &params,
        args,
        elementwise_grid(params.rows as usize),
    );
}

impl Op for L2Normalize {
    fn name(&self) -> &'static str {
        "l2_normalize"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_rows(rec, "l2n_forward", self.eps, inputs, outputs[0]);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("l2_normalize has one output");
        let gx = g.activation_like("l2_normalize_grad", gy);
        g.push(
            L2NormalizeGrad { eps: self.eps },
            &[ctx.inputs[0], gy],
            &[gx],
        );
        Ok(vec![Some(gx)])
    }
}

impl Op for L2NormalizeGrad {
    fn name(&self) -> &'static str {
        "l2_normalize_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_rows(rec, "l2n_backward", self.eps, inputs, outputs[0]);
    }
}

pub mod cpu {
    //! f64 references on rows of `d` consecutive elements.

    fn norm(row: &[f64]) -> f64 {
        row.iter().map(|v| v * v).sum::<f64>().sqrt()
    }

    /// y = x/(‖x‖ + eps) per row.
    pub fn forward(x: &[f64], d: usize, eps: f64) -> Vec<f64> {
        x.chunks(d)
            .flat_map(|row| {
                let n = norm(row) + eps;
                row.iter().map(move |v| v / n)
            })
            .collect()
    }

    /// Gradient of `forward` at `x` through its Jacobian within a row, with s = ‖x‖ and
    /// n = s + eps: ∂y_u/∂x_v = δ_uv/n − x_u·(∂s/∂x_v)/n², where ∂s/∂x_v = x_v/s, and 0 at
    /// s = 0 (the subgradient PyTorch's norm takes there).
    pub fn backward(x: &[f64], gy: &[f64], d: usize, eps: f64) -> Vec<f64> {
        let mut gx = vec![0.0; x.len()];
        for ((row, g), out) in x.chunks(d).zip(gy.chunks(d)).zip(gx.chunks_mut(d)) {
            let s = norm(row);
            let n = s + eps;
            let ds = |v: usize| if s > 0.0 { row[v] / s } else { 0.0 };
            for (v, o) in out.iter_mut().enumerate() {
                *o = (0..d)
                    .map(|u| {
                        let delta = if u == v { 1.0 } else { 0.0 };
                        g[u] * (delta / n - row[u] * ds(v) / (n * n))
                    })
                    .sum();
            }
        }
        gx
    }
}
