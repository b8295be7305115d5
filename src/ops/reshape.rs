//! Reshape: the same contiguous memory under another shape. It is a view, so it costs no
//! dispatch and no memory: the planner gives the output its input's buffer.

use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

#[derive(Debug)]
struct Reshape;

/// `x` with shape `shape` (same number of elements).
pub fn reshape(g: &mut Graph, x: TensorId, shape: &[usize]) -> TensorId {
    assert_eq!(
        g.numel(x),
        shape.iter().product::<usize>(),
        "cannot reshape {:?} to {shape:?}",
        g.shape(x)
    );
    let y = g.activation("reshape", shape);
    g.push(Reshape, &[x], &[y]);
    y
}

impl Op for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }

    fn view_of(&self) -> Option<usize> {
        Some(0)
    }

    fn record(&self, _: &mut Recorder<'_>, _: &[TensorId], _: &[TensorId]) {}

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("reshape has one output");
        let shape = g.shape(ctx.inputs[0]).to_vec();
        Ok(vec![Some(reshape(g, gy, &shape))])
    }
}
