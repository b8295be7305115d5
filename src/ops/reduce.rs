//! Sums and means over any set of axes, and `expand`, their transpose (broadcast back over the
//! reduced axes). The kernels are the two-pass tree reductions of `shaders/reduce.wgsl`, which
//! also serve batch norm statistics, bias gradients, split-K GEMMs and loss means.

use bytemuck::{Pod, Zeroable};

use super::arg;
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
use crate::shader;

/// Axis groups each index map of the kernel can hold.
const GROUPS: usize = 4;
/// Invocations of a reduction workgroup.
const WORKGROUP: usize = 256;
/// Elements one workgroup sums in the first pass (16 per invocation).
pub(crate) const PER_WORKGROUP: usize = 4096;
/// Most partial sums per output; more elements make each chunk longer instead.
const MAX_CHUNKS: usize = 4096;
/// Up to this many elements per output, and with at least `SERIAL_MIN_OUTPUTS` outputs, one
/// invocation sums each output alone: enough outputs keep the GPU busy, and a workgroup tree
/// per output would leave most of its invocations idle.
const SERIAL_MAX_COUNT: usize = 1024;
const SERIAL_MIN_OUTPUTS: usize = 2048;
/// Split-K partials up to this many per output are summed serially however few the outputs: a
/// tree would keep a workgroup for a handful of values each.
const SHORT_SPLIT_SUM: usize = 128;

/// How a reduction sees a contiguous tensor: kept and reduced axes, adjacent axes of the same
/// kind merged into groups of (size, stride in elements), outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisSplit {
    pub kept: Vec<(usize, usize)>,
    pub reduced: Vec<(usize, usize)>,
}

impl AxisSplit {
    /// Panics on an axis out of range or given twice, or when the axes alternate so often that
    /// either side needs more than four groups.
    pub fn new(shape: &[usize], axes: &[usize]) -> Self {
        for (i, &a) in axes.iter().enumerate() {
            assert!(a < shape.len(), "axis {a} out of range for shape {shape:?}");
            assert!(!axes[..i].contains(&a), "axis {a} given twice");
        }
        let mut kept: Vec<(usize, usize)> = Vec::new();
        let mut reduced: Vec<(usize, usize)> = Vec::new();
        let mut previous: Option<bool> = None;
        for (axis, &dim) in shape.iter().enumerate() {
            let stride: usize = shape[axis + 1..].iter().product();
            let is_reduced = axes.contains(&axis);
            let groups = if is_reduced { &mut reduced } else { &mut kept };
            match (previous == Some(is_reduced), groups.last_mut()) {
                (true, Some(last)) => *last = (last.0 * dim, stride),
                _ => groups.push((dim, stride)),
            }
            previous = Some(is_reduced);
        }
        assert!(
            kept.len() <= GROUPS && reduced.len() <= GROUPS,
            "reducing axes {axes:?} of {shape:?} alternates too often"
        );
        Self { kept, reduced }
    }

    /// Number of results.
    pub fn outputs(&self) -> usize {
        self.kept.iter().map(|g| g.0).product()
    }

    /// Number of elements summed into each result.
    pub fn count(&self) -> usize {
        self.reduced.iter().map(|g| g.0).product()
    }
}

/// Shape of the result of reducing `axes` of `shape` (`[1]` when every axis is reduced).
pub fn kept_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let kept: Vec<usize> = (0..shape.len())
        .filter(|a| !axes.contains(a))
        .map(|a| shape[a])
        .collect();
    if kept.is_empty() { vec![1] } else { kept }
}

/// The groups padded in front with (1, 1) to the kernel's four: sizes and strides.
fn padded(groups: &[(usize, usize)]) -> ([u32; 4], [u32; 4]) {
    let mut dims = [1u32; 4];
    let mut strides = [1u32; 4];
    for (j, &(d, s)) in groups.iter().enumerate() {
        dims[GROUPS - groups.len() + j] = d as u32;
        strides[GROUPS - groups.len() + j] = s as u32;
    }
    (dims, strides)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    outputs: u32,
    count: u32,
    chunks: u32,
    chunk_len: u32,
    scale: f32,
    total: u32,
    row_len: u32,
    row_step: u32,
    kdim: [u32; 4],
    kstride: [u32; 4],
    rdim: [u32; 4],
    rstride: [u32; 4],
    rstep: [u32; 4],
    lstep: [u32; 4],
}

/// `n` as digits over `dims` (the last varying fastest; the first takes what is left).
fn digits(mut n: u32, dims: [u32; 4]) -> [u32; 4] {
    let mut out = [0; 4];
    for j in (1..4).rev() {
        out[j] = n % dims[j];
        n /= dims[j];
    }
    out[0] = n;
    out
}

impl Params {
    fn new(split: &AxisSplit, scale: f32) -> Self {
        let (kdim, kstride) = padded(&split.kept);
        let (rdim, rstride) = padded(&split.reduced);
        let count = split.count();
        let chunks = count.div_ceil(PER_WORKGROUP).clamp(1, MAX_CHUNKS);
        // The innermost axis group (stride 1): a broadcast's rows.
        let kept_inner = split.kept.last().is_some_and(|g| g.1 == 1);
        let inner = if kept_inner {
            split.kept.last()
        } else {
            split.reduced.last()
        };
        Self {
            outputs: split.outputs() as u32,
            count: count as u32,
            chunks: chunks as u32,
            chunk_len: count.div_ceil(chunks) as u32,
            scale,
            total: (split.outputs() * count) as u32,
            row_len: inner.map_or(1, |g| g.0) as u32,
            row_step: u32::from(kept_inner),
            kdim,
            kstride,
            rdim,
            rstride,
            rstep: digits(WORKGROUP as u32, rdim),
            lstep: [0; 4],
        }
    }
}

/// What each element contributes to its sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Summand {
    /// x
    Value,
    /// (x − m[o])², with m one value per output
    CentredSquare,
    /// y·(x − m[o])
    CentredProduct,
    /// x·y
    Product,
}

/// Records `c[o] = Σ_s partial[s·outputs + o]` over the `splits` partial products of a split-K
/// product with `outputs` elements, in order of s. The partials are in scratch slot 0, so a
/// tree's own partials take slot 1.
pub(crate) fn record_split_sum(
    rec: &mut Recorder<'_>,
    outputs: usize,
    splits: usize,
    partial: Arg,
    c: Arg,
) {
    let split = AxisSplit {
        kept: vec![(outputs, 1)],
        reduced: vec![(splits, outputs)],
    };
    if splits <= SHORT_SPLIT_SUM {
        let params = Params::new(&split, 1.0);
        record_serial(
            rec,
            &params,
            Summand::Value,
            [partial.clone(), partial.clone(), partial],
            c,
        );
    } else {
        record_sum(rec, &split, Summand::Value, partial, None, None, 1.0, c, 1);
    }
}

/// One invocation per output sums its elements in order (`reduce_serial`); inputs x, y, m.
fn record_serial(
    rec: &mut Recorder<'_>,
    params: &Params,
    summand: Summand,
    inputs: [Arg; 3],
    dst: Arg,
) {
    let kernel = Kernel::new(shader!("reduce"), "reduce_serial").with("MODE", summand as u32);
    let args = inputs.into_iter().chain([dst]).collect();
    rec.dispatch(
        kernel,
        params,
        args,
        super::elementwise_grid(params.outputs as usize),
    );
}

/// Records `dst[o] = scale · Σ summand` over the reduced elements of output `o`. `y` and `m`
/// are only read by the centred summands. Partial sums live in scratch slot `partial_slot`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_sum(
    rec: &mut Recorder<'_>,
    split: &AxisSplit,
    summand: Summand,
    x: Arg,
    y: Option<Arg>,
    m: Option<Arg>,
    scale: f32,
    dst: Arg,
    partial_slot: usize,
) {
    let tuning = rec.tuning();
    let params = Params::new(split, scale);
    let params = Params {
        lstep: digits(tuning.tree_lanes, params.rdim),
        ..params
    };
    let outputs = params.outputs as usize;
    let chunks = params.chunks as usize;
    if split.count() <= SERIAL_MAX_COUNT && outputs >= SERIAL_MIN_OUTPUTS {
        let inputs = [x.clone(), y.unwrap_or(x.clone()), m.unwrap_or(x)];
        record_serial(rec, &params, summand, inputs, dst);
        return;
    }
    let first_dst = if chunks == 1 {
        dst.clone()
    } else {
        Arg::Scratch {
            slot: partial_slot,
            bytes: (outputs * chunks * 4) as u64,
        }
    };
    rec.dispatch(
        tuning.tree(Kernel::new(shader!("reduce"), "reduce_partial").with("MODE", summand as u32)),
        &params,
        vec![
            x.clone(),
            y.unwrap_or(x.clone()),
            m.unwrap_or(x),
            first_dst.clone(),
        ],
        grid_1d((outputs * chunks) as u32),
    );
    if chunks > 1 {
        rec.dispatch(
            tuning.tree(Kernel::new(shader!("reduce"), "reduce_final")),
            &params,
            vec![first_dst, dst],
            grid_1d(outputs as u32),
        );
    }
}

#[derive(Debug)]
struct Reduce {
    axes: Vec<usize>,
    scale: f32,
}

#[derive(Debug)]
struct Expand {
    shape: Vec<usize>,
    axes: Vec<usize>,
    scale: f32,
}

fn reduce(g: &mut Graph, x: TensorId, axes: &[usize], scale: f32, name: &str) -> TensorId {
    let shape = g.shape(x).to_vec();
    AxisSplit::new(&shape, axes);
    let out = g.activation(name, &kept_shape(&shape, axes));
    g.push(
        Reduce {
            axes: axes.to_vec(),
            scale,
        },
        &[x],
        &[out],
    );
    out
}

/// Sum over `axes`; the result drops them (`[1]` if all are reduced).
pub fn sum(g: &mut Graph, x: TensorId, axes: &[usize]) -> TensorId {
    reduce(g, x, axes, 1.0, "sum")
}

/// Mean over `axes`; the result drops them (`[1]` if all are reduced).
pub fn mean(g: &mut Graph, x: TensorId, axes: &[usize]) -> TensorId {
    let shape = g.shape(x);
    let count: usize = axes.iter().map(|&a| shape[a]).product();
    reduce(g, x, axes, 1.0 / count as f32, "mean")
}

/// `scale · src` broadcast over the `axes` of `shape`; `src` has the shape `kept_shape(shape, axes)`.
pub fn expand(
    g: &mut Graph,
    src: TensorId,
    shape: &[usize],
    axes: &[usize],
    scale: f32,
) -> TensorId {
    assert_eq!(
        g.shape(src),
        kept_shape(shape, axes),
        "expand source does not match the kept axes of {shape:?}"
    );
    AxisSplit::new(shape, axes);
    let out = g.activation("expand", shape);
    g.push(
        Expand {
            shape: shape.to_vec(),
            axes: axes.to_vec(),
            scale,
        },
        &[src],
        &[out],
    );
    out
}

/// `x ⊙ s`, with `s` broadcast over the `axes` of x: `s` has the shape `kept_shape(x, axes)`.
/// The same as `mul(x, expand(s))` bit for bit, without the broadcast tensor; backward, x's
/// gradient is again a broadcast product and s's a sum of products over the axes.
pub fn broadcast_mul(g: &mut Graph, x: TensorId, s: TensorId, axes: &[usize]) -> TensorId {
    let shape = g.shape(x).to_vec();
    assert_eq!(
        g.shape(s),
        kept_shape(&shape, axes),
        "broadcast_mul: the factor does not match the kept axes of {shape:?}"
    );
    AxisSplit::new(&shape, axes);
    let out = g.activation("broadcast_mul", &shape);
    g.push(
        BroadcastMul {
            axes: axes.to_vec(),
        },
        &[s, x],
        &[out],
    );
    out
}

/// A broadcast entry (`expand`, `expand_mul`) and its grid: a row per invocation where the
/// tuning says so, else an element.
fn broadcast_kernel(
    rec: &Recorder<'_>,
    entry: &'static str,
    params: &Params,
) -> (Kernel, [u32; 3]) {
    let rows = rec.tuning().row_invocations;
    let per_invocation = if rows { params.row_len } else { 1 };
    let kernel = Kernel::new(shader!("reduce"), entry).with("ROWS", rows);
    let grid = super::elementwise_grid((params.total / per_invocation) as usize);
    (kernel, grid)
}

#[derive(Debug)]
struct BroadcastMul {
    axes: Vec<usize>,
}

/// Σ over `axes` of x ⊙ y, the gradient of a broadcast factor.
#[derive(Debug)]
struct SumProduct {
    axes: Vec<usize>,
}

impl Op for BroadcastMul {
    fn name(&self) -> &'static str {
        "broadcast_mul"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let split = AxisSplit::new(rec.shape(inputs[1]), &self.axes);
        let params = Params::new(&split, 1.0);
        let (kernel, grid) = broadcast_kernel(rec, "expand_mul", &params);
        let args = vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])];
        rec.dispatch(kernel, &params, args, grid);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("broadcast_mul has one output");
        let (s, x) = (ctx.inputs[0], ctx.inputs[1]);
        let gs = ctx.needs[0].then(|| {
            let shape = g.shape(s).to_vec();
            let out = g.activation("sum_product", &shape);
            let axes = self.axes.clone();
            g.push(SumProduct { axes }, &[gy, x], &[out]);
            out
        });
        let gx = ctx.needs[1].then(|| broadcast_mul(g, gy, s, &self.axes));
        Ok(vec![gs, gx])
    }
}

impl Op for SumProduct {
    fn name(&self) -> &'static str {
        "sum_product"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let split = AxisSplit::new(rec.shape(inputs[0]), &self.axes);
        let (x, y) = (arg(inputs[0]), arg(inputs[1]));
        record_sum(
            rec,
            &split,
            Summand::Product,
            x,
            Some(y),
            None,
            1.0,
            arg(outputs[0]),
            0,
        );
    }
}

impl Op for Reduce {
    fn name(&self) -> &'static str {
        "reduce"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let split = AxisSplit::new(rec.shape(inputs[0]), &self.axes);
        record_sum(
            rec,
            &split,
            Summand::Value,
            arg(inputs[0]),
            None,
            None,
            self.scale,
            arg(outputs[0]),
            0,
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("reduce has one output");
        let shape = g.shape(ctx.inputs[0]).to_vec();
        Ok(vec![Some(expand(g, gy, &shape, &self.axes, self.scale))])
    }
}

impl Op for Expand {
    fn name(&self) -> &'static str {
        "expand"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let split = AxisSplit::new(&self.shape, &self.axes);
        let params = Params::new(&split, self.scale);
        let (kernel, grid) = broadcast_kernel(rec, "expand", &params);
        rec.dispatch(kernel, &params, vec![arg(inputs[0]), arg(outputs[0])], grid);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("expand has one output");
        Ok(vec![Some(reduce(g, gy, &self.axes, self.scale, "sum"))])
    }
}

pub mod cpu {
    /// Index of the result that element `e` of a contiguous `shape` contributes to.
    fn kept_index(shape: &[usize], axes: &[usize], mut e: usize) -> usize {
        let mut coords = vec![0; shape.len()];
        for a in (0..shape.len()).rev() {
            coords[a] = e % shape[a];
            e /= shape[a];
        }
        (0..shape.len())
            .filter(|a| !axes.contains(a))
            .fold(0, |o, a| o * shape[a] + coords[a])
    }

    /// `scale · Σ` over `axes`.
    pub fn sum(x: &[f64], shape: &[usize], axes: &[usize], scale: f64) -> Vec<f64> {
        let outputs: usize = super::kept_shape(shape, axes).iter().product();
        let mut out = vec![0.0; outputs];
        for (e, v) in x.iter().enumerate() {
            out[kept_index(shape, axes, e)] += v;
        }
        out.iter().map(|v| v * scale).collect()
    }

    /// `scale · src` broadcast over `axes` of `shape`.
    pub fn expand(src: &[f64], shape: &[usize], axes: &[usize], scale: f64) -> Vec<f64> {
        let total: usize = shape.iter().product();
        (0..total)
            .map(|e| scale * src[kept_index(shape, axes, e)])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_axes_merge_into_groups() {
        let s = AxisSplit::new(&[4, 3, 5, 7], &[0, 2, 3]);
        assert_eq!(s.kept, vec![(3, 35)]);
        assert_eq!(s.reduced, vec![(4, 105), (35, 1)]);
        assert_eq!((s.outputs(), s.count()), (3, 140));
    }

    #[test]
    fn reducing_everything_keeps_one_value() {
        let s = AxisSplit::new(&[2, 3], &[0, 1]);
        assert!(s.kept.is_empty());
        assert_eq!((s.outputs(), s.count()), (1, 6));
        assert_eq!(kept_shape(&[2, 3], &[0, 1]), vec![1]);
    }

    #[test]
    #[should_panic(expected = "alternates too often")]
    fn too_many_groups_are_refused() {
        AxisSplit::new(&[2; 9], &[0, 2, 4, 6, 8]);
    }
}
