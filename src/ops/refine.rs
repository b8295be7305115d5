//! Topology refinement of CTR-GC branch i: Q = alpha·C + PA[i], where C = conv4(E) is
//! (B, C_out, V, V), alpha a learnable one-element tensor shared by the branches and PA the
//! learnable (S, V, V) stack of which the branch reads slice i. [`refine_branches`] does every
//! branch at once on their stack C (B, S·C_out, V, V).
//!
//! Backward: g_C = alpha·g_Q, written by the pass that forms the chunk partials of
//! g_alpha = Σ g_Q ⊙ C (a tree per chunk, then a sum of the partials), and g_PA[i] = Σ_{b,c} g_Q
//! with the slices of no branch zero. Autodiff adds separate branches' contributions to the
//! shared alpha and PA.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
use crate::shader;

/// Elements one workgroup sums for g_alpha (16 per invocation).
const PER_WORKGROUP: usize = 4096;
/// Most partials of g_alpha, so the second pass is a single workgroup tree.
const MAX_CHUNKS: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    vv: u32,
    branch: u32,
    pa_len: u32,
    chunks: u32,
    chunk_len: u32,
    branches: u32,
    branch_len: u32,
}

/// The slices of PA that a refinement reads: `count` branches from `first` on.
#[derive(Debug, Clone, Copy)]
struct Branches {
    first: usize,
    count: usize,
}

impl Params {
    /// From the (B, count·C_out, V, V) shape of C and the (S, V, V) shape of PA.
    fn new(c_shape: &[usize], pa_shape: &[usize], branches: Branches) -> Self {
        let n: usize = c_shape.iter().product();
        let chunks = n.div_ceil(PER_WORKGROUP).clamp(1, MAX_CHUNKS);
        let vv = pa_shape[1] * pa_shape[2];
        Self {
            n: n as u32,
            vv: vv as u32,
            branch: branches.first as u32,
            pa_len: pa_shape.iter().product::<usize>() as u32,
            chunks: chunks as u32,
            chunk_len: n.div_ceil(chunks) as u32,
            branches: branches.count as u32,
            branch_len: (c_shape[1] / branches.count * vv) as u32,
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("refine"), entry)
}

#[derive(Debug)]
struct Refine {
    branches: Branches,
}

#[derive(Debug)]
struct RefineGrad {
    branches: Branches,
}

/// `alpha·c + pa[branch]` for c (B, C_out, V, V), alpha (1) and pa (S, V, V).
pub fn refine(
    g: &mut Graph,
    c: TensorId,
    alpha: TensorId,
    pa: TensorId,
    branch: usize,
) -> TensorId {
    let branches = Branches {
        first: branch,
        count: 1,
    };
    push_refine(g, c, alpha, pa, branches)
}

/// Every branch s at once: `alpha·c[b, s] + pa[s]` for the stack c (B, S·C_out, V, V) of the
/// S = len(pa) branches.
pub fn refine_branches(g: &mut Graph, c: TensorId, alpha: TensorId, pa: TensorId) -> TensorId {
    let count = g.shape(pa)[0];
    push_refine(g, c, alpha, pa, Branches { first: 0, count })
}

fn push_refine(
    g: &mut Graph,
    c: TensorId,
    alpha: TensorId,
    pa: TensorId,
    branches: Branches,
) -> TensorId {
    let shape = g.shape(c).to_vec();
    let pa_shape = g.shape(pa);
    assert_eq!(shape.len(), 4, "refine takes C as (B, C_out, V, V)");
    assert_eq!(g.shape(alpha), [1], "alpha must be a one-element tensor");
    assert!(
        pa_shape.len() == 3 && pa_shape[1..] == shape[2..] && shape[2] == shape[3],
        "PA {pa_shape:?} does not match the V×V maps of C {shape:?}"
    );
    assert!(
        branches.first + branches.count <= pa_shape[0],
        "PA has no slice {}",
        branches.first + branches.count - 1
    );
    assert_eq!(
        shape[1] % branches.count,
        0,
        "{} branches do not divide the {} maps of C",
        branches.count,
        shape[1]
    );
    let q = g.activation("refine", &shape);
    g.push(Refine { branches }, &[c, alpha, pa], &[q]);
    q
}

impl Op for Refine {
    fn name(&self) -> &'static str {
        "refine"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::new(rec.shape(inputs[0]), rec.shape(inputs[2]), self.branches);
        rec.dispatch(
            kernel("refine_forward"),
            &params,
            vec![
                arg(inputs[0]),
                arg(inputs[1]),
                arg(inputs[2]),
                arg(outputs[0]),
            ],
            elementwise_grid((params.n / params.branch_len * params.vv) as usize),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gq = ctx.grads[0].expect("refine has one output");
        let [c, alpha, pa] = ctx.inputs.try_into().expect("3 inputs");
        let gc = g.activation_like("refine_grad.c", c);
        let galpha = g.activation_like("refine_grad.alpha", alpha);
        let gpa = g.activation_like("refine_grad.pa", pa);
        let op = RefineGrad {
            branches: self.branches,
        };
        g.push(op, &[gq, c, alpha], &[gc, galpha, gpa]);
        Ok([gc, galpha, gpa]
            .into_iter()
            .zip(ctx.needs)
            .map(|(t, &need)| need.then_some(t))
            .collect())
    }
}

impl Op for RefineGrad {
    fn name(&self) -> &'static str {
        "refine_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let [gq, c, alpha] = inputs.try_into().expect("3 inputs");
        let [gc, galpha, gpa] = outputs.try_into().expect("3 outputs");
        let shape = rec.shape(c).to_vec();
        let params = Params::new(&shape, rec.shape(gpa), self.branches);
        let (vv, chunks) = (params.vv as usize, params.chunks as usize);
        // g_C, and chunk partials of g_alpha = Σ g_Q ⊙ C, then their sum.
        let partials = Arg::Scratch {
            slot: 0,
            bytes: 4 * chunks as u64,
        };
        rec.dispatch(
            rec.tuning().tree(kernel("refine_grad_partial")),
            &params,
            vec![arg(gq), arg(c), partials.clone(), arg(alpha), arg(gc)],
            grid_1d(chunks as u32),
        );
        let over_partials = AxisSplit {
            kept: Vec::new(),
            reduced: vec![(chunks, 1)],
        };
        let value = Summand::Value;
        record_sum(
            rec,
            &over_partials,
            value,
            partials,
            None,
            None,
            1.0,
            arg(galpha),
            1,
        );

        // Σ over (b, c) for each branch and (u, v), then placed in the branches' slices of g_PA;
        // straight into g_PA when the branches are all of its slices.
        let Branches { first, count } = self.branches;
        let over_maps = AxisSplit::new(&[shape[0], count, shape[1] / count, vv], &[0, 2]);
        if first == 0 && count * vv == params.pa_len as usize {
            record_sum(
                rec,
                &over_maps,
                value,
                arg(gq),
                None,
                None,
                1.0,
                arg(gpa),
                1,
            );
            return;
        }
        let column_sums = Arg::Scratch {
            slot: 2,
            bytes: 4 * (count * vv) as u64,
        };
        let sums = column_sums.clone();
        record_sum(rec, &over_maps, value, arg(gq), None, None, 1.0, sums, 1);
        rec.dispatch(
            kernel("refine_scatter_pa"),
            &params,
            vec![column_sums, arg(gpa)],
            elementwise_grid(params.pa_len as usize),
        );
    }
}

pub mod cpu {
    /// Q for c (`maps`·V·V values, `maps` = B·C_out), alpha and pa (S, V, V).
    pub fn refine(c: &[f64], alpha: f64, pa: &[f64], branch: usize, vv: usize) -> Vec<f64> {
        let slice = &pa[branch * vv..(branch + 1) * vv];
        c.iter()
            .enumerate()
            .map(|(i, v)| alpha * v + slice[i % vv])
            .collect()
    }

    /// (g_C, g_alpha, g_PA) with g_PA of the length of `pa`.
    pub fn refine_grad(
        gq: &[f64],
        c: &[f64],
        alpha: f64,
        pa_len: usize,
        branch: usize,
        vv: usize,
    ) -> (Vec<f64>, f64, Vec<f64>) {
        let gc = gq.iter().map(|g| alpha * g).collect();
        let galpha = gq.iter().zip(c).map(|(g, v)| g * v).sum();
        let mut gpa = vec![0.0; pa_len];
        for (i, g) in gq.iter().enumerate() {
            gpa[branch * vv + i % vv] += g;
        }
        (gc, galpha, gpa)
    }
}
