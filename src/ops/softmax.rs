//! Softmax along one axis of any tensor, max-subtracted so that no exponential overflows. The
//! backward reads the forward output: g_x = y ⊙ (g − Σ_axis y ⊙ g). One invocation handles a whole
//! line with serial loops, which suits the short lines it serves (SF-Head's 4 fusion weights,
//! attention over at most a few dozen positions).

use super::lines::record_lines;
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct Softmax {
    axis: usize,
}

#[derive(Debug)]
struct SoftmaxGrad {
    axis: usize,
}

/// `exp(x) / Σ_axis exp(x)` along `axis` of `x`.
pub fn softmax(g: &mut Graph, x: TensorId, axis: usize) -> TensorId {
    let shape = g.shape(x);
    assert!(
        axis < shape.len(),
        "softmax axis {axis} out of range for shape {shape:?}"
    );
    let y = g.activation_like("softmax", x);
    g.push(Softmax { axis }, &[x], &[y]);
    y
}

impl Op for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_lines(
            rec,
            Kernel::new(shader!("softmax"), "softmax_forward"),
            self.axis,
            inputs,
            outputs[0],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("softmax has one output");
        let gx = g.activation_like("softmax_grad", gy);
        g.push(
            SoftmaxGrad { axis: self.axis },
            &[ctx.outputs[0], gy],
            &[gx],
        );
        Ok(vec![Some(gx)])
    }
}

impl Op for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_lines(
            rec,
            Kernel::new(shader!("softmax"), "softmax_backward"),
            self.axis,
            inputs,
            outputs[0],
        );
    }
}

pub mod cpu {
    //! f64 references on a contiguous tensor of `shape`, along `axis`.

    use crate::ops::lines::lines;

    /// exp(x_i)/Σ_j exp(x_j) over each line.
    pub fn softmax(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        for line in lines(shape, axis) {
            let total: f64 = line.iter().map(|&i| x[i].exp()).sum();
            for &i in &line {
                y[i] = x[i].exp() / total;
            }
        }
        y
    }

    /// Gradient of `softmax` at `x` through its Jacobian ∂y_j/∂x_i = y_j·(δ_ij − y_i).
    pub fn softmax_grad(x: &[f64], gy: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
        let y = softmax(x, shape, axis);
        let mut gx = vec![0.0; x.len()];
        for line in lines(shape, axis) {
            for &i in &line {
                gx[i] = line
                    .iter()
                    .map(|&j| {
                        let delta = if i == j { 1.0 } else { 0.0 };
                        gy[j] * y[j] * (delta - y[i])
                    })
                    .sum();
            }
        }
        gx
    }
}
