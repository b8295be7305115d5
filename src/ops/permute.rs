//! A copying axis permutation with reinterpreting views on both sides: the input is seen as
//! `view`, its axes are reordered by `perm` (output axis k is view axis `perm[k]`, as in
//! `torch.permute`), and the contiguous result is seen as `out_shape`. The graph has no aliasing
//! views, so the copy is where a PyTorch `view`/`permute` chain becomes explicit. The backward is
//! the inverse permutation of the gradient, viewed back as the input's shape.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Most axes a view may have.
pub const MAX_RANK: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    rank: u32,
    _pad: [u32; 2],
    dims: [u32; MAX_RANK],
    strides: [u32; MAX_RANK],
}

#[derive(Debug)]
struct Permute {
    view: Vec<usize>,
    perm: Vec<usize>,
}

/// The sizes of the permuted view: `view[perm[k]]` for each k.
pub fn permuted(view: &[usize], perm: &[usize]) -> Vec<usize> {
    perm.iter().map(|&a| view[a]).collect()
}

/// The output axes of `view` permuted by `perm`, as (size, input stride), with size-1 axes
/// dropped and neighbours that are neighbours in the input too merged into one; at least one.
fn output_axes(view: &[usize], perm: &[usize]) -> Vec<(usize, usize)> {
    let mut axes: Vec<(usize, usize)> = Vec::new();
    for &axis in perm {
        let (dim, stride) = (view[axis], view[axis + 1..].iter().product::<usize>());
        match axes.last_mut() {
            _ if dim == 1 => {}
            Some(last) if last.1 == stride * dim => *last = (last.0 * dim, stride),
            _ => axes.push((dim, stride)),
        }
    }
    if axes.is_empty() {
        axes.push((1, 1));
    }
    axes
}

/// `x` viewed as `view`, permuted by `perm`, the result viewed as `out_shape`.
pub fn permute(
    g: &mut Graph,
    x: TensorId,
    view: &[usize],
    perm: &[usize],
    out_shape: &[usize],
) -> TensorId {
    let n = g.numel(x);
    assert_eq!(
        view.iter().product::<usize>(),
        n,
        "view {view:?} does not hold the {n} values of {:?}",
        g.shape(x)
    );
    assert_eq!(
        out_shape.iter().product::<usize>(),
        n,
        "output shape {out_shape:?} does not hold {n} values"
    );
    assert!(
        view.len() <= MAX_RANK,
        "permute handles up to {MAX_RANK} axes"
    );
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    assert!(
        sorted.iter().copied().eq(0..view.len()),
        "{perm:?} is not a permutation of the {} axes of {view:?}",
        view.len()
    );
    let y = g.activation("permute", out_shape);
    g.push(
        Permute {
            view: view.to_vec(),
            perm: perm.to_vec(),
        },
        &[x],
        &[y],
    );
    y
}

impl Op for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let axes = output_axes(&self.view, &self.perm);
        let rank = axes.len();
        let mut params = Params {
            total: rec.numel(outputs[0]) as u32,
            rank: rank as u32,
            _pad: [0; 2],
            dims: [1; MAX_RANK],
            strides: [0; MAX_RANK],
        };
        for (k, &(dim, stride)) in axes.iter().enumerate() {
            params.dims[MAX_RANK - rank + k] = dim as u32;
            params.strides[MAX_RANK - rank + k] = stride as u32;
        }
        let rows = rec.tuning().row_invocations;
        let per_invocation = if rows { axes[rank - 1].0 } else { 1 };
        rec.dispatch(
            Kernel::new(shader!("permute"), "permute").with("ROWS", rows),
            &params,
            vec![arg(inputs[0]), arg(outputs[0])],
            elementwise_grid(params.total as usize / per_invocation),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("permute has one output");
        let mut inverse = vec![0; self.perm.len()];
        for (k, &axis) in self.perm.iter().enumerate() {
            inverse[axis] = k;
        }
        let shape = g.shape(ctx.inputs[0]).to_vec();
        let view = permuted(&self.view, &self.perm);
        Ok(vec![Some(permute(g, gy, &view, &inverse, &shape))])
    }
}

pub mod cpu {
    /// `x` seen as `view`, permuted by `perm`, flattened.
    pub fn permute(x: &[f64], view: &[usize], perm: &[usize]) -> Vec<f64> {
        let out_dims = super::permuted(view, perm);
        let strides: Vec<usize> = (0..view.len())
            .map(|a| view[a + 1..].iter().product())
            .collect();
        (0..x.len())
            .map(|e| {
                let mut rest = e;
                let mut offset = 0;
                for k in (0..out_dims.len()).rev() {
                    offset += (rest % out_dims[k]) * strides[perm[k]];
                    rest /= out_dims[k];
                }
                x[offset]
            })
            .collect()
    }
}
