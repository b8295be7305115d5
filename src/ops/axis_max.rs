//! The maximum over one axis of any tensor, that axis removed: PyTorch's `x.max(dim=axis)[0]`.
//! The whole incoming gradient of a line goes to its first maximal element (PyTorch's CPU index
//! on ties), zero to the others. The backward recomputes the argmax from the input rather than
//! saving an index tensor; one invocation handles a whole line, which suits the lines HD-GCN
//! reduces (T frames, k neighbours).

use super::lines::record_lines;
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct AxisMax {
    axis: usize,
}

#[derive(Debug)]
struct AxisMaxGrad {
    axis: usize,
}

/// The maximum of `x` along `axis`; the output has the shape of `x` without that axis.
pub fn max_axis(g: &mut Graph, x: TensorId, axis: usize) -> TensorId {
    let mut shape = g.shape(x).to_vec();
    assert!(
        axis < shape.len(),
        "max_axis: axis {axis} out of range for shape {shape:?}"
    );
    shape.remove(axis);
    let y = g.activation("max_axis", &shape);
    g.push(AxisMax { axis }, &[x], &[y]);
    y
}

impl Op for AxisMax {
    fn name(&self) -> &'static str {
        "max_axis"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_lines(
            rec,
            Kernel::new(shader!("axis_max"), "max_forward"),
            self.axis,
            inputs,
            outputs[0],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("max_axis has one output");
        let x = ctx.inputs[0];
        let gx = g.activation_like("max_axis_grad", x);
        g.push(AxisMaxGrad { axis: self.axis }, &[x, gy], &[gx]);
        Ok(vec![Some(gx)])
    }
}

impl Op for AxisMaxGrad {
    fn name(&self) -> &'static str {
        "max_axis_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_lines(
            rec,
            Kernel::new(shader!("axis_max"), "max_backward"),
            self.axis,
            inputs,
            outputs[0],
        );
    }
}

pub mod cpu {
    //! f64 references on a contiguous tensor of `shape`, along `axis`; lines are numbered as the
    //! output's elements.

    use crate::ops::lines::lines;

    /// The first index of the largest value among `line`'s elements of `x`.
    fn first_argmax(x: &[f64], line: &[usize]) -> usize {
        let max = line.iter().map(|&i| x[i]).fold(f64::NEG_INFINITY, f64::max);
        *line
            .iter()
            .find(|&&i| x[i] == max)
            .expect("lines are not empty")
    }

    pub fn max_axis(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
        lines(shape, axis)
            .iter()
            .map(|line| x[first_argmax(x, line)])
            .collect()
    }

    /// Gradient of `max_axis` at `x`: each output's gradient to its line's first maximum.
    pub fn max_axis_grad(x: &[f64], gy: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
        let mut gx = vec![0.0; x.len()];
        for (line, g) in lines(shape, axis).iter().zip(gy) {
            gx[first_argmax(x, line)] += g;
        }
        gx
    }
}
