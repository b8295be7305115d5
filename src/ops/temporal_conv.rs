//! Temporal convolution k×1 over (B, C, T, V) with dilation d, stride s and zero padding
//! p = ((k−1)·d)/2, PyTorch's `Conv2d(C_in, C_out, (k, 1), stride=(s, 1), padding=(p, 0),
//! dilation=(d, 1))`. Forward, data gradient and weight gradient are implicit GEMMs of
//! `shaders/temporal_conv.wgsl`; the data gradient gathers (no scatter, no atomics), the weight
//! gradient sums over (B, T_out, V) in split partials and a tree reduction, and the bias gradient
//! is a sum of the incoming gradient over (B, T_out, V).

use bytemuck::{Pod, Zeroable};

use super::arg;
use super::gemm::{K_TILE, TileLayout, split_k};
use super::reduce::{self, record_split_sum};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};

use crate::shader;

/// Sizes of one temporal convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporalConvDims {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    /// Input frames T.
    pub frames: usize,
    pub joints: usize,
    pub ksize: usize,
    pub dilation: usize,
    pub stride: usize,
}

impl TemporalConvDims {
    pub fn pad(&self) -> usize {
        (self.ksize - 1) * self.dilation / 2
    }

    /// ⌊(T + 2p − d(k−1) − 1)/s⌋ + 1.
    pub fn frames_out(&self) -> usize {
        (self.frames + 2 * self.pad() - self.dilation * (self.ksize - 1) - 1) / self.stride + 1
    }
}

/// Which of the three products a dispatch computes (the shader's MODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward = 0,
    GradInput = 1,
    GradWeight = 2,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    kb: u32,
    splits: u32,
    iters_per_split: u32,
    cin: u32,
    cout: u32,
    t_in: u32,
    t_out: u32,
    joints: u32,
    ksize: u32,
    dilation: u32,
    stride: u32,
    pad: u32,
    _pad: u32,
}

/// Records one pass: `a` and `b` are the shader's operands, `c` the result.
fn record_pass(
    rec: &mut Recorder<'_>,
    pass: Pass,
    d: &TemporalConvDims,
    a: Arg,
    b: Arg,
    bias: Option<Arg>,
    c: Arg,
) {
    let taps = d.ksize;
    let (m, n, k, kb, products) = match pass {
        Pass::Forward => (d.cout, d.frames_out() * d.joints, d.cin * taps, 1, d.batch),
        Pass::GradInput => (d.cin, d.frames * d.joints, d.cout * taps, 1, d.batch),
        Pass::GradWeight => (d.cout, d.cin * taps, d.frames_out() * d.joints, d.batch, 1),
    };
    let iterations = kb * k.div_ceil(K_TILE);
    // The weight gradient has few tiles and a long depth, so it is split along the depth.
    let (splits, per_split) = if pass == Pass::GradWeight {
        split_k(m, n, 1, iterations)
    } else {
        (1, iterations)
    };
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        kb: kb as u32,
        splits: splits as u32,
        iters_per_split: per_split as u32,
        cin: d.cin as u32,
        cout: d.cout as u32,
        t_in: d.frames as u32,
        t_out: d.frames_out() as u32,
        joints: d.joints as u32,
        ksize: taps as u32,
        dilation: d.dilation as u32,
        stride: d.stride as u32,
        pad: d.pad() as u32,
        _pad: 0,
    };
    let partial = Arg::Scratch {
        slot: 0,
        bytes: (splits * m * n * 4) as u64,
    };
    let target = if splits > 1 {
        partial.clone()
    } else {
        c.clone()
    };
    let layout = TileLayout::new(rec.tuning().gemm, m, n);
    let kernel = layout
        .kernel(shader!("temporal_conv"), ["tconv", "tconv_direct"])
        .with("MODE", pass as u32)
        .with("BIAS", bias.is_some());
    let unused_bias = a.clone();
    rec.dispatch(
        kernel,
        &params,
        vec![a, b, bias.unwrap_or(unused_bias), target],
        layout.grid((products * splits) as u32),
    );
    if splits > 1 {
        record_split_sum(rec, m * n, splits, partial, c);
    }
}

#[derive(Debug)]
struct TemporalConv {
    dims: TemporalConvDims,
}

#[derive(Debug)]
struct TemporalConvGradInput {
    dims: TemporalConvDims,
}

#[derive(Debug)]
struct TemporalConvGradWeight {
    dims: TemporalConvDims,
}

/// Convolves `x` (B, C_in, T, V) over T with `w` (C_out, C_in, k, 1) and an optional `bias`
/// (C_out), dilation `dilation` and stride `stride`; the result is (B, C_out, T_out, V).
pub fn temporal_conv(
    g: &mut Graph,
    x: TensorId,
    w: TensorId,
    bias: Option<TensorId>,
    dilation: usize,
    stride: usize,
) -> TensorId {
    let xs = g.shape(x).to_vec();
    let ws = g.shape(w).to_vec();
    assert_eq!(
        xs.len(),
        4,
        "temporal conv input must be (B, C, T, V), got {xs:?}"
    );
    assert!(
        ws.len() == 4 && ws[3] == 1 && ws[1] == xs[1],
        "temporal conv weight must be (C_out, {}, k, 1), got {ws:?}",
        xs[1]
    );
    assert!(
        dilation >= 1 && stride >= 1,
        "dilation and stride start at 1"
    );
    if let Some(b) = bias {
        assert_eq!(g.shape(b), [ws[0]], "temporal conv bias must be (C_out)");
    }
    let dims = TemporalConvDims {
        batch: xs[0],
        cin: xs[1],
        cout: ws[0],
        frames: xs[2],
        joints: xs[3],
        ksize: ws[2],
        dilation,
        stride,
    };
    assert!(
        dims.frames + 2 * dims.pad() > dilation * (dims.ksize - 1),
        "{} frames are too few for a kernel of {} taps at dilation {dilation}",
        dims.frames,
        dims.ksize
    );
    let y = g.activation(
        "temporal_conv",
        &[dims.batch, dims.cout, dims.frames_out(), dims.joints],
    );
    let inputs: Vec<TensorId> = [x, w].into_iter().chain(bias).collect();
    g.push(TemporalConv { dims }, &inputs, &[y]);
    y
}

impl Op for TemporalConv {
    fn name(&self) -> &'static str {
        "temporal_conv"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let bias = inputs.get(2).copied().map(arg);
        let (x, w) = (arg(inputs[0]), arg(inputs[1]));
        record_pass(rec, Pass::Forward, &self.dims, w, x, bias, arg(outputs[0]));
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("temporal conv has one output");
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let dims = self.dims;
        let gx = ctx.needs[0].then(|| {
            let gx = g.activation_like("temporal_conv_grad_input", x);
            g.push(TemporalConvGradInput { dims }, &[w, gy], &[gx]);
            gx
        });
        let gw = ctx.needs[1].then(|| {
            let gw = g.activation_like("temporal_conv_grad_weight", w);
            g.push(TemporalConvGradWeight { dims }, &[gy, x], &[gw]);
            gw
        });
        let mut grads = vec![gx, gw];
        if ctx.inputs.len() == 3 {
            grads.push(ctx.needs[2].then(|| reduce::sum(g, gy, &[0, 2, 3])));
        }
        Ok(grads)
    }
}

impl Op for TemporalConvGradInput {
    fn name(&self) -> &'static str {
        "temporal_conv_grad_input"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let (w, gy) = (arg(inputs[0]), arg(inputs[1]));
        record_pass(
            rec,
            Pass::GradInput,
            &self.dims,
            w,
            gy,
            None,
            arg(outputs[0]),
        );
    }
}

impl Op for TemporalConvGradWeight {
    fn name(&self) -> &'static str {
        "temporal_conv_grad_weight"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let (gy, x) = (arg(inputs[0]), arg(inputs[1]));
        record_pass(
            rec,
            Pass::GradWeight,
            &self.dims,
            gy,
            x,
            None,
            arg(outputs[0]),
        );
    }
}

pub mod cpu {
    //! f64 references straight from the definition; the data gradient is written as the
    //! scatter it is, independently of the GPU's gather.

    use super::TemporalConvDims;

    /// Input frame of output frame `to` through tap `j`, if inside [0, T).
    fn source(d: &TemporalConvDims, to: usize, j: usize) -> Option<usize> {
        (to * d.stride + j * d.dilation)
            .checked_sub(d.pad())
            .filter(|&t| t < d.frames)
    }

    /// Calls `f(x index, w index, y index)` for every multiply-add of the forward.
    fn for_each_tap(d: &TemporalConvDims, mut f: impl FnMut(usize, usize, usize)) {
        let (tin, tout, v) = (d.frames, d.frames_out(), d.joints);
        for b in 0..d.batch {
            for co in 0..d.cout {
                for ci in 0..d.cin {
                    for j in 0..d.ksize {
                        for to in 0..tout {
                            let Some(t) = source(d, to, j) else { continue };
                            for u in 0..v {
                                f(
                                    ((b * d.cin + ci) * tin + t) * v + u,
                                    (co * d.cin + ci) * d.ksize + j,
                                    ((b * d.cout + co) * tout + to) * v + u,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn forward(x: &[f64], w: &[f64], bias: Option<&[f64]>, d: &TemporalConvDims) -> Vec<f64> {
        let plane = d.frames_out() * d.joints;
        let mut y: Vec<f64> = (0..d.batch * d.cout * plane)
            .map(|i| bias.map_or(0.0, |b| b[(i / plane) % d.cout]))
            .collect();
        for_each_tap(d, |xi, wi, yi| y[yi] += w[wi] * x[xi]);
        y
    }

    pub fn grad_input(gy: &[f64], w: &[f64], d: &TemporalConvDims) -> Vec<f64> {
        let mut gx = vec![0.0; d.batch * d.cin * d.frames * d.joints];
        for_each_tap(d, |xi, wi, yi| gx[xi] += w[wi] * gy[yi]);
        gx
    }

    pub fn grad_weight(gy: &[f64], x: &[f64], d: &TemporalConvDims) -> Vec<f64> {
        let mut gw = vec![0.0; d.cout * d.cin * d.ksize];
        for_each_tap(d, |xi, wi, yi| gw[wi] += gy[yi] * x[xi]);
        gw
    }

    pub fn grad_bias(gy: &[f64], d: &TemporalConvDims) -> Vec<f64> {
        let plane = d.frames_out() * d.joints;
        let mut gb = vec![0.0; d.cout];
        for (i, g) in gy.iter().enumerate() {
            gb[(i / plane) % d.cout] += g;
        }
        gb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_follow_pytorch() {
        let dims = |frames, ksize, dilation, stride| TemporalConvDims {
            batch: 1,
            cin: 1,
            cout: 1,
            frames,
            joints: 1,
            ksize,
            dilation,
            stride,
        };
        assert_eq!(dims(64, 5, 1, 2).frames_out(), 32);
        assert_eq!(dims(32, 5, 2, 2).frames_out(), 16);
        assert_eq!(dims(9, 5, 2, 1).frames_out(), 9);
        assert_eq!(dims(9, 5, 2, 2).pad(), 4);
        assert_eq!(dims(9, 1, 1, 2).frames_out(), 5);
    }
}
