//! Max-pool (3, 1) over T of (B, C, T, V) with stride (s, 1) and padding (1, 0), PyTorch's
//! `MaxPool2d((3, 1), (s, 1), (1, 0))`: padded slots never win, and the gradient of each output goes
//! to its window's argmax, a tie to the window's first frame. The backward recomputes the argmax
//! from the input rather than saving an index tensor, since the input stays alive for the ReLU
//! backward that precedes the pool in the MS-TCN.

use super::arg;
pub use super::temporal_subsample::frames_out;
use super::temporal_subsample::{dispatch_frames, params};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[derive(Debug)]
struct MaxPool {
    stride: usize,
}

#[derive(Debug)]
struct MaxPoolGrad {
    stride: usize,
}

/// Max over windows of 3 frames of `x` (B, C, T, V), every `stride` frames.
pub fn temporal_max_pool(g: &mut Graph, x: TensorId, stride: usize) -> TensorId {
    let xs = g.shape(x).to_vec();
    assert_eq!(
        xs.len(),
        4,
        "max-pool input must be (B, C, T, V), got {xs:?}"
    );
    assert!(
        stride >= 1 && xs[2] >= 1,
        "max-pool needs frames and a stride"
    );
    let y = g.activation(
        "temporal_max_pool",
        &[xs[0], xs[1], frames_out(xs[2], stride), xs[3]],
    );
    g.push(MaxPool { stride }, &[x], &[y]);
    y
}

impl Op for MaxPool {
    fn name(&self) -> &'static str {
        "temporal_max_pool"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = params(rec, inputs[0], outputs[0], self.stride);
        dispatch_frames(
            rec,
            Kernel::new(shader!("temporal_max_pool"), "pool_forward"),
            &params,
            vec![arg(inputs[0]), arg(outputs[0])],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("max-pool has one output");
        let x = ctx.inputs[0];
        let gx = g.activation_like("temporal_max_pool_grad", x);
        g.push(
            MaxPoolGrad {
                stride: self.stride,
            },
            &[x, gy],
            &[gx],
        );
        Ok(vec![Some(gx)])
    }
}

impl Op for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "temporal_max_pool_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = params(rec, inputs[0], outputs[0], self.stride);
        dispatch_frames(
            rec,
            Kernel::new(shader!("temporal_max_pool"), "pool_backward"),
            &params,
            vec![arg(inputs[0]), arg(inputs[1]), arg(outputs[0])],
        );
    }
}

pub mod cpu {
    //! f64 references on (B·C, T, V) series. The backward scatters each output's gradient to its
    //! argmax, the definition, independently of the GPU's gather.

    use super::frames_out;

    /// Frame of the maximum of window `to`: a strict `>` scan over the frames inside [0, T).
    fn argmax(x: &[f64], (frames, joints): (usize, usize), to: usize, stride: usize) -> usize {
        let first = (to * stride).saturating_sub(1);
        let last = (to * stride + 1).min(frames - 1);
        (first + 1..=last).fold(first, |best, t| {
            if x[t * joints] > x[best * joints] {
                t
            } else {
                best
            }
        })
    }

    /// `x` is (B, C, T, V) flattened; `frames` = T, `joints` = V.
    pub fn forward(x: &[f64], frames: usize, joints: usize, stride: usize) -> Vec<f64> {
        let tout = frames_out(frames, stride);
        let series = x.len() / (frames * joints);
        let mut y = Vec::with_capacity(series * tout * joints);
        for s in 0..series {
            for to in 0..tout {
                for v in 0..joints {
                    let base = &x[s * frames * joints + v..];
                    y.push(base[argmax(base, (frames, joints), to, stride) * joints]);
                }
            }
        }
        y
    }

    /// Gradient of `forward` at `x` for the output gradient `gy`.
    pub fn backward(
        x: &[f64],
        gy: &[f64],
        frames: usize,
        joints: usize,
        stride: usize,
    ) -> Vec<f64> {
        let tout = frames_out(frames, stride);
        let mut gx = vec![0.0; x.len()];
        for (o, g) in gy.iter().enumerate() {
            let (s, to, v) = (o / (tout * joints), (o / joints) % tout, o % joints);
            let start = s * frames * joints + v;
            let t = argmax(&x[start..], (frames, joints), to, stride);
            gx[start + t * joints] += g;
        }
        gx
    }
}
