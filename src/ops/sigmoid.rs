//! Logistic sigmoid σ(x) = 1/(1 + e^−x), stable for any |x|. The backward reads the forward
//! output: σ' = σ·(1 − σ), so no input needs to be kept.

use super::{CountParams, arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct Sigmoid;

#[derive(Debug)]
struct SigmoidGrad;

/// `σ(x)` elementwise.
pub fn sigmoid(g: &mut Graph, x: TensorId) -> TensorId {
    let y = g.activation_like("sigmoid", x);
    g.push(Sigmoid, &[x], &[y]);
    y
}

impl Op for Sigmoid {
    fn name(&self) -> &'static str {
        "sigmoid"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        rec.dispatch(
            Kernel::new(shader!("sigmoid"), "sigmoid_forward"),
            &CountParams { n: n as u32 },
            vec![arg(inputs[0]), arg(outputs[0])],
            elementwise_grid(n),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("sigmoid has one output");
        let gx = g.activation_like("sigmoid_grad", gy);
        g.push(SigmoidGrad, &[ctx.outputs[0], gy], &[gx]);
        Ok(vec![Some(gx)])
    }
}

impl Op for SigmoidGrad {
    fn name(&self) -> &'static str {
        "sigmoid_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        rec.dispatch(
            Kernel::new(shader!("sigmoid"), "sigmoid_backward"),
            &CountParams { n: n as u32 },
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(n),
        );
    }
}

pub mod cpu {
    //! f64 references, elementwise.

    fn sigma(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// σ(x) = 1/(1 + e^−x).
    pub fn sigmoid(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| sigma(v)).collect()
    }

    /// Gradient of `sigmoid` at `x`: gy·σ(x)·(1 − σ(x)), written as gy·σ(x)·σ(−x) so that it
    /// keeps its relative precision at large |x|.
    pub fn sigmoid_grad(x: &[f64], gy: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(gy)
            .map(|(&x, &g)| g * sigma(x) * sigma(-x))
            .collect()
    }
}
