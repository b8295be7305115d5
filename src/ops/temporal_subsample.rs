//! Temporal subsampling x[:, :, ::s, :] of (B, C, T, V) and its transpose, and on top of them the
//! strided 1×1 convolution (PyTorch's `Conv2d(C_in, C_out, 1, stride=(s, 1))`): a 1×1 kernel reads
//! only the frames t'·s, so subsampling first and convolving the T_out frames is the same function
//! at 1/s of the GEMM work.

use bytemuck::{Pod, Zeroable};

use super::conv1x1::conv1x1;
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Uniform block shared with the max-pool (`temporal_max_pool.wgsl`): both map T frames to
/// ⌊(T − 1)/s⌋ + 1.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
    pub total: u32,
    t_in: u32,
    t_out: u32,
    joints: u32,
    stride: u32,
    _pad: [u32; 3],
}

/// ⌊(T − 1)/s⌋ + 1.
pub fn frames_out(frames: usize, stride: usize) -> usize {
    (frames - 1) / stride + 1
}

#[derive(Debug)]
struct Subsample {
    stride: usize,
}

#[derive(Debug)]
struct SubsampleTranspose {
    stride: usize,
}

/// Frames 0, s, 2s, … of `x` (B, C, T, V).
pub fn temporal_subsample(g: &mut Graph, x: TensorId, stride: usize) -> TensorId {
    let xs = g.shape(x).to_vec();
    assert_eq!(
        xs.len(),
        4,
        "subsample input must be (B, C, T, V), got {xs:?}"
    );
    assert!(
        stride >= 1 && xs[2] >= 1,
        "subsampling needs frames and a stride"
    );
    let y = g.activation(
        "temporal_subsample",
        &[xs[0], xs[1], frames_out(xs[2], stride), xs[3]],
    );
    g.push(Subsample { stride }, &[x], &[y]);
    y
}

/// `conv1x1` with stride (`stride`, 1) over `x` (B, C_in, T, V).
pub fn conv1x1_strided(
    g: &mut Graph,
    x: TensorId,
    w: TensorId,
    bias: Option<TensorId>,
    stride: usize,
) -> TensorId {
    let x = if stride == 1 {
        x
    } else {
        temporal_subsample(g, x, stride)
    };
    conv1x1(g, x, w, bias)
}

/// Records a temporal kernel (`shaders/lib/frames.wgsl`) writing `params.total` elements: one
/// per invocation, or a frame row of joints where the tuning says so.
pub(crate) fn dispatch_frames(
    rec: &mut Recorder<'_>,
    kernel: Kernel,
    params: &Params,
    args: Vec<Arg>,
) {
    let rows = rec.tuning().row_invocations;
    let per_invocation = if rows { params.joints as usize } else { 1 };
    let grid = elementwise_grid(params.total as usize / per_invocation);
    rec.dispatch(kernel.with("ROWS", rows), params, args, grid);
}

/// Params for a dispatch writing `written`, with the full-rate tensor `full`.
pub(crate) fn params(
    rec: &Recorder<'_>,
    full: TensorId,
    written: TensorId,
    stride: usize,
) -> Params {
    let fs = rec.shape(full);
    Params {
        total: rec.numel(written) as u32,
        t_in: fs[2] as u32,
        t_out: frames_out(fs[2], stride) as u32,
        joints: fs[3] as u32,
        stride: stride as u32,
        _pad: [0; 3],
    }
}

impl Op for Subsample {
    fn name(&self) -> &'static str {
        "temporal_subsample"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = params(rec, inputs[0], outputs[0], self.stride);
        dispatch_frames(
            rec,
            Kernel::new(shader!("temporal_subsample"), "subsample"),
            &params,
            vec![arg(inputs[0]), arg(outputs[0])],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("subsample has one output");
        let gx = g.activation_like("temporal_subsample_transpose", ctx.inputs[0]);
        g.push(
            SubsampleTranspose {
                stride: self.stride,
            },
            &[gy],
            &[gx],
        );
        Ok(vec![Some(gx)])
    }
}

impl Op for SubsampleTranspose {
    fn name(&self) -> &'static str {
        "temporal_subsample_transpose"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = params(rec, outputs[0], outputs[0], self.stride);
        dispatch_frames(
            rec,
            Kernel::new(shader!("temporal_subsample"), "subsample_transpose"),
            &params,
            vec![arg(inputs[0]), arg(outputs[0])],
        );
    }
}

pub mod cpu {
    use super::frames_out;

    /// `x` (B, C, T, V) flattened; `frames` = T, `joints` = V.
    pub fn subsample(x: &[f64], frames: usize, joints: usize, stride: usize) -> Vec<f64> {
        let tout = frames_out(frames, stride);
        let series = x.len() / (frames * joints);
        (0..series * tout * joints)
            .map(|o| {
                let (s, to, v) = (o / (tout * joints), (o / joints) % tout, o % joints);
                x[(s * frames + to * stride) * joints + v]
            })
            .collect()
    }

    /// The transpose of `subsample`: `gy` (B, C, T_out, V) back to (B, C, T, V).
    pub fn subsample_transpose(
        gy: &[f64],
        frames: usize,
        joints: usize,
        stride: usize,
    ) -> Vec<f64> {
        let tout = frames_out(frames, stride);
        let series = gy.len() / (tout * joints);
        let mut gx = vec![0.0; series * frames * joints];
        for (o, g) in gy.iter().enumerate() {
            let (s, to, v) = (o / (tout * joints), (o / joints) % tout, o % joints);
            gx[(s * frames + to * stride) * joints + v] = *g;
        }
        gx
    }
}
