//! Elementwise sum of two tensors of the same shape. Its backward passes the incoming gradient
//! to both inputs unchanged (the same tensor, no copy); autodiff uses it to sum fan-in.

use super::{CountParams, arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct Add;

/// `a + b`.
pub fn add(g: &mut Graph, a: TensorId, b: TensorId) -> TensorId {
    let shape = g.shape(a).to_vec();
    assert_eq!(shape, g.shape(b), "add needs equal shapes");
    let out = g.activation("add", &shape);
    g.push(Add, &[a, b], &[out]);
    out
}

impl Op for Add {
    fn name(&self) -> &'static str {
        "add"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        rec.dispatch(
            Kernel::new(shader!("add"), "add"),
            &CountParams { n: n as u32 },
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(n),
        );
    }

    fn backward(
        &self,
        _: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        Ok(vec![ctx.grads[0], ctx.grads[0]])
    }
}

pub mod cpu {
    pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }
}
