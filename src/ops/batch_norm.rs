//! Batch normalisation with PyTorch semantics, per channel (axis 1) over every other axis:
//! BatchNorm2d on (B, C, T, V), BatchNorm1d on (N, C) or (N, C, T).
//!
//! Training normalises with the batch mean and biased variance and updates the running
//! statistics in place (momentum 0.1, unbiased variance); evaluation uses the running statistics.
//! The training forward saves mean and 1/σ for the backward:
//! gx = γ·rstd·(g − mean(g) − x̂·mean(g·x̂)), gγ = Σ g·x̂, gβ = Σ g.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::Kernel;
use crate::shader;

pub const DEFAULT_EPS: f32 = 1e-5;
pub const DEFAULT_MOMENTUM: f32 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// The tensors of one BatchNorm layer and its constants.
#[derive(Debug, Clone, Copy)]
pub struct BatchNorm {
    pub weight: TensorId,
    pub bias: TensorId,
    pub running_mean: TensorId,
    pub running_var: TensorId,
    /// Training forwards so far: PyTorch's int64 counter, kept as one f32 (exact below 2^24).
    pub num_batches_tracked: TensorId,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNorm {
    /// A layer named `{prefix}.weight`, `.bias`, `.running_mean`, `.running_var`,
    /// `.num_batches_tracked` with PyTorch's initial values (γ = 1, β = 0, mean 0, variance 1).
    pub fn new(g: &mut Graph, prefix: &str, channels: usize) -> Self {
        Self::with_weight(g, prefix, vec![1.0; channels])
    }

    /// As [`BatchNorm::new`] with a given initial γ.
    pub fn with_weight(g: &mut Graph, prefix: &str, gamma: Vec<f32>) -> Self {
        let c = gamma.len();
        Self {
            weight: g.parameter(&format!("{prefix}.weight"), &[c], gamma),
            bias: g.parameter(&format!("{prefix}.bias"), &[c], vec![0.0; c]),
            running_mean: g.state(&format!("{prefix}.running_mean"), &[c], vec![0.0; c]),
            running_var: g.state(&format!("{prefix}.running_var"), &[c], vec![1.0; c]),
            num_batches_tracked: g.state(&format!("{prefix}.num_batches_tracked"), &[1], vec![0.0]),
            eps: DEFAULT_EPS,
            momentum: DEFAULT_MOMENTUM,
        }
    }

    /// Normalises `x` (N, C, ...).
    pub fn apply(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        let shape = g.shape(x).to_vec();
        assert!(shape.len() >= 2, "batch norm needs (N, C, ...)");
        let c = shape[1];
        for t in [self.weight, self.bias, self.running_mean, self.running_var] {
            assert_eq!(g.shape(t), [c], "batch norm tensors must have {c} channels");
        }
        let y = g.activation("batch_norm", &shape);
        match mode {
            Mode::Train => {
                assert!(
                    shape.iter().product::<usize>() / c > 1,
                    "training batch norm needs more than one value per channel"
                );
                let mean = g.activation("batch_norm.mean", &[c]);
                let rstd = g.activation("batch_norm.rstd", &[c]);
                let op = BatchNormTrain {
                    eps: self.eps,
                    momentum: self.momentum,
                };
                let inputs = [
                    x,
                    self.weight,
                    self.bias,
                    self.running_mean,
                    self.running_var,
                    self.num_batches_tracked,
                ];
                g.push(op, &inputs, &[y, mean, rstd]);
            }
            Mode::Eval => {
                let inputs = [
                    x,
                    self.weight,
                    self.bias,
                    self.running_mean,
                    self.running_var,
                ];
                g.push(BatchNormEval { eps: self.eps }, &inputs, &[y]);
            }
        }
        y
    }
}

fn reduced_axes(shape: &[usize]) -> Vec<usize> {
    [0].into_iter().chain(2..shape.len()).collect()
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    channels: u32,
    inner: u32,
    count: u32,
    eps: f32,
    momentum: f32,
    _pad: [u32; 2],
}

impl Params {
    fn new(shape: &[usize], eps: f32, momentum: f32) -> Self {
        let total: usize = shape.iter().product();
        Self {
            total: total as u32,
            channels: shape[1] as u32,
            inner: shape[2..].iter().product::<usize>() as u32,
            count: (total / shape[1]) as u32,
            eps,
            momentum,
            _pad: [0; 2],
        }
    }

    fn channel_grid(&self) -> [u32; 3] {
        [self.channels.div_ceil(64), 1, 1]
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("batch_norm"), entry)
}

#[derive(Debug)]
struct BatchNormTrain {
    eps: f32,
    momentum: f32,
}

#[derive(Debug)]
struct BatchNormEval {
    eps: f32,
}

#[derive(Debug)]
struct BatchNormGrad;

impl Op for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let [x, gamma, beta, running_mean, running_var, tracked] =
            inputs.try_into().expect("6 inputs");
        let [y, mean, rstd] = outputs.try_into().expect("3 outputs");
        let shape = rec.shape(x).to_vec();
        let params = Params::new(&shape, self.eps, self.momentum);
        let split = AxisSplit::new(&shape, &reduced_axes(&shape));
        let inv_n = 1.0 / params.count as f32;
        let var = Arg::Scratch {
            slot: 1,
            bytes: 4 * u64::from(params.channels),
        };
        record_sum(
            rec,
            &split,
            Summand::Value,
            arg(x),
            None,
            None,
            inv_n,
            arg(mean),
            0,
        );
        let m = Some(arg(mean));
        let centred = Summand::CentredSquare;
        record_sum(rec, &split, centred, arg(x), None, m, inv_n, var.clone(), 0);
        rec.dispatch(
            kernel("bn_finalize"),
            &params,
            vec![
                arg(mean),
                var,
                arg(rstd),
                arg(running_mean),
                arg(running_var),
                arg(tracked),
            ],
            params.channel_grid(),
        );
        rec.dispatch(
            kernel("bn_normalize"),
            &params,
            vec![arg(x), arg(mean), arg(rstd), arg(gamma), arg(beta), arg(y)],
            elementwise_grid(params.total as usize),
        );
    }

    fn backward(
        &self,
        g: &mut Graph,
        ctx: &GradContext<'_>,
    ) -> Result<Vec<Option<TensorId>>, AutodiffError> {
        let gy = ctx.grads[0].expect("batch norm statistics are not differentiated");
        let x = ctx.inputs[0];
        let (mean, rstd) = (ctx.outputs[1], ctx.outputs[2]);
        let gamma = ctx.inputs[1];
        let shape = g.shape(x).to_vec();
        let c = shape[1];
        let gx = g.activation("batch_norm_grad.x", &shape);
        let ggamma = g.activation("batch_norm_grad.weight", &[c]);
        let gbeta = g.activation("batch_norm_grad.bias", &[c]);
        g.push(
            BatchNormGrad,
            &[x, gy, mean, rstd, gamma],
            &[gx, ggamma, gbeta],
        );
        let picked = [gx, ggamma, gbeta]
            .into_iter()
            .zip(ctx.needs)
            .map(|(t, &need)| need.then_some(t));
        Ok(picked.chain([None, None, None]).collect())
    }
}

impl Op for BatchNormEval {
    fn name(&self) -> &'static str {
        "batch_norm_eval"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let [x, gamma, beta, running_mean, running_var] = inputs.try_into().expect("5 inputs");
        let params = Params::new(rec.shape(x), self.eps, 0.0);
        let rstd = Arg::Scratch {
            slot: 0,
            bytes: 4 * u64::from(params.channels),
        };
        rec.dispatch(
            kernel("bn_eval_rstd"),
            &params,
            vec![arg(running_var), rstd.clone()],
            params.channel_grid(),
        );
        rec.dispatch(
            kernel("bn_normalize"),
            &params,
            vec![
                arg(x),
                arg(running_mean),
                rstd,
                arg(gamma),
                arg(beta),
                arg(outputs[0]),
            ],
            elementwise_grid(params.total as usize),
        );
    }
}

impl Op for BatchNormGrad {
    fn name(&self) -> &'static str {
        "batch_norm_grad"
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let [x, gy, mean, rstd, gamma] = inputs.try_into().expect("5 inputs");
        let [gx, ggamma, gbeta] = outputs.try_into().expect("3 outputs");
        let shape = rec.shape(x).to_vec();
        let params = Params::new(&shape, 0.0, 0.0);
        let split = AxisSplit::new(&shape, &reduced_axes(&shape));
        let s = Arg::Scratch {
            slot: 1,
            bytes: 4 * u64::from(params.channels),
        };
        record_sum(
            rec,
            &split,
            Summand::Value,
            arg(gy),
            None,
            None,
            1.0,
            arg(gbeta),
            0,
        );
        let (y, m) = (Some(arg(gy)), Some(arg(mean)));
        let product = Summand::CentredProduct;
        record_sum(rec, &split, product, arg(x), y, m, 1.0, s.clone(), 0);
        rec.dispatch(
            kernel("bn_grad_gamma"),
            &params,
            vec![s.clone(), arg(rstd), arg(ggamma)],
            params.channel_grid(),
        );
        rec.dispatch(
            kernel("bn_grad_input"),
            &params,
            vec![
                arg(x),
                arg(gy),
                arg(mean),
                arg(rstd),
                arg(gamma),
                arg(gbeta),
                s,
                arg(gx),
            ],
            elementwise_grid(params.total as usize),
        );
    }
}

pub mod cpu {
    //! f64 references on a (N, C, inner) view.

    fn channel(i: usize, c: usize, inner: usize) -> usize {
        (i / inner) % c
    }

    /// Per-channel mean and biased variance.
    pub fn stats(x: &[f64], c: usize, inner: usize) -> (Vec<f64>, Vec<f64>) {
        let n = (x.len() / c) as f64;
        let mut mean = vec![0.0; c];
        for (i, v) in x.iter().enumerate() {
            mean[channel(i, c, inner)] += v / n;
        }
        let mut var = vec![0.0; c];
        for (i, v) in x.iter().enumerate() {
            let k = channel(i, c, inner);
            var[k] += (v - mean[k]).powi(2) / n;
        }
        (mean, var)
    }

    pub fn train(
        x: &[f64],
        c: usize,
        inner: usize,
        gamma: &[f64],
        beta: &[f64],
        eps: f64,
    ) -> Vec<f64> {
        let (mean, var) = stats(x, c, inner);
        eval(x, c, inner, gamma, beta, &mean, &var, eps)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn eval(
        x: &[f64],
        c: usize,
        inner: usize,
        gamma: &[f64],
        beta: &[f64],
        mean: &[f64],
        var: &[f64],
        eps: f64,
    ) -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, v)| {
                let k = channel(i, c, inner);
                (v - mean[k]) / (var[k] + eps).sqrt() * gamma[k] + beta[k]
            })
            .collect()
    }

    /// Running statistics after one training step with `momentum`.
    pub fn running(
        x: &[f64],
        c: usize,
        inner: usize,
        running_mean: &[f64],
        running_var: &[f64],
        momentum: f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let n = (x.len() / c) as f64;
        let (mean, var) = stats(x, c, inner);
        let rm = (0..c)
            .map(|k| (1.0 - momentum) * running_mean[k] + momentum * mean[k])
            .collect();
        let rv = (0..c)
            .map(|k| (1.0 - momentum) * running_var[k] + momentum * var[k] * n / (n - 1.0))
            .collect();
        (rm, rv)
    }

    /// Gradients (x, γ, β) of the training forward.
    pub fn backward(
        x: &[f64],
        c: usize,
        inner: usize,
        gamma: &[f64],
        gy: &[f64],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = (x.len() / c) as f64;
        let (mean, var) = stats(x, c, inner);
        let rstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let xhat = |i: usize| (x[i] - mean[channel(i, c, inner)]) * rstd[channel(i, c, inner)];
        let mut ggamma = vec![0.0; c];
        let mut gbeta = vec![0.0; c];
        for (i, g) in gy.iter().enumerate() {
            let k = channel(i, c, inner);
            ggamma[k] += g * xhat(i);
            gbeta[k] += g;
        }
        let gx = (0..x.len())
            .map(|i| {
                let k = channel(i, c, inner);
                gamma[k] * rstd[k] * (gy[i] - gbeta[k] / n - xhat(i) * ggamma[k] / n)
            })
            .collect();
        (gx, ggamma, gbeta)
    }
}
