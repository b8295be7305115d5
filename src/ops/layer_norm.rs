//! LayerNorm over the last axis, PyTorch's `nn.LayerNorm(C)` as InfoGCN's SA-GC applies it to
//! (N, T, V, C) features: each row of C values becomes y = (x − μ)/√(σ² + EPS)·w + b with the
//! biased variance σ². One invocation handles a whole row with serial loops (C is 64–256 and
//! rows number up to N·T·V). `shaders/layer_norm.wgsl` explains how the centring keeps a large
//! common offset from cancelling.
//!
//! The forward saves two values per row (the row's mean relative to its first element, and
//! 1/√(σ² + EPS)), 2/C of the activation: with them the weight gradient's terms g ⊙ x̂ are an
//! elementwise kernel, where recomputing the statistics would need a per-row pass for them too.
//! The backward: g_x = rstd·(u − mean(u) − x̂·mean(u ⊙ x̂)) with u = g ⊙ w, g_w = Σ_rows g ⊙ x̂ and
//! g_b = Σ_rows g, the two sums by `reduce::sum` (fixed-order trees, deterministic).

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid, reduce};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// PyTorch's default eps, added to the variance.
pub const EPS: f32 = 1e-5;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    total: u32,
    eps: f32,
}

impl Params {
    fn new(shape: &[usize]) -> Self {
        let channels = *shape.last().expect("layer_norm checked the rank");
        let total: usize = shape.iter().product();
        Self {
            rows: (total / channels) as u32,
            channels: channels as u32,
            total: total as u32,
            eps: EPS,
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("layer_norm"), entry)
}

#[derive(Debug)]
struct LayerNorm;

#[derive(Debug)]
struct LayerNormGradInput;

#[derive(Debug)]
struct LayerNormGradTerms;

/// `x` (..., C) normalised over its last axis with the biased variance and [`EPS`], then scaled
/// by `weight` and shifted by `bias`, both of shape (C).
pub fn layer_norm(g: &mut Graph, x: TensorId, weight: TensorId, bias: TensorId) -> TensorId {
    let shape = g.shape(x).to_vec();
    assert!(
        shape.len() >= 2 && shape.iter().all(|&d| d > 0),
        "layer_norm needs a non-empty (..., C) tensor with at least one leading axis, got {shape:?}"
    );
    assert!(
        u32::try_from(g.numel(x)).is_ok(),
        "layer_norm: shape {shape:?} has too many elements for u32 indices"
    );
    let c = shape[shape.len() - 1];
    assert_eq!(g.shape(weight), [c], "layer_norm weight must be ({c})");
    assert_eq!(g.shape(bias), [c], "layer_norm bias must be ({c})");
    let rows = &shape[..shape.len() - 1];
    let y = g.activation("layer_norm", &shape);
    let shift_mean = g.activation("layer_norm.shift_mean", rows);
    let rstd = g.activation("layer_norm.rstd", rows);
    g.push(LayerNorm, &[x, weight, bias], &[y, shift_mean, rstd]);
    y
}

/// Records `entry` over `inputs` → `output`, one invocation per row of the (..., C) tensor `x`,
/// or per element when `per_element`.
fn record_kernel(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    per_element: bool,
    inputs: &[TensorId],
    outputs: &[TensorId],
) {
    let params = Params::new(rec.shape(inputs[0]));
    let count = if per_element {
        params.total
    } else {
        params.rows
    };
    let args = inputs.iter().chain(outputs).copied().map(arg).collect();
    rec.dispatch(
        kernel(entry),
        &params,
        args,
        elementwise_grid(count as usize),
    );
}

impl Op for LayerNorm {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_kernel(rec, "ln_forward", false, inputs, outputs);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("layer norm statistics are not differentiated");
        let [x, w, _] = ctx.inputs.try_into().expect("3 inputs");
        let (shift_mean, rstd) = (ctx.outputs[1], ctx.outputs[2]);
        let rows: Vec<usize> = (0..g.shape(x).len() - 1).collect();
        let gx = ctx.needs[0].then(|| {
            let gx = g.activation_like("layer_norm_grad", x);
            g.push(LayerNormGradInput, &[x, w, gy, shift_mean, rstd], &[gx]);
            gx
        });
        let gw = ctx.needs[1].then(|| {
            let terms = g.activation_like("layer_norm_grad_terms", x);
            g.push(LayerNormGradTerms, &[x, gy, shift_mean, rstd], &[terms]);
            reduce::sum(g, terms, &rows)
        });
        let gb = ctx.needs[2].then(|| reduce::sum(g, gy, &rows));
        Ok(vec![gx, gw, gb])
    }
}

impl Op for LayerNormGradInput {
    fn name(&self) -> &'static str {
        "layer_norm_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_kernel(rec, "ln_grad_input", false, inputs, outputs);
    }
}

impl Op for LayerNormGradTerms {
    fn name(&self) -> &'static str {
        "layer_norm_grad_terms"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_kernel(rec, "ln_grad_terms", true, inputs, outputs);
    }
}

pub mod cpu {
    //! f64 references on rows of `c` consecutive elements.

    use super::EPS;

    /// Per-row mean and 1/√(biased variance + EPS).
    pub fn stats(x: &[f64], c: usize) -> Vec<(f64, f64)> {
        let n = c as f64;
        x.chunks(c)
            .map(|row| {
                let mean = row.iter().sum::<f64>() / n;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                (mean, 1.0 / (var + f64::from(EPS)).sqrt())
            })
            .collect()
    }

    /// (x − mean)·rstd·w + b per row.
    pub fn forward(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let c = w.len();
        let stats = stats(x, c);
        x.iter()
            .enumerate()
            .map(|(i, v)| {
                let (mean, rstd) = stats[i / c];
                (v - mean) * rstd * w[i % c] + b[i % c]
            })
            .collect()
    }

    /// Gradients (x, w, b) of `forward` for the output gradient `gy`, the input's through the
    /// Jacobian of each row: ∂y_j/∂x_i = w_j·rstd·(δ_ij − 1/n − x̂_i·x̂_j/n).
    pub fn backward(x: &[f64], w: &[f64], gy: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let c = w.len();
        let n = c as f64;
        let mut gx = vec![0.0; x.len()];
        let mut gw = vec![0.0; c];
        let mut gb = vec![0.0; c];
        for (r, (mean, rstd)) in stats(x, c).into_iter().enumerate() {
            let range = r * c..(r + 1) * c;
            let xhat: Vec<f64> = x[range.clone()].iter().map(|v| (v - mean) * rstd).collect();
            let g = &gy[range.clone()];
            for (i, gxi) in gx[range].iter_mut().enumerate() {
                *gxi = (0..c)
                    .map(|j| {
                        let delta = if i == j { 1.0 } else { 0.0 };
                        g[j] * w[j] * rstd * (delta - 1.0 / n - xhat[i] * xhat[j] / n)
                    })
                    .sum();
                gw[i] += g[i] * xhat[i];
                gb[i] += g[i];
            }
        }
        (gx, gw, gb)
    }
}
