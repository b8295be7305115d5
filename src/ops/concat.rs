//! Concatenation along the channel axis (axis 1) of (B, C_i, ...) tensors that agree on every
//! other axis, and its inverse `split`. The backward of each is the other.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    count: u32,
    part: u32,
    total: u32,
    offset: u32,
    inner: u32,
    _pad: [u32; 3],
}

impl Params {
    /// A part of `part_shape` at channel `offset` of a `total`-channel result.
    fn new(part_shape: &[usize], total: usize, offset: usize) -> Self {
        Self {
            count: part_shape.iter().product::<usize>() as u32,
            part: part_shape[1] as u32,
            total: total as u32,
            offset: offset as u32,
            inner: part_shape[2..].iter().product::<usize>() as u32,
            _pad: [0; 3],
        }
    }
}

#[derive(Debug)]
struct Concat;

#[derive(Debug)]
struct ChannelSlice {
    offset: usize,
}

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

impl Op for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let total = rec.shape(outputs[0])[1];
        let mut offset = 0;
        for &part in inputs {
            let shape = rec.shape(part).to_vec();
            let params = Params::new(&shape, total, offset);
            rec.dispatch(
                Kernel::new(shader!("concat"), "concat_place"),
                &params,
                vec![arg(part), arg(outputs[0])],
                elementwise_grid(params.count as usize),
            );
            offset += shape[1];
        }
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("concat has one output");
        let mut offset = 0;
        let mut grads = Vec::with_capacity(ctx.inputs.len());
        for (&part, &need) in ctx.inputs.iter().zip(ctx.needs) {
            grads.push(need.then(|| {
                let gx = g.activation_like("concat_slice", part);
                g.push(ChannelSlice { offset }, &[gy], &[gx]);
                gx
            }));
            offset += g.shape(part)[1];
        }
        Ok(grads)
    }
}

impl Op for Split {
    fn name(&self) -> &'static str {
        "split"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let mut offset = 0;
        for &part in outputs {
            ChannelSlice { offset }.record(rec, inputs, &[part]);
            offset += rec.shape(part)[1];
        }
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

impl Op for ChannelSlice {
    fn name(&self) -> &'static str {
        "concat_slice"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let shape = rec.shape(outputs[0]).to_vec();
        let params = Params::new(&shape, rec.shape(inputs[0])[1], self.offset);
        rec.dispatch(
            Kernel::new(shader!("concat"), "concat_slice"),
            &params,
            vec![arg(inputs[0]), arg(outputs[0])],
            elementwise_grid(params.count as usize),
        );
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
