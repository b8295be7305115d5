//! Concatenation along the channel axis (axis 1) of (B, C_i, ...) tensors that agree on every
//! other axis, and its inverse `split`, seven parts per dispatch. The backward of each is the
//! other.

use bytemuck::{Pod, Zeroable};

use super::{arg, dispatch_rows};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Parts one dispatch reads or writes: with the whole, the eight storage buffers every adapter
/// binds.
const PARTS_PER_DISPATCH: usize = 7;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    /// Elements of a sample's window of channels, and of a sample of the whole.
    run: u32,
    sample: u32,
    /// Elements before the window in a sample of the whole.
    lo: u32,
    /// Where each part ends in a sample's window, in elements.
    ends: [u32; 8],
}

#[derive(Debug)]
struct Concat;

#[derive(Debug)]
struct Split;

/// `parts` side by side along axis 1, in order.
pub fn concat(g: &mut Graph, parts: &[TensorId]) -> TensorId {
    assert!(!parts.is_empty(), "concat needs at least one part");
    let mut shape = g.shape(parts[0]).to_vec();
    assert!(shape.len() >= 2, "concat parts must be (B, C, ...)");
    for &t in &parts[1..] {
        let s = g.shape(t);
        assert!(
            s.len() == shape.len() && s[0] == shape[0] && s[2..] == shape[2..],
            "concat parts {:?} and {s:?} differ outside the channel axis",
            shape
        );
    }
    shape[1] = parts.iter().map(|&t| g.shape(t)[1]).sum();
    let y = g.activation("concat", &shape);
    g.push(Concat, parts, &[y]);
    y
}

/// `x` (B, C, ...) cut along axis 1 into consecutive parts of `widths` channels (summing to C),
/// each copied into a tensor of its own.
pub fn split(g: &mut Graph, x: TensorId, widths: &[usize]) -> Vec<TensorId> {
    let shape = g.shape(x).to_vec();
    assert!(shape.len() >= 2, "split needs (B, C, ...), got {shape:?}");
    assert_eq!(
        widths.iter().sum::<usize>(),
        shape[1],
        "split widths {widths:?} do not add up to the {} channels of {shape:?}",
        shape[1]
    );
    let parts: Vec<TensorId> = widths
        .iter()
        .map(|&w| {
            let mut part = shape.clone();
            part[1] = w;
            g.activation("split", &part)
        })
        .collect();
    g.push(Split, &[x], &parts);
    parts
}

/// Records `concat.wgsl`'s `concat_many` (the parts read, the whole written) or, `into_parts`,
/// `split_many` (the whole read, the parts written), seven parts per dispatch.
fn record_parts(rec: &mut Recorder<'_>, whole: TensorId, parts: &[TensorId], into_parts: bool) {
    let shape = rec.shape(whole).to_vec();
    let (batch, total) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let mut lo = 0;
    for chunk in parts.chunks(PARTS_PER_DISPATCH) {
        let mut ends = [0u32; 8];
        let mut end = lo;
        for (slot, &part) in ends.iter_mut().zip(chunk) {
            end += rec.shape(part)[1];
            *slot = end as u32;
        }
        let run = (end - lo) * inner;
        let params = Params {
            batch: batch as u32,
            run: run as u32,
            sample: (total * inner) as u32,
            lo: (lo * inner) as u32,
            ends: ends.map(|e| e.saturating_sub(lo as u32) * inner as u32),
        };
        let mut args: Vec<Arg> = chunk.iter().copied().map(arg).collect();
        // Unused part bindings: read-only, any part; written, buffers the kernel never stores
        // into (it writes its PARTS bound parts only).
        args.extend(
            (chunk.len()..PARTS_PER_DISPATCH).map(|slot| match into_parts {
                true => Arg::Scratch { slot, bytes: 4 },
                false => arg(chunk[0]),
            }),
        );
        let (entry, args) = match into_parts {
            true => ("split_many", [vec![arg(whole)], args].concat()),
            false => ("concat_many", [args, vec![arg(whole)]].concat()),
        };
        let kernel = Kernel::new(shader!("concat"), entry).with("PARTS", chunk.len() as u32);
        dispatch_rows(rec, kernel, &params, args, (batch, run));
        lo = end;
    }
}

impl Op for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_parts(rec, outputs[0], inputs, false);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("concat has one output");
        let widths: Vec<usize> = ctx.inputs.iter().map(|&t| g.shape(t)[1]).collect();
        let grads = split(g, gy, &widths);
        Ok(grads
            .into_iter()
            .zip(ctx.needs)
            .map(|(t, &need)| need.then_some(t))
            .collect())
    }
}

impl Op for Split {
    fn name(&self) -> &'static str {
        "split"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_parts(rec, inputs[0], outputs, true);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        // A part that does not reach the loss contributes zeros to the assembled gradient.
        let parts: Vec<TensorId> = ctx
            .outputs
            .iter()
            .zip(ctx.grads)
            .map(|(&part, grad)| {
                grad.unwrap_or_else(|| {
                    let shape = g.shape(part).to_vec();
                    let n = g.numel(part);
                    g.constant("split.zero_grad", &shape, vec![0.0; n])
                })
            })
            .collect();
        Ok(vec![Some(concat(g, &parts))])
    }
}

pub mod cpu {
    /// Concatenates parts given as (values, channels) along axis 1; `batch` is axis 0 and
    /// `inner` the product of the axes after the channels.
    pub fn concat(parts: &[(&[f64], usize)], batch: usize, inner: usize) -> Vec<f64> {
        let mut y = Vec::new();
        for b in 0..batch {
            for &(x, c) in parts {
                y.extend_from_slice(&x[b * c * inner..(b + 1) * c * inner]);
            }
        }
        y
    }

    /// Channels [offset, offset + part) of `y` with `total` channels.
    pub fn slice(
        y: &[f64],
        (total, offset, part): (usize, usize, usize),
        batch: usize,
        inner: usize,
    ) -> Vec<f64> {
        (0..batch)
            .flat_map(|b| {
                let start = (b * total + offset) * inner;
                y[start..start + part * inner].iter().copied()
            })
            .collect()
    }
}
