//! Ops: each is `shaders/<op>.wgsl` + `src/ops/<op>.rs` with a graph builder, the GPU recording,
//! the backward rule and an f64 CPU reference (`cpu` submodule) that the tests compare against.

pub mod add;
pub mod aggregate;
pub mod axis_max;
pub mod batch_norm;
pub mod bmm;
pub mod channel_affine;
pub mod class_mean_mse;
pub mod class_memory;
pub mod col_norm;
pub mod concat;
pub mod conv1x1;
pub mod cross_entropy;
pub mod dropout;
pub mod edge_feature;
pub mod gemm;
pub mod group_norm;
pub mod knn;
pub mod l2_norm;
pub mod l2_normalize;
pub mod layer_norm;
pub mod leaky_relu;
pub mod linear;
mod lines;
pub mod matmul;
pub mod mul;
mod output_grad;
pub mod pair_stats;
pub mod permute;
pub mod persistence;
pub mod plane_conv;
pub mod plane_pool;
pub mod reduce;
pub mod refine;
pub mod relu;
pub mod reparameterize;
pub mod reshape;
pub mod sf_loss;
pub mod sgd;
pub mod sigmoid;
pub mod softmax;
pub mod structure_elements;
pub mod tanh;
pub mod tanh_diff;
pub mod temporal_conv;
pub mod temporal_max_pool;
pub mod temporal_subsample;
pub mod weighted_sum;

use bytemuck::NoUninit;

use crate::engine::{Arg, Recorder, TensorId};
use crate::gpu::{Kernel, MAX_WORKGROUPS_PER_DIM, grid_1d};

/// Invocations per workgroup of the elementwise kernels.
const ELEMENTWISE_WG: usize = 256;

/// Grid for one invocation per element.
pub(crate) fn elementwise_grid(n: usize) -> [u32; 3] {
    grid_1d(n.div_ceil(ELEMENTWISE_WG) as u32)
}

/// `kernel`, an entry built on `shaders/lib/elementwise.wgsl`, with the adapter's span of
/// elements per invocation, and the workgroups that cover `n` elements with it.
fn spanned(rec: &Recorder<'_>, kernel: Kernel, n: usize) -> (Kernel, usize) {
    let span = rec.tuning().elementwise_span;
    let workgroups = n.div_ceil(ELEMENTWISE_WG * span as usize);
    (kernel.with("SPAN", span), workgroups)
}

/// Records `kernel`, an entry over `rows` rows of `row_len` elements built on
/// `shaders/lib/elementwise.wgsl` (`grid_row`, `row_element`): grid x covers a row, rows run
/// along y and fold into z beyond the per-dimension limit.
pub(crate) fn dispatch_rows(
    rec: &mut Recorder<'_>,
    kernel: Kernel,
    params: &impl NoUninit,
    args: Vec<Arg>,
    (rows, row_len): (usize, usize),
) {
    let (kernel, tiles) = spanned(rec, kernel, row_len);
    assert!(
        tiles <= MAX_WORKGROUPS_PER_DIM as usize,
        "{}: a row of {row_len} elements needs more than {MAX_WORKGROUPS_PER_DIM} workgroups",
        kernel.entry
    );
    let along_y = rows.clamp(1, MAX_WORKGROUPS_PER_DIM as usize);
    let grid = [tiles as u32, along_y as u32, rows.div_ceil(along_y) as u32];
    rec.dispatch(kernel, params, args, grid);
}

/// Records `kernel`, an entry over `n` elements built on `shaders/lib/elementwise.wgsl`.
pub(crate) fn dispatch_elementwise(
    rec: &mut Recorder<'_>,
    kernel: Kernel,
    params: &impl NoUninit,
    args: Vec<Arg>,
    n: usize,
) {
    let (kernel, workgroups) = spanned(rec, kernel, n);
    rec.dispatch(kernel, params, args, grid_1d(workgroups as u32));
}

pub(crate) fn arg(t: TensorId) -> Arg {
    Arg::Tensor(t)
}

/// Uniform block of kernels that only need an element count.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct CountParams {
    pub n: u32,
}
