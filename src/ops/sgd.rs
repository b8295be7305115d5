//! SGD with momentum, Nesterov and L2 weight decay, applied in place after the backward pass, in
//! PyTorch's order of operations (reference-spec §5.1). The learning rate is an input tensor the
//! host sets each step, so a schedule never rebuilds the step.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

/// Hyper-parameters other than the learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    /// CTR-GCN's NTU recipe: momentum 0.9, Nesterov, weight decay 4e-4.
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 4e-4,
            nesterov: true,
        }
    }
}

#[derive(Debug)]
struct SgdStep {
    config: SgdConfig,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    nesterov: u32,
    momentum: f32,
    weight_decay: f32,
}

/// Name of the momentum buffer of parameter `name` in a checkpoint.
pub fn momentum_name(name: &str) -> String {
    format!("optim.momentum.{name}")
}

/// Appends one update per (parameter, gradient) pair; `lr` is a one-value input.
pub fn sgd(g: &mut Graph, pairs: &[(TensorId, TensorId)], lr: TensorId, config: SgdConfig) {
    assert_eq!(g.shape(lr), [1], "the learning rate is one value");
    for &(param, grad) in pairs {
        assert_eq!(
            g.shape(param),
            g.shape(grad),
            "gradient shape differs from its parameter"
        );
        let shape = g.shape(param).to_vec();
        let name = momentum_name(&g.tensor(param).name);
        let momentum = g.state(&name, &shape, vec![0.0; g.numel(param)]);
        g.push(SgdStep { config }, &[lr, grad, param, momentum], &[]);
    }
}

impl Op for SgdStep {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], _: &[TensorId]) {
        let n = rec.numel(inputs[2]);
        let params = Params {
            n: n as u32,
            nesterov: u32::from(self.config.nesterov),
            momentum: self.config.momentum,
            weight_decay: self.config.weight_decay,
        };
        rec.dispatch(
            Kernel::new(shader!("sgd"), "sgd_step"),
            &params,
            inputs.iter().copied().map(arg).collect(),
            elementwise_grid(n),
        );
    }
}

pub mod cpu {
    use super::SgdConfig;

    /// One step on `param` and its momentum buffer, in place.
    pub fn step(param: &mut [f64], buf: &mut [f64], grad: &[f64], lr: f64, c: SgdConfig) {
        let (mu, wd) = (f64::from(c.momentum), f64::from(c.weight_decay));
        for i in 0..param.len() {
            let g = grad[i] + wd * param[i];
            buf[i] = mu * buf[i] + g;
            let step = if c.nesterov { g + mu * buf[i] } else { buf[i] };
            param[i] -= lr * step;
        }
    }
}
