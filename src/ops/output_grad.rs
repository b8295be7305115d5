//! Elementwise functions whose derivative is a function of their output (sigmoid, tanh): the
//! forward writes y = f(x), the backward reads y and the incoming gradient, so no input needs to
//! be kept. Each function is a shader with a forward and a backward entry.

use super::{CountParams, arg, dispatch_elementwise};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, Shader};

/// One such function: its names in the graph and its shader's entry points.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputGrad {
    pub op: &'static str,
    pub grad_op: &'static str,
    pub shader: Shader,
    pub forward: &'static str,
    pub backward: &'static str,
}

#[derive(Debug)]
struct Forward(OutputGrad);

#[derive(Debug)]
struct Backward(OutputGrad);

/// `f(x)` elementwise.
pub(crate) fn apply(g: &mut Graph, x: TensorId, f: OutputGrad) -> TensorId {
    let y = g.activation_like(f.op, x);
    g.push(Forward(f), &[x], &[y]);
    y
}

fn record(rec: &mut Recorder<'_>, shader: Shader, entry: &'static str, args: Vec<TensorId>) {
    let out = *args.last().expect("an output");
    let n = rec.numel(out);
    dispatch_elementwise(
        rec,
        Kernel::new(shader, entry),
        &CountParams { n: n as u32 },
        args.into_iter().map(arg).collect(),
        n,
    );
}

impl Op for Forward {
    fn name(&self) -> &'static str {
        self.0.op
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record(
            rec,
            self.0.shader,
            self.0.forward,
            vec![inputs[0], outputs[0]],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("one output");
        let gx = g.activation_like(self.0.grad_op, gy);
        g.push(Backward(self.0), &[ctx.outputs[0], gy], &[gx]);
        Ok(vec![Some(gx)])
    }
}

impl Op for Backward {
    fn name(&self) -> &'static str {
        self.0.grad_op
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let args = vec![inputs[0], inputs[1], outputs[0]];
        record(rec, self.0.shader, self.0.backward, args);
    }
}
