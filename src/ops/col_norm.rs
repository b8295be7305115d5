//! Column L2 normalisation of a (K, V, W) tensor over its middle axis, as ST-GCN and BlockGCN
//! normalise their learnable adjacency at every forward:
//! `y[k, v, w] = a[k, v, w] / (‖a[k, :, w]‖ + EPS)`. One invocation handles a whole column with
//! serial loops, which suits the small matrices it serves (3·25·25). The backward recomputes each
//! column's norm from the input instead of saving it.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Added to each column's norm, as PyTorch's `A / (torch.norm(A, 2, dim=1, keepdim=True) + 1e-4)`.
pub const EPS: f32 = 1e-4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    columns: u32,
    v: u32,
    w: u32,
    eps: f32,
}

impl Params {
    fn new(shape: &[usize]) -> Self {
        let [k, v, w] = shape else {
            unreachable!("col_l2_normalize checked the shape")
        };
        Self {
            columns: (k * w) as u32,
            v: *v as u32,
            w: *w as u32,
            eps: EPS,
        }
    }
}

#[derive(Debug)]
struct ColNorm;

#[derive(Debug)]
struct ColNormGrad;

/// `a / (‖a‖ + EPS)` with the norm over axis 1 of the (K, V, W) tensor `a`, per (k, w) column.
pub fn col_l2_normalize(g: &mut Graph, a: TensorId) -> TensorId {
    let shape = g.shape(a);
    assert!(
        shape.len() == 3 && shape.iter().all(|&d| d > 0),
        "col_l2_normalize needs a non-empty (K, V, W) tensor, got shape {shape:?}"
    );
    assert!(
        u32::try_from(g.numel(a)).is_ok(),
        "col_l2_normalize: shape {shape:?} has too many elements for u32 indices"
    );
    let y = g.activation_like("col_norm", a);
    g.push(ColNorm, &[a], &[y]);
    y
}

fn record_columns(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    inputs: &[TensorId],
    output: TensorId,
) {
    let params = Params::new(rec.shape(output));
    let args = inputs.iter().chain([&output]).copied().map(arg).collect();
    rec.dispatch(
        Kernel::new(shader!("col_norm"), entry),
        &params,
        args,
        elementwise_grid(params.columns as usize),
    );
}

impl Op for ColNorm {
    fn name(&self) -> &'static str {
        "col_norm"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_columns(rec, "col_norm_forward", inputs, outputs[0]);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("col_norm has one output");
        let ga = g.activation_like("col_norm_grad", gy);
        g.push(ColNormGrad, &[ctx.inputs[0], gy], &[ga]);
        Ok(vec![Some(ga)])
    }
}

impl Op for ColNormGrad {
    fn name(&self) -> &'static str {
        "col_norm_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_columns(rec, "col_norm_backward", inputs, outputs[0]);
    }
}

pub mod cpu {
    //! f64 references on a contiguous (K, V, W) tensor, per (k, w) column over v.

    use super::EPS;

    /// The flat indices of every column: k·V·W + v·W + w for v ∈ [0, V).
    fn columns(shape: [usize; 3]) -> impl Iterator<Item = Vec<usize>> {
        let [k, v, w] = shape;
        (0..k * w).map(move |c| {
            let start = (c / w) * v * w + c % w;
            (0..v).map(|j| start + j * w).collect()
        })
    }

    fn norm(a: &[f64], column: &[usize]) -> f64 {
        column.iter().map(|&i| a[i] * a[i]).sum::<f64>().sqrt()
    }

    /// y = a/(‖a‖ + EPS) per column.
    pub fn forward(a: &[f64], shape: [usize; 3]) -> Vec<f64> {
        let eps = f64::from(EPS);
        let mut y = vec![0.0; a.len()];
        for column in columns(shape) {
            let n = norm(a, &column) + eps;
            for &i in &column {
                y[i] = a[i] / n;
            }
        }
        y
    }

    /// Gradient of `forward` at `a` through its Jacobian within a column, with s = ‖a‖ and
    /// n = s + EPS: ∂y_u/∂a_v = δ_uv/n − a_u·(∂s/∂a_v)/n², where ∂s/∂a_v = a_v/s, and 0 at
    /// s = 0 (the subgradient PyTorch's norm takes there).
    pub fn backward(a: &[f64], gy: &[f64], shape: [usize; 3]) -> Vec<f64> {
        let eps = f64::from(EPS);
        let mut ga = vec![0.0; a.len()];
        for column in columns(shape) {
            let s = norm(a, &column);
            let n = s + eps;
            let ds = |v: usize| if s > 0.0 { a[v] / s } else { 0.0 };
            for &v in &column {
                ga[v] = column
                    .iter()
                    .map(|&u| {
                        let delta = if u == v { 1.0 } else { 0.0 };
                        gy[u] * (delta / n - a[u] * ds(v) / (n * n))
                    })
                    .sum();
            }
        }
        ga
    }
}
