//! The L2 norm of a whole tensor, `‖x‖ = sqrt(Σ x²)` (InfoGCN's `LA.norm(z.mean(dim=0), ord=2)`),
//! shape `[1]`. The sum of squares is a two-pass fixed-order workgroup tree, so it is
//! deterministic. Backward: g_x = g·x/‖x‖, and 0 at ‖x‖ = 0, the subgradient PyTorch takes.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
use crate::shader;

/// Elements one workgroup sums in the first pass (16 per invocation).
const PER_WORKGROUP: usize = 4096;
/// Most partial sums; more elements make each chunk longer instead.
const MAX_CHUNKS: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    chunks: u32,
    chunk_len: u32,
}

impl Params {
    fn new(n: usize) -> Self {
        let chunks = n.div_ceil(PER_WORKGROUP).clamp(1, MAX_CHUNKS);
        Self {
            n: n as u32,
            chunks: chunks as u32,
            chunk_len: n.div_ceil(chunks) as u32,
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("l2_norm"), entry)
}

#[derive(Debug)]
struct L2Norm;

#[derive(Debug)]
struct L2NormGrad;

/// `sqrt(Σ x²)` over every element of `x`, shape `[1]`.
pub fn l2_norm(g: &mut Graph, x: TensorId) -> TensorId {
    assert!(
        u32::try_from(g.numel(x)).is_ok(),
        "l2_norm: shape {:?} has too many elements for u32 indices",
        g.shape(x)
    );
    let norm = g.activation("l2_norm", &[1]);
    g.push(L2Norm, &[x], &[norm]);
    norm
}

impl Op for L2Norm {
    fn name(&self) -> &'static str {
        "l2_norm"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::new(rec.numel(inputs[0]));
        let partial = Arg::Scratch {
            slot: 0,
            bytes: 4 * u64::from(params.chunks),
        };
        rec.dispatch(
            kernel("l2_partial").with("SERIAL_TREE", rec.tuning().serial_trees),
            &params,
            vec![arg(inputs[0]), partial.clone()],
            grid_1d(params.chunks),
        );
        rec.dispatch(
            kernel("l2_final").with("SERIAL_TREE", rec.tuning().serial_trees),
            &params,
            vec![partial, arg(outputs[0])],
            [1, 1, 1],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gnorm = ctx.grads[0].expect("l2_norm has one output");
        let x = ctx.inputs[0];
        let gx = g.activation_like("l2_norm_grad", x);
        g.push(L2NormGrad, &[x, ctx.outputs[0], gnorm], &[gx]);
        Ok(vec![Some(gx)])
    }
}

impl Op for L2NormGrad {
    fn name(&self) -> &'static str {
        "l2_norm_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        rec.dispatch(
            kernel("l2_backward"),
            &Params::new(n),
            args,
            elementwise_grid(n),
        );
    }
}

pub mod cpu {
    /// `sqrt(Σ x²)`.
    pub fn l2_norm(x: &[f64]) -> f64 {
        x.iter().map(|v| v * v).sum::<f64>().sqrt()
    }

    /// Gradient of [`l2_norm`] for an incoming gradient `gnorm`: gnorm·x/‖x‖, 0 at ‖x‖ = 0.
    pub fn l2_norm_grad(x: &[f64], gnorm: f64) -> Vec<f64> {
        let norm = l2_norm(x);
        x.iter()
            .map(|v| if norm > 0.0 { gnorm * v / norm } else { 0.0 })
            .collect()
    }
}
