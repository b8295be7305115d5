//! The convolution step of SF-Head's AC-FA gates: z (R, Cin, H, W) cross-correlated with one
//! K×K filter w (1, Cin, K, K), K odd, zero padding K/2, stride 1, no bias, giving (R, 1, H, W)
//! (PyTorch's `Conv2d(Cin, 1, K, padding=K/2, bias=False)`).
//!
//! An invocation computes four neighbouring outputs of a row, or four data-gradient elements,
//! looping over the taps inside the plane (a gather, no scatter) with each source row's values
//! loaded once for all four. The weight gradient sums over all R·H·W outputs, up to millions:
//! one invocation per (chunk, kernel row) sums a bounded chunk in order into scratch partials for
//! the row's K taps, and a tree reduction (`reduce::record_sum`) adds the chunks. No atomics, so
//! results are deterministic.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Outputs one forward or data-gradient invocation computes along a row (`TILE` in the shader).
const TILE: usize = 4;
/// The largest kernel side the shader's row window holds (`MAX_KSIZE` there).
pub const MAX_KSIZE: usize = 9;
/// Least outputs one weight-gradient partial sums, so that a partial does real work.
const MIN_CHUNK_LEN: usize = 256;
/// Most partials per weight; more outputs make each chunk longer instead.
const MAX_CHUNKS: usize = 4096;

/// Sizes of one plane convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dims {
    items: usize,
    channels: usize,
    height: usize,
    width: usize,
    ksize: usize,
}

impl Dims {
    fn outputs(&self) -> usize {
        self.items * self.height * self.width
    }

    fn taps(&self) -> usize {
        self.channels * self.ksize * self.ksize
    }

    /// Outputs per weight-gradient partial, and the number of partials per weight.
    fn chunking(&self) -> (usize, usize) {
        let len = self.outputs().div_ceil(MAX_CHUNKS).max(MIN_CHUNK_LEN);
        (len, self.outputs().div_ceil(len))
    }

    /// Invocations of the forward: a tile of each output row.
    fn output_tiles(&self) -> usize {
        self.items * self.height * self.width.div_ceil(TILE)
    }

    fn params(&self, total: usize) -> Params {
        Params {
            total: total as u32,
            channels: self.channels as u32,
            height: self.height as u32,
            width: self.width as u32,
            outputs: self.outputs() as u32,
            chunk_len: self.chunking().0 as u32,
        }
    }

    fn kernel(&self, entry: &'static str) -> Kernel {
        Kernel::new(shader!("plane_conv"), entry).with("KSIZE", self.ksize as u32)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    channels: u32,
    height: u32,
    width: u32,
    outputs: u32,
    chunk_len: u32,
}

#[derive(Debug)]
struct PlaneConv {
    dims: Dims,
}

#[derive(Debug)]
struct PlaneConvGradInput {
    dims: Dims,
}

#[derive(Debug)]
struct PlaneConvGradWeight {
    dims: Dims,
}

/// Cross-correlates `z` (R, Cin, H, W) with `w` (1, Cin, K, K), K odd, zero padding K/2 and
/// stride 1; the result is (R, 1, H, W).
pub fn plane_conv(g: &mut Graph, z: TensorId, w: TensorId) -> TensorId {
    let zs = g.shape(z).to_vec();
    let ws = g.shape(w).to_vec();
    assert!(
        zs.len() == 4 && zs.iter().all(|&d| d > 0),
        "plane conv input must be a non-empty (R, Cin, H, W), got {zs:?}"
    );
    assert!(
        ws.len() == 4
            && ws[0] == 1
            && ws[1] == zs[1]
            && ws[2] == ws[3]
            && ws[2] % 2 == 1
            && ws[2] <= MAX_KSIZE,
        "plane conv weight must be (1, {}, K, K) with K odd and at most {MAX_KSIZE}, got {ws:?}",
        zs[1]
    );
    let dims = Dims {
        items: zs[0],
        channels: zs[1],
        height: zs[2],
        width: zs[3],
        ksize: ws[2],
    };
    let out = g.activation("plane_conv", &[zs[0], 1, zs[2], zs[3]]);
    g.push(PlaneConv { dims }, &[z, w], &[out]);
    out
}

impl Op for PlaneConv {
    fn name(&self) -> &'static str {
        "plane_conv"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = self.dims.output_tiles();
        rec.dispatch(
            self.dims.kernel("conv_forward"),
            &self.dims.params(n),
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(n),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gout = ctx.grads[0].expect("plane conv has one output");
        let (z, w) = (ctx.inputs[0], ctx.inputs[1]);
        let dims = self.dims;
        let gz = ctx.needs[0].then(|| {
            let gz = g.activation_like("plane_conv_grad_input", z);
            g.push(PlaneConvGradInput { dims }, &[w, gout], &[gz]);
            gz
        });
        let gw = ctx.needs[1].then(|| {
            let gw = g.activation_like("plane_conv_grad_weight", w);
            g.push(PlaneConvGradWeight { dims }, &[gout, z], &[gw]);
            gw
        });
        Ok(vec![gz, gw])
    }
}

impl Op for PlaneConvGradInput {
    fn name(&self) -> &'static str {
        "plane_conv_grad_input"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let n = self.dims.output_tiles() * self.dims.channels;
        rec.dispatch(
            self.dims.kernel("conv_grad_input"),
            &self.dims.params(n),
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
            elementwise_grid(n),
        );
    }
}

impl Op for PlaneConvGradWeight {
    fn name(&self) -> &'static str {
        "plane_conv_grad_weight"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let taps = self.dims.taps();
        let chunks = self.dims.chunking().1;
        let gw = arg(outputs[0]);
        // One chunk: its partials are the gradient itself.
        let partials = if chunks == 1 {
            gw.clone()
        } else {
            Arg::Scratch {
                slot: 0,
                bytes: (4 * chunks * taps) as u64,
            }
        };
        let n = chunks * self.dims.channels * self.dims.ksize;
        rec.dispatch(
            self.dims.kernel("conv_grad_weight"),
            &self.dims.params(n),
            vec![arg(inputs[0]), arg(inputs[1]), partials.clone()],
            elementwise_grid(n),
        );
        if chunks > 1 {
            // partial[chunk·taps + tap]: keep the taps, sum the chunks.
            let split = AxisSplit {
                kept: vec![(taps, 1)],
                reduced: vec![(chunks, taps)],
            };
            record_sum(
                rec,
                &split,
                Summand::Value,
                partials,
                None,
                None,
                1.0,
                gw,
                1,
            );
        }
    }
}

pub mod cpu {
    //! f64 references straight from the definition on flattened tensors; the data gradient is
    //! the scatter it is, independently of the GPU's gather.

    /// Sizes: R items, Cin channels, an H×W plane and a K×K kernel.
    #[derive(Debug, Clone, Copy)]
    pub struct Sizes {
        pub items: usize,
        pub channels: usize,
        pub height: usize,
        pub width: usize,
        pub ksize: usize,
    }

    /// Calls `f(z index, w index, out index)` for every multiply-add of the forward.
    fn for_each_tap(s: &Sizes, mut f: impl FnMut(usize, usize, usize)) {
        let (hh, ww, k) = (s.height as isize, s.width as isize, s.ksize);
        let pad = (k / 2) as isize;
        for r in 0..s.items {
            for h in 0..hh {
                for w in 0..ww {
                    let out = (r * s.height + h as usize) * s.width + w as usize;
                    for c in 0..s.channels {
                        for i in 0..k {
                            for j in 0..k {
                                let (zh, zw) = (h + i as isize - pad, w + j as isize - pad);
                                if (0..hh).contains(&zh) && (0..ww).contains(&zw) {
                                    let zi = ((r * s.channels + c) * s.height + zh as usize)
                                        * s.width
                                        + zw as usize;
                                    f(zi, (c * k + i) * k + j, out);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// out (R, 1, H, W) for z (R, Cin, H, W) and w (1, Cin, K, K).
    pub fn forward(z: &[f64], w: &[f64], s: &Sizes) -> Vec<f64> {
        let mut out = vec![0.0; s.items * s.height * s.width];
        for_each_tap(s, |zi, wi, oi| out[oi] += w[wi] * z[zi]);
        out
    }

    pub fn grad_input(gout: &[f64], w: &[f64], s: &Sizes) -> Vec<f64> {
        let mut gz = vec![0.0; s.items * s.channels * s.height * s.width];
        for_each_tap(s, |zi, wi, oi| gz[zi] += w[wi] * gout[oi]);
        gz
    }

    pub fn grad_weight(gout: &[f64], z: &[f64], s: &Sizes) -> Vec<f64> {
        let mut gw = vec![0.0; s.channels * s.ksize * s.ksize];
        for_each_tap(s, |zi, wi, oi| gw[wi] += gout[oi] * z[zi]);
        gw
    }
}
