//! SGD with momentum, Nesterov and L2 weight decay, applied in place after the backward pass, in
//! PyTorch's order of operations (reference-spec §5.1). The learning rate is an input tensor the
//! host sets each step, so a schedule never rebuilds the step.

use bytemuck::{Pod, Zeroable};

use super::{arg, elementwise_grid};
use crate::engine::{Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, SGD_GROUP};
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

/// Eight parameters' updates in one node: one dispatch where the adapter binds enough buffers
/// (`Tuning::grouped_sgd`), else one per parameter. Inputs: lr, then (grad, param, momentum)
/// per parameter.
#[derive(Debug)]
struct SgdGroupStep {
    config: SgdConfig,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GroupParams {
    nesterov: u32,
    momentum: f32,
    weight_decay: f32,
    pad: u32,
    /// Where each tensor's elements end in the group's concatenation.
    ends: [u32; SGD_GROUP],
}

/// Appends the update of every (parameter, gradient) pair, in groups of [`SGD_GROUP`]; `lr` is a
/// one-value input.
pub fn sgd(g: &mut Graph, pairs: &[(TensorId, TensorId)], lr: TensorId, config: SgdConfig) {
    assert_eq!(g.shape(lr), [1], "the learning rate is one value");
    let mut triples = Vec::with_capacity(pairs.len());
    for &(param, grad) in pairs {
        assert_eq!(
            g.shape(param),
            g.shape(grad),
            "gradient shape differs from its parameter"
        );
        let shape = g.shape(param).to_vec();
        let name = momentum_name(&g.tensor(param).name);
        let momentum = g.state(&name, &shape, vec![0.0; g.numel(param)]);
        triples.push([grad, param, momentum]);
    }
    let full = triples.len() / SGD_GROUP * SGD_GROUP;
    for group in triples[..full].chunks(SGD_GROUP) {
        let mut inputs = vec![lr];
        inputs.extend(group.iter().flatten());
        g.push(SgdGroupStep { config }, &inputs, &[]);
    }
    for t in &triples[full..] {
        g.push(SgdStep { config }, &[lr, t[0], t[1], t[2]], &[]);
    }
}

/// Records the single-tensor update of `grad`, `param` and `momentum`.
fn record_one(rec: &mut Recorder<'_>, config: SgdConfig, lr: TensorId, t: &[TensorId]) {
    let n = rec.numel(t[1]);
    let params = Params {
        n: n as u32,
        nesterov: u32::from(config.nesterov),
        momentum: config.momentum,
        weight_decay: config.weight_decay,
    };
    rec.dispatch(
        Kernel::new(shader!("sgd"), "sgd_step"),
        &params,
        [lr, t[0], t[1], t[2]].into_iter().map(arg).collect(),
        elementwise_grid(n),
    );
}

impl Op for SgdGroupStep {
    fn name(&self) -> &'static str {
        "sgd_group"
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], _: &[TensorId]) {
        let (lr, tensors) = (inputs[0], &inputs[1..]);
        if !rec.tuning().grouped_sgd {
            for t in tensors.chunks(3) {
                record_one(rec, self.config, lr, t);
            }
            return;
        }
        let mut ends = [0u32; SGD_GROUP];
        let mut total = 0;
        for (end, t) in ends.iter_mut().zip(tensors.chunks(3)) {
            total += rec.numel(t[1]);
            *end = u32::try_from(total).expect("a group of parameters indexes with u32");
        }
        let params = GroupParams {
            nesterov: u32::from(self.config.nesterov),
            momentum: self.config.momentum,
            weight_decay: self.config.weight_decay,
            pad: 0,
            ends,
        };
        rec.dispatch(
            Kernel::new(shader!("sgd_group"), "sgd_group_step"),
            &params,
            inputs.iter().copied().map(arg).collect(),
            elementwise_grid(total),
        );
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
        record_one(rec, self.config, inputs[0], &inputs[1..]);
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
