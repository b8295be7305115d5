//! GroupNorm with one channel per group and no affine, on (A, K, rest...): each (a, k) is
//! normalised over its rest axes with the biased variance, y = (x − μ)/√(σ² + eps). PyTorch's
//! `nn.GroupNorm(q, q)` is this followed by `channel_affine` with its weight and bias.
//!
//! The variance is a second pass over x − μ (not E[x²] − μ²), so a large common offset does not
//! cancel. The forward saves μ and 1/σ for the backward:
//! g_x = rstd·(g − mean(g) − x̂·mean(g·x̂)), means over the rest axes.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// PyTorch's default eps.
pub const DEFAULT_EPS: f32 = 1e-5;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    inner: u32,
    eps: f32,
    _pad: u32,
}

/// The (A, K, rest...) shape seen by the kernels: one group per (a, k), `inner` elements each.
struct Groups {
    split: AxisSplit,
    groups: usize,
    params: Params,
}

impl Groups {
    fn new(shape: &[usize], eps: f32) -> Self {
        let rest: Vec<usize> = (2..shape.len()).collect();
        let total: usize = shape.iter().product();
        let inner: usize = shape[2..].iter().product();
        Self {
            split: AxisSplit::new(shape, &rest),
            groups: total / inner,
            params: Params {
                total: total as u32,
                inner: inner as u32,
                eps,
                _pad: 0,
            },
        }
    }

    /// A per-group temporary in scratch slot `slot` (slot 0 holds the reduction partials).
    fn scratch(&self, slot: usize) -> Arg {
        Arg::Scratch {
            slot,
            bytes: 4 * self.groups as u64,
        }
    }

    fn element_grid(&self) -> [u32; 3] {
        elementwise_grid(self.params.total as usize)
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("group_norm"), entry)
}

#[derive(Debug)]
struct GroupNorm {
    eps: f32,
}

#[derive(Debug)]
struct GroupNormGrad;

/// `x` (A, K, rest...) normalised per (a, k) over the rest axes; `eps` is added to the variance
/// (PyTorch's default is [`DEFAULT_EPS`]).
pub fn group_norm(g: &mut Graph, x: TensorId, eps: f32) -> TensorId {
    let shape = g.shape(x).to_vec();
    assert!(
        shape.len() >= 3 && shape[2..].iter().product::<usize>() > 1,
        "group norm needs (A, K, rest...) with more than one value per (a, k), got {shape:?}"
    );
    let y = g.activation("group_norm", &shape);
    let mean = g.activation("group_norm.mean", &shape[..2]);
    let rstd = g.activation("group_norm.rstd", &shape[..2]);
    g.push(GroupNorm { eps }, &[x], &[y, mean, rstd]);
    y
}

impl Op for GroupNorm {
    fn name(&self) -> &'static str {
        "group_norm"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let x = inputs[0];
        let [y, mean, rstd] = outputs.try_into().expect("3 outputs");
        let gr = Groups::new(rec.shape(x), self.eps);
        let inv_n = 1.0 / gr.params.inner as f32;
        let var = gr.scratch(1);
        let (split, value, centred) = (&gr.split, Summand::Value, Summand::CentredSquare);
        let (mean_arg, m) = (arg(mean), Some(arg(mean)));
        record_sum(rec, split, value, arg(x), None, None, inv_n, mean_arg, 0);
        record_sum(rec, split, centred, arg(x), None, m, inv_n, var.clone(), 0);
        rec.dispatch(
            kernel("gn_normalize"),
            &gr.params,
            vec![arg(x), arg(mean), var, arg(y), arg(rstd)],
            gr.element_grid(),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("group norm statistics are not differentiated");
        let x = ctx.inputs[0];
        let (mean, rstd) = (ctx.outputs[1], ctx.outputs[2]);
        let gx = g.activation_like("group_norm_grad", x);
        g.push(GroupNormGrad, &[x, gy, mean, rstd], &[gx]);
        Ok(vec![Some(gx)])
    }
}

impl Op for GroupNormGrad {
    fn name(&self) -> &'static str {
        "group_norm_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let [x, gy, mean, rstd] = inputs.try_into().expect("4 inputs");
        let gr = Groups::new(rec.shape(x), 0.0);
        let (sum_g, sum_gc) = (gr.scratch(1), gr.scratch(2));
        let (split, value, product) = (&gr.split, Summand::Value, Summand::CentredProduct);
        let (g, m, sum_g_arg) = (Some(arg(gy)), Some(arg(mean)), sum_g.clone());
        record_sum(rec, split, value, arg(gy), None, None, 1.0, sum_g_arg, 0);
        record_sum(rec, split, product, arg(x), g, m, 1.0, sum_gc.clone(), 0);
        rec.dispatch(
            kernel("gn_grad_input"),
            &gr.params,
            vec![
                arg(x),
                arg(gy),
                arg(mean),
                arg(rstd),
                sum_g,
                sum_gc,
                arg(outputs[0]),
            ],
            gr.element_grid(),
        );
    }
}

pub mod cpu {
    //! f64 references on groups of `inner` consecutive elements.

    /// Per-group mean and biased variance.
    pub fn stats(x: &[f64], inner: usize) -> (Vec<f64>, Vec<f64>) {
        let n = inner as f64;
        x.chunks(inner)
            .map(|group| {
                let mean = group.iter().sum::<f64>() / n;
                let var = group.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                (mean, var)
            })
            .unzip()
    }

    /// (x − mean)/√(var + eps) per group.
    pub fn forward(x: &[f64], inner: usize, eps: f64) -> Vec<f64> {
        let (mean, var) = stats(x, inner);
        x.iter()
            .enumerate()
            .map(|(i, v)| (v - mean[i / inner]) / (var[i / inner] + eps).sqrt())
            .collect()
    }

    /// Gradient of `forward` for the output gradient `gy`, through the Jacobian of each group:
    /// ∂y_j/∂x_i = rstd·(δ_ij − 1/n − x̂_i·x̂_j/n).
    pub fn backward(x: &[f64], gy: &[f64], inner: usize, eps: f64) -> Vec<f64> {
        let n = inner as f64;
        let (mean, var) = stats(x, inner);
        let mut gx = vec![0.0; x.len()];
        for (o, (&m, &v)) in mean.iter().zip(&var).enumerate() {
            let rstd = 1.0 / (v + eps).sqrt();
            let range = o * inner..(o + 1) * inner;
            let xhat: Vec<f64> = x[range.clone()].iter().map(|x| (x - m) * rstd).collect();
            for (i, gxi) in gx[range.clone()].iter_mut().enumerate() {
                *gxi = gy[range.clone()]
                    .iter()
                    .enumerate()
                    .map(|(j, g)| {
                        let delta = if i == j { 1.0 } else { 0.0 };
                        g * rstd * (delta - 1.0 / n - xhat[i] * xhat[j] / n)
                    })
                    .sum();
            }
        }
        gx
    }
}
