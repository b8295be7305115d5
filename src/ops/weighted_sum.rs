//! Weighted sum of up to four tensors of equal shape, y = Σ_i w[i]·part_i with w a vector of one
//! weight per part: SF-Head's fusion f_r = Σ ω_i·x_i with ω = softmax(w). The backward gives
//! g_part_i = w[i]·g (one dispatch per part) and g_w[i] = Σ g ⊙ part_i as tree reductions with a
//! fixed order (chunk trees, then a sum of the partials), assembled into one (parts) tensor.

use bytemuck::{Pod, Zeroable};

use super::{arg, dispatch_elementwise};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
use crate::shader;

/// Most parts the kernels bind.
pub const MAX_PARTS: usize = 4;
/// Elements one workgroup of the weight gradient sums (16 per invocation).
const PER_WORKGROUP: usize = 4096;
/// Most partial sums per weight; more elements make each chunk longer instead.
const MAX_CHUNKS: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    parts: u32,
    index: u32,
    chunks: u32,
    chunk_len: u32,
    _pad: [u32; 3],
}

impl Params {
    /// `parts` tensors of `n` elements; `index` is the part a `ws_grad_part` dispatch scales for.
    fn new(n: usize, parts: usize, index: usize) -> Self {
        let chunks = n.div_ceil(PER_WORKGROUP).clamp(1, MAX_CHUNKS);
        Self {
            n: n as u32,
            parts: parts as u32,
            index: index as u32,
            chunks: chunks as u32,
            chunk_len: n.div_ceil(chunks) as u32,
            _pad: [0; 3],
        }
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("weighted_sum"), entry)
}

/// The four part bindings: the parts, then part 0 again in the unused slots.
fn part_args(parts: &[TensorId]) -> Vec<Arg> {
    (0..MAX_PARTS)
        .map(|i| arg(*parts.get(i).unwrap_or(&parts[0])))
        .collect()
}

#[derive(Debug)]
struct WeightedSum;

#[derive(Debug)]
struct GradPart {
    index: usize,
}

#[derive(Debug)]
struct GradWeights;

/// `Σ_i weights[i]·parts[i]` for 1 to 4 `parts` of equal shape and `weights` of shape
/// (parts.len()).
pub fn weighted_sum(g: &mut Graph, parts: &[TensorId], weights: TensorId) -> TensorId {
    assert!(
        (1..=MAX_PARTS).contains(&parts.len()),
        "weighted_sum takes 1 to {MAX_PARTS} parts, got {}",
        parts.len()
    );
    let shape = g.shape(parts[0]).to_vec();
    for &t in &parts[1..] {
        assert_eq!(
            g.shape(t),
            shape,
            "weighted_sum parts must have equal shapes"
        );
    }
    assert_eq!(
        g.shape(weights),
        [parts.len()],
        "weighted_sum needs one weight per part"
    );
    let y = g.activation("weighted_sum", &shape);
    let inputs: Vec<TensorId> = parts.iter().copied().chain([weights]).collect();
    g.push(WeightedSum, &inputs, &[y]);
    y
}

impl Op for WeightedSum {
    fn name(&self) -> &'static str {
        "weighted_sum"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let (weights, parts) = inputs.split_last().expect("parts and weights");
        let n = rec.numel(outputs[0]);
        let mut args = part_args(parts);
        args.extend([arg(*weights), arg(outputs[0])]);
        dispatch_elementwise(
            rec,
            kernel("ws_forward").with("PARTS", parts.len() as u32),
            &Params::new(n, parts.len(), 0),
            args,
            n,
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("weighted_sum has one output");
        let (&weights, parts) = ctx.inputs.split_last().expect("parts and weights");
        let mut grads: Vec<Option<TensorId>> = (0..parts.len())
            .map(|index| {
                ctx.needs[index].then(|| {
                    let gx = g.activation_like("weighted_sum_grad_part", gy);
                    g.push(GradPart { index }, &[weights, gy], &[gx]);
                    gx
                })
            })
            .collect();
        grads.push(ctx.needs[parts.len()].then(|| {
            let gw = g.activation("weighted_sum_grad_weights", &[parts.len()]);
            let inputs: Vec<TensorId> = parts.iter().copied().chain([gy]).collect();
            g.push(GradWeights, &inputs, &[gw]);
            gw
        }));
        Ok(grads)
    }
}

impl Op for GradPart {
    fn name(&self) -> &'static str {
        "weighted_sum_grad_part"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = rec.numel(outputs[0]);
        let parts = rec.numel(inputs[0]);
        dispatch_elementwise(
            rec,
            kernel("ws_grad_part"),
            &Params::new(n, parts, self.index),
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            n,
        );
    }
}

impl Op for GradWeights {
    fn name(&self) -> &'static str {
        "weighted_sum_grad_weights"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let (&gy, parts) = inputs.split_last().expect("parts and gradient");
        let params = Params::new(rec.numel(gy), parts.len(), 0);
        let sums = parts.len() * params.chunks as usize;
        let gw = arg(outputs[0]);
        let first_dst = if params.chunks == 1 {
            gw.clone()
        } else {
            Arg::Scratch {
                slot: 0,
                bytes: 4 * sums as u64,
            }
        };
        let mut args = part_args(parts);
        args.extend([arg(gy), first_dst.clone()]);
        rec.dispatch(
            kernel("ws_grad_w_partial").with("SERIAL_TREE", rec.tuning().serial_trees),
            &params,
            args,
            grid_1d(sums as u32),
        );
        if params.chunks > 1 {
            rec.dispatch(
                kernel("ws_grad_w_final").with("SERIAL_TREE", rec.tuning().serial_trees),
                &params,
                vec![first_dst, gw],
                grid_1d(parts.len() as u32),
            );
        }
    }
}

pub mod cpu {
    //! f64 references on parts given as flat vectors.

    /// Σ_i weights[i]·parts[i].
    pub fn weighted_sum(parts: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
        (0..parts[0].len())
            .map(|e| parts.iter().zip(weights).map(|(p, w)| w * p[e]).sum())
            .collect()
    }

    /// Gradients of `weighted_sum` for the output gradient `gy`: one per part, then the weights'.
    pub fn backward(parts: &[Vec<f64>], weights: &[f64], gy: &[f64]) -> (Vec<Vec<f64>>, Vec<f64>) {
        let g_parts = weights
            .iter()
            .map(|w| gy.iter().map(|g| w * g).collect())
            .collect();
        let g_weights = parts
            .iter()
            .map(|p| p.iter().zip(gy).map(|(x, g)| x * g).sum())
            .collect();
        (g_parts, g_weights)
    }
}
