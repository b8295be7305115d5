//! Per-channel affine map y = x·w[k] + b[k] of a (A, K, rest...) tensor, channel axis 1 (the
//! affine half of GroupNorm, SF-Head's cweight/cbias and sweight/sbias). The data gradient is the
//! same map without bias, g·w[k]; the parameter gradients are sums over every axis but the
//! channel axis: g_w = Σ g ⊙ x and g_b = Σ g, composed from `mul` and `reduce::sum`.

use bytemuck::{Pod, Zeroable};

use super::{arg, dispatch_elementwise, mul, reduce};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    channels: u32,
    inner: u32,
    _pad: u32,
}

#[derive(Debug)]
struct ChannelAffine;

/// `y[a, k, ...] = x[a, k, ...]·w[k] + b[k]` for `x` (A, K, rest...) of any rank ≥ 2 and `w`,
/// `b` of shape (K); without `b` the bias is zero.
pub fn channel_affine(g: &mut Graph, x: TensorId, w: TensorId, b: Option<TensorId>) -> TensorId {
    let shape = g.shape(x).to_vec();
    assert!(
        shape.len() >= 2,
        "channel_affine input must be (A, K, ...), got {shape:?}"
    );
    let k = shape[1];
    assert_eq!(g.shape(w), [k], "channel_affine weight must be ({k})");
    if let Some(b) = b {
        assert_eq!(g.shape(b), [k], "channel_affine bias must be ({k})");
    }
    let y = g.activation("channel_affine", &shape);
    let inputs: Vec<TensorId> = [x, w].into_iter().chain(b).collect();
    g.push(ChannelAffine, &inputs, &[y]);
    y
}

/// Every axis but the channel axis.
fn non_channel_axes(rank: usize) -> Vec<usize> {
    [0].into_iter().chain(2..rank).collect()
}

impl Op for ChannelAffine {
    fn name(&self) -> &'static str {
        "channel_affine"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let shape = rec.shape(inputs[0]);
        let total: usize = shape.iter().product();
        let params = Params {
            total: total as u32,
            channels: shape[1] as u32,
            inner: shape[2..].iter().product::<usize>() as u32,
            _pad: 0,
        };
        let entry = if inputs.len() == 3 {
            "channel_affine"
        } else {
            "channel_scale"
        };
        let args = inputs.iter().chain(outputs).copied().map(arg).collect();
        dispatch_elementwise(
            rec,
            Kernel::new(shader!("channel_affine"), entry),
            &params,
            args,
            total,
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("channel_affine has one output");
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let axes = non_channel_axes(g.shape(x).len());
        let mut grads = vec![
            ctx.needs[0].then(|| channel_affine(g, gy, w, None)),
            ctx.needs[1].then(|| {
                let product = mul::mul(g, gy, x);
                reduce::sum(g, product, &axes)
            }),
        ];
        if ctx.inputs.len() == 3 {
            grads.push(ctx.needs[2].then(|| reduce::sum(g, gy, &axes)));
        }
        Ok(grads)
    }
}

pub mod cpu {
    //! f64 references on a (A, K, inner) view.

    fn channel(i: usize, k: usize, inner: usize) -> usize {
        (i / inner) % k
    }

    /// `x·w[k] + b[k]` (no bias when `b` is `None`).
    pub fn forward(x: &[f64], inner: usize, w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let k = w.len();
        x.iter()
            .enumerate()
            .map(|(i, v)| {
                let c = channel(i, k, inner);
                v * w[c] + b.map_or(0.0, |b| b[c])
            })
            .collect()
    }

    /// Gradients (x, w, b) of `forward` for the output gradient `gy`.
    pub fn backward(
        x: &[f64],
        inner: usize,
        w: &[f64],
        gy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let k = w.len();
        let mut gw = vec![0.0; k];
        let mut gb = vec![0.0; k];
        let gx = gy
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let c = channel(i, k, inner);
                gw[c] += g * x[i];
                gb[c] += g;
                g * w[c]
            })
            .collect();
        (gx, gw, gb)
    }
}
