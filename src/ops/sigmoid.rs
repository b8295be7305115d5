//! Logistic sigmoid σ(x) = 1/(1 + e^−x), stable for any |x|. The backward reads the forward
//! output: σ' = σ·(1 − σ), so no input needs to be kept.

use super::output_grad::{OutputGrad, apply};
use super::{CountParams, arg, dispatch_elementwise};
use crate::engine::{Arg, Graph, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// `σ(x)` elementwise.
pub fn sigmoid(g: &mut Graph, x: TensorId) -> TensorId {
    let f = OutputGrad {
        op: "sigmoid",
        grad_op: "sigmoid_grad",
        shader: shader!("sigmoid"),
        forward: "sigmoid_forward",
        backward: "sigmoid_backward",
    };
    apply(g, x, f)
}

/// Records gx = gy·y·(1 − y) into `gx` from the output y of a sigmoid (a fused one included).
pub(crate) fn record_grad(rec: &mut Recorder<'_>, y: TensorId, gy: TensorId, gx: Arg) {
    let n = rec.numel(y);
    dispatch_elementwise(
        rec,
        Kernel::new(shader!("sigmoid"), "sigmoid_backward"),
        &CountParams { n: n as u32 },
        vec![arg(y), arg(gy), gx],
        n,
    );
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
