//! Elementwise sums of tensors of the same shape. The backward passes the incoming gradient to
//! every input unchanged (the same tensor, no copy); autodiff uses [`sum_of`] to sum fan-in.
//! [`add_relu`] is ReLU(a + b), a residual's end, in one pass.

use super::{CountParams, arg, dispatch_elementwise};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Terms one `add_many` dispatch reads: with its output, the eight storage buffers every
/// adapter binds.
const SUM_CHUNK: usize = 7;

#[derive(Debug)]
struct Add {
    /// ReLU of the sum.
    relu: bool,
}

/// Two or more terms, summed left to right.
#[derive(Debug)]
struct Sum;

/// `a + b`.
pub fn add(g: &mut Graph, a: TensorId, b: TensorId) -> TensorId {
    push_add(g, Add { relu: false }, a, b)
}

/// `max(a + b, 0)`, with the values of [`relu`](super::relu::relu) of [`add`] and one dispatch
/// fewer.
pub fn add_relu(g: &mut Graph, a: TensorId, b: TensorId) -> TensorId {
    push_add(g, Add { relu: true }, a, b)
}

fn push_add(g: &mut Graph, op: Add, a: TensorId, b: TensorId) -> TensorId {
    let shape = g.shape(a).to_vec();
    assert_eq!(shape, g.shape(b), "add needs equal shapes");
    let out = g.activation(op.name(), &shape);
    g.push(op, &[a, b], &[out]);
    out
}

/// `((t0 + t1) + t2) + …`, with the bits of a chain of [`add`]s, in ⌈(n − 1)/7⌉ dispatches
/// instead of n − 1; a single term is returned as it is.
pub fn sum_of(g: &mut Graph, terms: &[TensorId]) -> TensorId {
    match terms {
        [] => panic!("a sum needs a term"),
        [t] => *t,
        [a, b] => add(g, *a, *b),
        _ => {
            let shape = g.shape(terms[0]).to_vec();
            for &t in terms {
                assert_eq!(shape, g.shape(t), "a sum needs equal shapes");
            }
            let out = g.activation("sum", &shape);
            g.push(Sum, terms, &[out]);
            out
        }
    }
}

impl Op for Add {
    fn name(&self) -> &'static str {
        if self.relu { "add_relu" } else { "add" }
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        dispatch_elementwise(
            rec,
            Kernel::new(shader!("add"), "add").with("RELU", self.relu),
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
        let gy = ctx.grads[0].expect("add has one output");
        let gx = match self.relu {
            true => super::relu::relu_grad(g, ctx.outputs[0], gy),
            false => gy,
        };
        Ok(vec![Some(gx), Some(gx)])
    }
}

impl Op for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        for (k, chunk) in inputs.chunks(SUM_CHUNK).enumerate() {
            let kernel = Kernel::new(shader!("add"), "add_many")
                .with("TERMS", chunk.len() as u32)
                .with("ACCUMULATE", k > 0);
            let mut args: Vec<_> = chunk.iter().copied().map(arg).collect();
            args.resize(SUM_CHUNK, arg(chunk[0]));
            args.push(arg(outputs[0]));
            dispatch_elementwise(rec, kernel, &CountParams { n: n as u32 }, args, n);
        }
    }

    fn backward(
        &self,
        _: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        Ok(vec![ctx.grads[0]; ctx.inputs.len()])
    }
}

pub mod cpu {
    pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }
}
