//! Kernels that give one invocation a whole line along one axis of any tensor (`softmax`,
//! `max_axis`): the (outer, n, inner) view they share, their recording and, for the references,
//! the lines' flat indices.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{Recorder, TensorId};
use crate::gpu::Kernel;

/// The uniform of a line kernel: `lines` = outer·inner lines of `n` elements `inner` apart.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    lines: u32,
    n: u32,
    inner: u32,
    _pad: u32,
}

impl Params {
    /// The (outer, n, inner) view of `shape` around `axis`.
    fn new(shape: &[usize], axis: usize) -> Self {
        let n = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        Self {
            lines: (shape.iter().product::<usize>() / n) as u32,
            n: n as u32,
            inner: inner as u32,
            _pad: 0,
        }
    }
}

/// One dispatch of `kernel` over the lines along `axis` of the first input, its buffers the
/// inputs then `output`, one invocation per line.
pub(crate) fn record_lines(
    rec: &mut Recorder<'_>,
    kernel: Kernel,
    axis: usize,
    inputs: &[TensorId],
    output: TensorId,
) {
    let params = Params::new(rec.shape(inputs[0]), axis);
    let args = inputs.iter().chain([&output]).copied().map(arg).collect();
    rec.dispatch(
        kernel,
        &params,
        args,
        elementwise_grid(params.lines as usize),
    );
}

/// The flat indices of every line along `axis` of a contiguous tensor of `shape`, in the order
/// of the reduced tensor's elements.
pub(crate) fn lines(shape: &[usize], axis: usize) -> Vec<Vec<usize>> {
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    (0..outer * inner)
        .map(|l| {
            let start = (l / inner) * n * inner + l % inner;
            (0..n).map(|j| start + j * inner).collect()
        })
        .collect()
}
