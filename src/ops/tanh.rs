//! Hyperbolic tangent, elementwise (the bounded Gram similarity of MS-AAGCN). The backward reads
//! the forward output: tanh' = 1 − y², so no input needs to be kept.

use super::{CountParams, arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct Tanh;

#[derive(Debug)]
struct TanhGrad;

/// `tanh(x)` elementwise.
pub fn tanh(g: &mut Graph, x: TensorId) -> TensorId {
    let y = g.activation_like("tanh", x);
    g.push(Tanh, &[x], &[y]);
    y
}

impl Op for Tanh {
    fn name(&self) -> &'static str {
        "tanh"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        rec.dispatch(
            Kernel::new(shader!("tanh"), "tanh_forward"),
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
        let gy = ctx.grads[0].expect("tanh has one output");
        let gx = g.activation_like("tanh_grad", gy);
        g.push(TanhGrad, &[ctx.outputs[0], gy], &[gx]);
        Ok(vec![Some(gx)])
    }
}

impl Op for TanhGrad {
    fn name(&self) -> &'static str {
        "tanh_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        rec.dispatch(
            Kernel::new(shader!("tanh"), "tanh_backward"),
            &CountParams { n: n as u32 },
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(n),
        );
    }
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
