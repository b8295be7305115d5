//! ReLU. The backward reads the forward output (positive where the gradient passes), so no mask
//! is stored.

use super::{CountParams, arg, dispatch_elementwise};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct Relu;

#[derive(Debug)]
struct ReluGrad;

/// `max(x, 0)`.
pub fn relu(g: &mut Graph, x: TensorId) -> TensorId {
    let y = g.activation_like("relu", x);
    g.push(Relu, &[x], &[y]);
    y
}

impl Op for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        dispatch_elementwise(
            rec,
            Kernel::new(shader!("relu"), "relu_forward"),
            &CountParams { n: n as u32 },
            vec![arg(inputs[0]), arg(outputs[0])],
            n,
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("relu has one output");
        Ok(vec![Some(relu_grad(g, ctx.outputs[0], gy))])
    }
}

/// The gradient `gy` passed where the ReLU output `y` is positive.
pub(crate) fn relu_grad(g: &mut Graph, y: TensorId, gy: TensorId) -> TensorId {
    let gx = g.activation_like("relu_grad", gy);
    g.push(ReluGrad, &[y, gy], &[gx]);
    gx
}

/// Records gx = gy where the ReLU output `y` is positive, else 0.
pub(crate) fn record_mask(rec: &mut Recorder<'_>, y: TensorId, gy: TensorId, gx: Arg) {
    let n = rec.numel(y);
    dispatch_elementwise(
        rec,
        Kernel::new(shader!("relu"), "relu_backward"),
        &CountParams { n: n as u32 },
        vec![arg(y), arg(gy), gx],
        n,
    );
}

impl Op for ReluGrad {
    fn name(&self) -> &'static str {
        "relu_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_mask(rec, inputs[0], inputs[1], arg(outputs[0]));
    }
}

pub mod cpu {
    pub fn relu(x: &[f64]) -> Vec<f64> {
        x.iter().map(|v| v.max(0.0)).collect()
    }

    /// Gradient of `relu` given the forward output `y`.
    pub fn relu_grad(y: &[f64], gy: &[f64]) -> Vec<f64> {
        y.iter()
            .zip(gy)
            .map(|(&y, &g)| if y > 0.0 { g } else { 0.0 })
            .collect()
    }
}
