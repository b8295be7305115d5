//! InfoGCN's Gaussian reparameterisation in training mode (`latent_sample`):
//! `z = eps·std + mu` with `std = min(exp(ratio·logvar), cap)`, the noise `eps ~ N(0, 1)` drawn
//! by the host into an input tensor. One elementwise kernel each way; the backward recomputes
//! `exp(ratio·logvar)` rather than keeping `std`.
//!
//! The clamp's gradient follows PyTorch's `clamp(x, max=cap)` with a scalar bound, which passes
//! the gradient only where x < cap (none at x = cap). Where `exp` overflows f32 (ratio·logvar
//! above about 88.7) the clamp is active and the gradient is 0, where PyTorch's chain of `exp`
//! and `clamp` gives 0·inf = NaN.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// InfoGCN's default noise ratio.
pub const RATIO: f32 = 0.5;
/// InfoGCN's bound on the standard deviation.
pub const CAP: f32 = 100.0;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    ratio: f32,
    cap: f32,
    _pad: u32,
}

#[derive(Debug, Clone, Copy)]
struct Reparameterize {
    ratio: f32,
    cap: f32,
}

#[derive(Debug)]
struct LogvarGrad(Reparameterize);

/// `eps·min(exp(ratio·logvar), cap) + mu`, elementwise over three tensors of one shape. `mu` and
/// `logvar` are differentiable; `eps` is noise and asking for its gradient is an error.
pub fn reparameterize(
    g: &mut Graph,
    mu: TensorId,
    logvar: TensorId,
    eps: TensorId,
    ratio: f32,
    cap: f32,
) -> TensorId {
    let shape = g.shape(mu).to_vec();
    assert!(
        g.shape(logvar) == shape && g.shape(eps) == shape,
        "reparameterize needs mu, logvar and eps of one shape, got {shape:?}, {:?} and {:?}",
        g.shape(logvar),
        g.shape(eps)
    );
    assert!(
        u32::try_from(g.numel(mu)).is_ok(),
        "reparameterize: shape {shape:?} has too many elements for u32 indices"
    );
    assert!(
        ratio.is_finite() && cap.is_finite() && cap > 0.0,
        "reparameterize needs a finite ratio and a finite, positive cap, got ratio {ratio} and cap {cap}"
    );
    let z = g.activation("reparameterize", &shape);
    g.push(Reparameterize { ratio, cap }, &[mu, logvar, eps], &[z]);
    z
}

fn record(rec: &mut Recorder<'_>, op: Reparameterize, entry: &'static str, args: [TensorId; 4]) {
    let n = rec.numel(args[3]);
    let params = Params {
        n: n as u32,
        ratio: op.ratio,
        cap: op.cap,
        _pad: 0,
    };
    rec.dispatch(
        Kernel::new(shader!("reparameterize"), entry),
        &params,
        args.into_iter().map(arg).collect(),
        elementwise_grid(n),
    );
}

impl Op for Reparameterize {
    fn name(&self) -> &'static str {
        "reparameterize"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let args = [inputs[0], inputs[1], inputs[2], outputs[0]];
        record(rec, *self, "reparameterize_forward", args);
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        if ctx.needs[2] {
            return Err(AutodiffError::NotDifferentiable(
                "reparameterize (with respect to its noise eps)",
            ));
        }
        let gz = ctx.grads[0].expect("reparameterize has one output");
        let glogvar = ctx.needs[1].then(|| {
            let out = g.activation_like("reparameterize_grad", gz);
            g.push(
                LogvarGrad(*self),
                &[ctx.inputs[1], ctx.inputs[2], gz],
                &[out],
            );
            out
        });
        Ok(vec![ctx.needs[0].then_some(gz), glogvar, None])
    }
}

impl Op for LogvarGrad {
    fn name(&self) -> &'static str {
        "reparameterize_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let args = [inputs[0], inputs[1], inputs[2], outputs[0]];
        record(rec, self.0, "reparameterize_backward", args);
    }
}

pub mod cpu {
    //! f64 references, elementwise.

    /// z = eps·min(exp(ratio·logvar), cap) + mu.
    pub fn forward(mu: &[f64], logvar: &[f64], eps: &[f64], ratio: f64, cap: f64) -> Vec<f64> {
        mu.iter()
            .zip(logvar)
            .zip(eps)
            .map(|((&m, &l), &e)| e * (ratio * l).exp().min(cap) + m)
            .collect()
    }

    /// Gradient of `forward` with respect to `logvar` for the incoming gradient `gz`:
    /// gz·eps·ratio·exp(ratio·logvar) where exp(ratio·logvar) < cap, 0 elsewhere (PyTorch's
    /// clamp passes nothing at the bound). The gradient with respect to mu is gz itself.
    pub fn logvar_grad(logvar: &[f64], eps: &[f64], gz: &[f64], ratio: f64, cap: f64) -> Vec<f64> {
        logvar
            .iter()
            .zip(eps)
            .zip(gz)
            .map(|((&l, &e), &g)| {
                let s = (ratio * l).exp();
                if s < cap { g * e * ratio * s } else { 0.0 }
            })
            .collect()
    }
}
