//! Per-row dot products of two (N, D) matrices: ab[i] = a_i·b_i, aa[i] = a_i·a_i and
//! bb[i] = b_i·b_i, the ingredients of cosines between long feature vectors (the SF-Head losses).
//!
//! The forward is one fused tree reduction that reads a and b once (the generic `reduce` kernels
//! would read them twice for the three sums), with a second pass over the chunk partials when a
//! row is longer than one workgroup's share. The backward is one elementwise pass:
//! g_a = g_ab·b + 2·g_aa·a, g_b = g_ab·a + 2·g_bb·b, where an output that does not reach the loss
//! contributes zero; a side that no gradient reaches gets none.

use bytemuck::{Pod, Zeroable};

use super::{arg, dispatch_rows};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
use crate::shader;

/// Elements of a row one workgroup sums in the first pass (16 per invocation).
const PER_WORKGROUP: usize = 4096;
/// Most partial sums per row; longer rows make each chunk longer instead.
const MAX_CHUNKS: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    chunks: u32,
    chunk_len: u32,
}

impl Params {
    fn of(shape: &[usize]) -> Self {
        let (rows, dim) = (shape[0], shape[1]);
        let chunks = dim.div_ceil(PER_WORKGROUP).clamp(1, MAX_CHUNKS);
        Self {
            rows: rows as u32,
            dim: dim as u32,
            chunks: chunks as u32,
            chunk_len: dim.div_ceil(chunks) as u32,
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("pair_stats"), entry)
}

#[derive(Debug)]
struct PairStats;

/// Gradients of both sides; a `false` flag marks an output without gradient (its input slot then
/// repeats another gradient).
#[derive(Debug)]
struct PairStatsGrad {
    has_ab: bool,
    has_aa: bool,
    has_bb: bool,
}

/// Gradient of one side x of the pair (x, y): g_x = g_xy·y + 2·g_xx·x.
#[derive(Debug)]
struct PairStatsGradSide {
    has_xy: bool,
    has_xx: bool,
}

/// `[ab, aa, bb]`, each of shape (N): the row-wise dot products a_i·b_i, a_i·a_i and b_i·b_i of
/// two (N, D) matrices.
pub fn pair_stats(g: &mut Graph, a: TensorId, b: TensorId) -> [TensorId; 3] {
    let shape = g.shape(a).to_vec();
    assert_eq!(
        shape.len(),
        2,
        "pair_stats takes (N, D) matrices, got {shape:?}"
    );
    assert_eq!(
        g.shape(b),
        shape,
        "pair_stats needs a and b of the same shape"
    );
    assert!(
        shape[0] * shape[1] <= u32::MAX as usize,
        "pair_stats indexes with u32: {shape:?} is too large"
    );
    let rows = [shape[0]];
    let out = [
        g.activation("pair_stats.ab", &rows),
        g.activation("pair_stats.aa", &rows),
        g.activation("pair_stats.bb", &rows),
    ];
    g.push(PairStats, &[a, b], &out);
    out
}

impl Op for PairStats {
    fn name(&self) -> &'static str {
        "pair_stats"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]));
        let partials = (params.rows * params.chunks) as usize;
        let results: Vec<Arg> = outputs.iter().copied().map(arg).collect();
        let firsts: Vec<Arg> = if params.chunks == 1 {
            results.clone()
        } else {
            (0..3)
                .map(|slot| Arg::Scratch {
                    slot,
                    bytes: 4 * partials as u64,
                })
                .collect()
        };
        let args = [arg(inputs[0]), arg(inputs[1])]
            .into_iter()
            .chain(firsts.clone());
        let serial = rec.tuning().serial_trees;
        rec.dispatch(
            kernel("pair_stats_partial").with("SERIAL_TREE", serial),
            &params,
            args.collect(),
            grid_1d(partials as u32),
        );
        if params.chunks > 1 {
            rec.dispatch(
                kernel("pair_stats_final").with("SERIAL_TREE", serial),
                &params,
                firsts.into_iter().chain(results).collect(),
                grid_1d(params.rows),
            );
        }
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let [g_ab, g_aa, g_bb] = [ctx.grads[0], ctx.grads[1], ctx.grads[2]];
        let (a, b) = (ctx.inputs[0], ctx.inputs[1]);
        let reaches_a = ctx.needs[0] && (g_ab.is_some() || g_aa.is_some());
        let reaches_b = ctx.needs[1] && (g_ab.is_some() || g_bb.is_some());
        Ok(match (reaches_a, reaches_b) {
            (true, true) => {
                let fill = g_ab.or(g_aa).or(g_bb).expect("a gradient arrives");
                let g_a = g.activation_like("pair_stats_grad.a", a);
                let g_b = g.activation_like("pair_stats_grad.b", b);
                let op = PairStatsGrad {
                    has_ab: g_ab.is_some(),
                    has_aa: g_aa.is_some(),
                    has_bb: g_bb.is_some(),
                };
                let grads = [g_ab, g_aa, g_bb].map(|t| t.unwrap_or(fill));
                g.push(op, &[&[a, b][..], &grads].concat(), &[g_a, g_b]);
                vec![Some(g_a), Some(g_b)]
            }
            (true, false) => vec![Some(side_grad(g, a, b, g_ab, g_aa)), None],
            (false, true) => vec![None, Some(side_grad(g, b, a, g_ab, g_bb))],
            (false, false) => vec![None, None],
        })
    }
}

/// Appends the node computing g_x = g_xy·y + 2·g_xx·x for the side x of the pair (x, y).
fn side_grad(
    g: &mut Graph,
    x: TensorId,
    y: TensorId,
    g_xy: Option<TensorId>,
    g_xx: Option<TensorId>,
) -> TensorId {
    let fill = g_xy.or(g_xx).expect("a gradient arrives");
    let g_x = g.activation_like("pair_stats_grad", x);
    let op = PairStatsGradSide {
        has_xy: g_xy.is_some(),
        has_xx: g_xx.is_some(),
    };
    let inputs = [x, y, g_xy.unwrap_or(fill), g_xx.unwrap_or(fill)];
    g.push(op, &inputs, &[g_x]);
    g_x
}

impl Op for PairStatsGrad {
    fn name(&self) -> &'static str {
        "pair_stats_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]));
        let kernel = kernel("pair_stats_backward")
            .with("HAS_AB", u32::from(self.has_ab))
            .with("HAS_AA", u32::from(self.has_aa))
            .with("HAS_BB", u32::from(self.has_bb));
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        let rows = (params.rows as usize, params.dim as usize);
        dispatch_rows(rec, kernel, &params, args, rows);
    }
}

impl Op for PairStatsGradSide {
    fn name(&self) -> &'static str {
        "pair_stats_grad_side"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::of(rec.shape(inputs[0]));
        let kernel = kernel("pair_stats_backward_side")
            .with("HAS_AB", u32::from(self.has_xy))
            .with("HAS_AA", u32::from(self.has_xx));
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        let rows = (params.rows as usize, params.dim as usize);
        dispatch_rows(rec, kernel, &params, args, rows);
    }
}

pub mod cpu {
    /// `[ab, aa, bb]` of the rows (length `dim`) of `a` and `b`.
    pub fn pair_stats(a: &[f64], b: &[f64], dim: usize) -> [Vec<f64>; 3] {
        let dot = |x: &[f64], y: &[f64]| -> Vec<f64> {
            x.chunks(dim)
                .zip(y.chunks(dim))
                .map(|(u, v)| u.iter().zip(v).map(|(p, q)| p * q).sum())
                .collect()
        };
        [dot(a, b), dot(a, a), dot(b, b)]
    }

    /// `(g_a, g_b)` for the gradients at ab, aa and bb (zeros for an output that is not used):
    /// ∂(a_i·b_i)/∂a_i = b_i, ∂(a_i·a_i)/∂a_i = 2a_i, and the same for b.
    pub fn pair_stats_grad(
        a: &[f64],
        b: &[f64],
        dim: usize,
        g_ab: &[f64],
        g_aa: &[f64],
        g_bb: &[f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let row = |e: usize| e / dim;
        let g_a = (0..a.len())
            .map(|e| g_ab[row(e)] * b[e] + 2.0 * g_aa[row(e)] * a[e])
            .collect();
        let g_b = (0..b.len())
            .map(|e| g_ab[row(e)] * a[e] + 2.0 * g_bb[row(e)] * b[e])
            .collect();
        (g_a, g_b)
    }
}
