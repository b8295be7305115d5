//! Elementwise product of two tensors of the same shape (gating, weighted losses).

use super::{CountParams, arg, dispatch_elementwise};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct Mul;

/// `a ⊙ b`.
pub fn mul(g: &mut Graph, a: TensorId, b: TensorId) -> TensorId {
    let shape = g.shape(a).to_vec();
    assert_eq!(shape, g.shape(b), "mul needs equal shapes");
    let out = g.activation("mul", &shape);
    g.push(Mul, &[a, b], &[out]);
    out
}

/// `x · s` for a constant `s` (loss weights, averages over heads).
pub fn scale(g: &mut Graph, x: TensorId, s: f32) -> TensorId {
    let shape = g.shape(x).to_vec();
    let c = g.constant("scale", &shape, vec![s; g.numel(x)]);
    mul(g, x, c)
}

impl Op for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        dispatch_elementwise(
            rec,
            Kernel::new(shader!("mul"), "mul"),
            &CountParams { n: n as u32 },
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            n,
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("mul has one output");
        let (a, b) = (ctx.inputs[0], ctx.inputs[1]);
        Ok(vec![
            ctx.needs[0].then(|| mul(g, gy, b)),
            ctx.needs[1].then(|| mul(g, gy, a)),
        ])
    }
}

pub mod cpu {
    pub fn mul(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x * y).collect()
    }
}
