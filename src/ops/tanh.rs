//! Hyperbolic tangent, elementwise (the bounded Gram similarity of MS-AAGCN). The backward reads
//! the forward output: tanh' = 1 − y², so no input needs to be kept.

use super::output_grad::{OutputGrad, apply};
use crate::engine::{Graph, TensorId};
use crate::shader;

/// `tanh(x)` elementwise.
pub fn tanh(g: &mut Graph, x: TensorId) -> TensorId {
    let f = OutputGrad {
        op: "tanh",
        grad_op: "tanh_grad",
        shader: shader!("tanh"),
        forward: "tanh_forward",
        backward: "tanh_backward",
    };
    apply(g, x, f)
}

pub mod cpu {
    //! f64 references, elementwise.

    /// tanh(x).
    pub fn tanh(x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v.tanh()).collect()
    }

    /// Gradient of `tanh` at `x`: gy / cosh²(x).
    pub fn tanh_grad(x: &[f64], gy: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(gy)
            .map(|(&x, &g)| g / (x.cosh() * x.cosh()))
            .collect()
    }
}
