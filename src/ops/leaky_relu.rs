//! LeakyReLU, PyTorch's `nn.LeakyReLU(negative_slope)`: y = x for x > 0, slope·x otherwise, with
//! the gradient g·(1 if x > 0 else slope). The slope must be ≥ 0, so that y > 0 exactly where
//! x > 0 and the backward can read the forward output instead of keeping the input alive.

use bytemuck::{Pod, Zeroable};

use super::{arg, dispatch_elementwise};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    slope: f32,
}

#[derive(Debug)]
struct LeakyRelu {
    slope: f32,
}

#[derive(Debug)]
struct LeakyReluGrad {
    slope: f32,
}

/// `x` where positive, `slope·x` elsewhere; `slope` is finite and ≥ 0.
pub fn leaky_relu(g: &mut Graph, x: TensorId, slope: f32) -> TensorId {
    assert!(
        slope.is_finite() && slope >= 0.0,
        "leaky_relu needs a finite slope ≥ 0, got {slope}"
    );
    let y = g.activation_like("leaky_relu", x);
    g.push(LeakyRelu { slope }, &[x], &[y]);
    y
}

fn record_elementwise(
    rec: &mut Recorder<'_>,
    entry: &'static str,
    slope: f32,
    args: Vec<TensorId>,
    output: TensorId,
) {
    let n = rec.numel(output);
    let params = Params { n: n as u32, slope };
    let args = args.into_iter().chain([output]).map(arg).collect();
    dispatch_elementwise(
        rec,
        Kernel::new(shader!("leaky_relu"), entry),
        &params,
        args,
        n,
    );
}

impl Op for LeakyRelu {
    fn name(&self) -> &'static str {
        "leaky_relu"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_elementwise(
            rec,
            "leaky_relu_forward",
            self.slope,
            vec![inputs[0]],
            outputs[0],
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("leaky_relu has one output");
        let gx = g.activation_like("leaky_relu_grad", gy);
        g.push(
            LeakyReluGrad { slope: self.slope },
            &[ctx.outputs[0], gy],
            &[gx],
        );
        Ok(vec![Some(gx)])
    }
}

impl Op for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "leaky_relu_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        record_elementwise(
            rec,
            "leaky_relu_backward",
            self.slope,
            inputs.to_vec(),
            outputs[0],
        );
    }
}

pub mod cpu {
    pub fn leaky_relu(x: &[f64], slope: f64) -> Vec<f64> {
        x.iter()
            .map(|&v| if v > 0.0 { v } else { slope * v })
            .collect()
    }

    /// Gradient of `leaky_relu` at the input `x`.
    pub fn leaky_relu_grad(x: &[f64], gy: &[f64], slope: f64) -> Vec<f64> {
        x.iter()
            .zip(gy)
            .map(|(&x, &g)| if x > 0.0 { g } else { slope * g })
            .collect()
    }
}
