//! Batch normalisation with PyTorch semantics, per channel (axis 1) over every other axis:
//! BatchNorm2d on (B, C, T, V), BatchNorm1d on (N, C) or (N, C, T).
//!
//! Training normalises with the batch mean and biased variance and updates the running
//! statistics in place (momentum 0.1, unbiased variance); evaluation uses the running statistics.
//! The training forward saves mean and 1/σ for the backward:
//! gx = γ·rstd·(g − mean(g) − x̂·mean(g·x̂)), gγ = Σ g·x̂, gβ = Σ g.
//!
//! A training BN is one dispatch each way where a channel has at most 65,536 elements and the
//! adapter binds nine storage buffers per stage (`Tuning::single_dispatch_bn`): one workgroup
//! per channel (`batch_norm_stats.wgsl`) sums the statistics, updates the running ones and
//! normalises; backward it sums Σg and Σg·(x − mean), writes gγ and gβ, then the input gradient.
//! Longer channels use `reduce::record_sum`'s two-pass trees, a per-channel and a per-element
//! kernel (six dispatches each way). Both paths add in the same order, so they give the same
//! bits.
//!
//! [`BatchNorm::apply_relu`] and [`BatchNorm::apply_sigmoid`] are ReLU(BN(x)) and σ(BN(x)) as
//! one op: the activation is applied in the same pass, and the backward takes the incoming
//! gradient back through it from the output before BN's own backward.

use bytemuck::{Pod, Zeroable};

use super::reduce::{AxisSplit, Summand, record_sum};
use super::{arg, elementwise_grid};
use crate::engine::{Arg, AutodiffError, GradContext, Graph, Op, Recorder, TensorId};
use crate::gpu::{Kernel, grid_1d};
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
        self.apply_then(g, x, mode, Activation::Identity)
    }

    /// ReLU(BN(`x`)), with the same values as [`relu`](super::relu::relu) of [`Self::apply`]
    /// and one dispatch fewer each way.
    pub fn apply_relu(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        self.apply_then(g, x, mode, Activation::Relu)
    }

    /// σ(BN(`x`)), with the same values as [`sigmoid`](super::sigmoid::sigmoid) of
    /// [`Self::apply`] and one dispatch fewer each way.
    pub fn apply_sigmoid(&self, g: &mut Graph, x: TensorId, mode: Mode) -> TensorId {
        self.apply_then(g, x, mode, Activation::Sigmoid)
    }

    fn apply_then(&self, g: &mut Graph, x: TensorId, mode: Mode, act: Activation) -> TensorId {
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
                    act,
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
                g.push(BatchNormEval { eps: self.eps, act }, &inputs, &[y]);
            }
        }
        y
    }
}

fn reduced_axes(shape: &[usize]) -> Vec<usize> {
    [0].into_iter().chain(2..shape.len()).collect()
}

/// Elements in each chunk of a channel's sum: `reduce::record_sum`'s split, so that the fused
/// statistics add in the tree path's order.
const CHUNK: usize = super::reduce::PER_WORKGROUP;
/// Channels of up to this many chunks (65,536 elements) are reduced by one workgroup each, in
/// one dispatch with their per-channel arithmetic. Longer channels take the tree path, whose
/// chunks run as workgroups of their own: one workgroup per channel would leave a GPU mostly
/// idle (a BN of 64 channels of 204,800 elements each at NTU batch 64 × 64 frames would run 64
/// workgroups), and longer serial loops would only add latency.
const FUSED_MAX_CHUNKS: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    total: u32,
    channels: u32,
    inner: u32,
    count: u32,
    eps: f32,
    momentum: f32,
    /// The split of each channel's elements for the fused statistics.
    chunks: u32,
    chunk_len: u32,
    /// 1/count, rounded once here as the tree path's scale is.
    inv_count: f32,
    _pad: [u32; 3],
}

impl Params {
    fn new(shape: &[usize], eps: f32, momentum: f32) -> Self {
        let total: usize = shape.iter().product();
        let count = total / shape[1];
        let chunks = count.div_ceil(CHUNK).max(1);
        Self {
            total: total as u32,
            channels: shape[1] as u32,
            inner: shape[2..].iter().product::<usize>() as u32,
            count: count as u32,
            eps,
            momentum,
            chunks: chunks as u32,
            chunk_len: count.div_ceil(chunks) as u32,
            inv_count: 1.0 / count as f32,
            _pad: [0; 3],
        }
    }

    fn channel_grid(&self) -> [u32; 3] {
        [self.channels.div_ceil(64), 1, 1]
    }

    /// Whether the statistics are reduced by one workgroup per channel (`batch_norm_stats.wgsl`)
    /// rather than by `record_sum`'s trees; by shape only, so every adapter takes the same path.
    fn fused(&self) -> bool {
        self.chunks as usize <= FUSED_MAX_CHUNKS
    }

    /// One workgroup per channel.
    fn workgroup_per_channel_grid(&self) -> [u32; 3] {
        grid_1d(self.channels)
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(shader!("batch_norm"), entry)
}

/// What a BatchNorm applies to its output in the same pass (`ACT` of
/// `shaders/lib/activation.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Identity = 0,
    Relu = 1,
    Sigmoid = 2,
}

/// A per-channel workgroup entry of `batch_norm_stats.wgsl`.
fn channel_kernel(rec: &Recorder<'_>, entry: &'static str, act: Activation) -> Kernel {
    rec.tuning()
        .tree(Kernel::new(shader!("batch_norm_stats"), entry))
        .with("ACT", act as u32)
}

/// Whether a training BN of `params` runs as one workgroup per channel, one dispatch each way.
fn one_dispatch(rec: &Recorder<'_>, params: &Params) -> bool {
    params.fused() && rec.tuning().single_dispatch_bn
}

#[derive(Debug)]
struct BatchNormTrain {
    eps: f32,
    momentum: f32,
    act: Activation,
}

#[derive(Debug)]
struct BatchNormEval {
    eps: f32,
    act: Activation,
}

/// Inputs x, g, mean, rstd, γ, and with an activation the forward output y.
#[derive(Debug)]
struct BatchNormGrad {
    act: Activation,
}

impl BatchNormTrain {
    /// Records the step with the fused statistics or with the tree path.
    fn record_path(
        &self,
        rec: &mut Recorder<'_>,
        inputs: &[TensorId],
        outputs: &[TensorId],
        fused: bool,
    ) {
        let [x, gamma, beta, running_mean, running_var, tracked] =
            inputs.try_into().expect("6 inputs");
        let [y, mean, rstd] = outputs.try_into().expect("3 outputs");
        let shape = rec.shape(x).to_vec();
        let params = Params::new(&shape, self.eps, self.momentum);
        if fused {
            rec.dispatch(
                channel_kernel(rec, "bn_train", self.act),
                &params,
                vec![
                    arg(x),
                    arg(mean),
                    arg(rstd),
                    arg(running_mean),
                    arg(running_var),
                    arg(tracked),
                    arg(gamma),
                    arg(beta),
                    arg(y),
                ],
                params.workgroup_per_channel_grid(),
            );
            return;
        }
        let stats = [mean, rstd, running_mean, running_var, tracked];
        record_tree_stats(rec, &params, &shape, x, stats);
        rec.dispatch(
            kernel("bn_normalize").with("ACT", self.act as u32),
            &params,
            vec![arg(x), arg(mean), arg(rstd), arg(gamma), arg(beta), arg(y)],
            elementwise_grid(params.total as usize),
        );
    }
}

impl Op for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
        let params = Params::new(rec.shape(inputs[0]), self.eps, self.momentum);
        self.record_path(rec, inputs, outputs, one_dispatch(rec, &params));
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
        let mut inputs = vec![x, gy, mean, rstd, gamma];
        inputs.extend((self.act != Activation::Identity).then_some(ctx.outputs[0]));
        g.push(
            BatchNormGrad { act: self.act },
            &inputs,
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
            kernel("bn_normalize").with("ACT", self.act as u32),
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
        let fused = one_dispatch(rec, &Params::new(rec.shape(inputs[0]), 0.0, 0.0));
        record_grad(rec, inputs, outputs, self.act, fused);
    }
}

/// Records the gradients in one dispatch or with the tree path; inputs as [`BatchNormGrad`]'s.
fn record_grad(
    rec: &mut Recorder<'_>,
    inputs: &[TensorId],
    outputs: &[TensorId],
    act: Activation,
    fused: bool,
) {
    let (x, gy, mean, rstd, gamma) = (inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
    let y = (act != Activation::Identity).then(|| inputs[5]);
    let [gx, ggamma, gbeta] = outputs.try_into().expect("3 outputs");
    let shape = rec.shape(x).to_vec();
    let params = Params::new(&shape, 0.0, 0.0);
    if fused {
        rec.dispatch(
            channel_kernel(rec, "bn_grad", act),
            &params,
            vec![
                arg(x),
                arg(gy),
                arg(mean),
                arg(rstd),
                arg(gbeta),
                arg(ggamma),
                arg(gamma),
                arg(gx),
                // Read with an activation only; the kernel's layout binds a buffer there either way.
                arg(y.unwrap_or(x)),
            ],
            params.workgroup_per_channel_grid(),
        );
        return;
    }
    let gy = match y {
        Some(y) => {
            let masked = Arg::Scratch {
                slot: 2,
                bytes: 4 * u64::from(params.total),
            };
            if act == Activation::Sigmoid {
                super::sigmoid::record_grad(rec, y, gy, masked.clone());
            } else {
                super::relu::record_mask(rec, y, gy, masked.clone());
            }
            masked
        }
        None => arg(gy),
    };
    let s = Arg::Scratch {
        slot: 1,
        bytes: 4 * u64::from(params.channels),
    };
    let sums = [gbeta, ggamma];
    record_tree_grad_stats(
        rec,
        &params,
        &shape,
        [x, mean, rstd],
        gy.clone(),
        sums,
        s.clone(),
    );
    rec.dispatch(
        kernel("bn_grad_input"),
        &params,
        vec![
            arg(x),
            gy,
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

/// Mean, rstd and the running update through `record_sum`'s trees, for long channels.
fn record_tree_stats(
    rec: &mut Recorder<'_>,
    params: &Params,
    shape: &[usize],
    x: TensorId,
    [mean, rstd, running_mean, running_var, tracked]: [TensorId; 5],
) {
    let split = AxisSplit::new(shape, &reduced_axes(shape));
    let inv_n = params.inv_count;
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
        params,
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
}

/// gβ = Σ g, s = Σ g·(x − mean) and gγ = s·rstd through `record_sum`'s trees, for long channels.
fn record_tree_grad_stats(
    rec: &mut Recorder<'_>,
    params: &Params,
    shape: &[usize],
    [x, mean, rstd]: [TensorId; 3],
    gy: Arg,
    [gbeta, ggamma]: [TensorId; 2],
    s: Arg,
) {
    let split = AxisSplit::new(shape, &reduced_axes(shape));
    record_sum(
        rec,
        &split,
        Summand::Value,
        gy.clone(),
        None,
        None,
        1.0,
        arg(gbeta),
        0,
    );
    let (y, m) = (Some(gy), Some(arg(mean)));
    let product = Summand::CentredProduct;
    record_sum(rec, &split, product, arg(x), y, m, 1.0, s.clone(), 0);
    rec.dispatch(
        kernel("bn_grad_gamma"),
        params,
        vec![s, arg(rstd), arg(ggamma)],
        params.channel_grid(),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Executor, Store};
    use crate::gpu::Tuning;
    use crate::testing::{gpu, uniform};

    /// The training forward on a chosen path.
    #[derive(Debug)]
    struct TrainOn {
        fused: bool,
        act: Activation,
    }

    impl Op for TrainOn {
        fn name(&self) -> &'static str {
            if self.fused { "fused" } else { "tree" }
        }

        fn has_side_effects(&self) -> bool {
            true
        }

        fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
            let op = BatchNormTrain {
                eps: DEFAULT_EPS,
                momentum: DEFAULT_MOMENTUM,
                act: self.act,
            };
            op.record_path(rec, inputs, outputs, self.fused);
        }
    }

    /// The gradients on a chosen path.
    #[derive(Debug)]
    struct GradOn {
        fused: bool,
        act: Activation,
    }

    impl Op for GradOn {
        fn name(&self) -> &'static str {
            if self.fused {
                "fused_grad"
            } else {
                "tree_grad"
            }
        }

        fn record(&self, rec: &mut Recorder<'_>, inputs: &[TensorId], outputs: &[TensorId]) {
            record_grad(rec, inputs, outputs, self.act, self.fused);
        }
    }

    /// Forward and gradients of one BN (with its activation `act`) on `shape` by both paths,
    /// compiled with `tuning`: every output and running statistic of the fused path, then the
    /// same of the tree path, and the dispatch labels.
    fn both_paths(
        shape: &[usize],
        tuning: Tuning,
        act: Activation,
    ) -> ([Vec<Vec<f32>>; 2], Vec<String>) {
        let c = shape[1];
        let n: usize = shape.iter().product();
        let mut g = Graph::new();
        let x = g.input("x", shape);
        let gy = g.input("gy", shape);
        let gamma = g.parameter("weight", &[c], uniform(1, c, 0.5, 1.5));
        let beta = g.parameter("bias", &[c], uniform(2, c, -0.5, 0.5));
        let mut keep = Vec::new();
        let mut per_path = Vec::new();
        for fused in [true, false] {
            let key = |k: &str| format!("{fused}.{k}");
            let running_mean = g.state(&key("running_mean"), &[c], uniform(3, c, -1.0, 1.0));
            let running_var = g.state(&key("running_var"), &[c], uniform(4, c, 0.5, 2.0));
            let tracked = g.state(&key("num_batches_tracked"), &[1], vec![0.0]);
            let y = g.activation("y", shape);
            let mean = g.activation("mean", &[c]);
            let rstd = g.activation("rstd", &[c]);
            let inputs = [x, gamma, beta, running_mean, running_var, tracked];
            g.push(TrainOn { fused, act }, &inputs, &[y, mean, rstd]);
            let gx = g.activation("gx", shape);
            let ggamma = g.activation("ggamma", &[c]);
            let gbeta = g.activation("gbeta", &[c]);
            let mut inputs = vec![x, gy, mean, rstd, gamma];
            inputs.extend((act != Activation::Identity).then_some(y));
            g.push(GradOn { fused, act }, &inputs, &[gx, ggamma, gbeta]);
            let outputs = [y, mean, rstd, gx, ggamma, gbeta];
            keep.extend(outputs);
            per_path.push([&outputs[..], &[running_mean, running_var, tracked]].concat());
        }
        let mut store = Store::new();
        let exe = Executor::compile_tuned(&gpu(), &g, &mut store, &keep, tuning).unwrap();
        let offset: Vec<f32> = uniform(5, n, -2.0, 3.0).iter().map(|v| v + 7.0).collect();
        exe.write(x, &offset).unwrap();
        exe.write(gy, &uniform(6, n, -1.0, 1.0)).unwrap();
        exe.run();
        let read = |ts: &[TensorId]| ts.iter().map(|&t| exe.read(t).unwrap()).collect();
        let values = [read(&per_path[0]), read(&per_path[1])];
        (values, exe.dispatch_labels().to_vec())
    }

    fn dispatches(labels: &[String], op: &str) -> usize {
        let prefix = format!("{op}#");
        labels.iter().filter(|l| l.starts_with(&prefix)).count()
    }

    #[test]
    fn fused_batch_norm_takes_one_dispatch_each_way() {
        for act in [Activation::Identity, Activation::Relu, Activation::Sigmoid] {
            let (_, labels) = both_paths(&[4, 6, 9, 5], Tuning::CPU, act);
            assert_eq!(dispatches(&labels, "fused"), 1, "{labels:?}");
            assert_eq!(dispatches(&labels, "fused_grad"), 1, "{labels:?}");
            // Two single-pass trees, then the per-channel and the per-element kernel; backward
            // the activation's gradient first.
            assert_eq!(dispatches(&labels, "tree"), 4, "{labels:?}");
            let mask = usize::from(act != Activation::Identity);
            assert_eq!(dispatches(&labels, "tree_grad"), 4 + mask, "{labels:?}");
        }
    }

    /// The fused kernels add in the tree path's order, so the choice by shape never changes a
    /// result: one chunk, a chunk boundary inside the last element, inner = 1, 2 and 15 chunks,
    /// and the longest fused channel (16 chunks), with both tree variants.
    #[test]
    fn fused_and_tree_paths_agree_bit_for_bit() {
        let shapes: [&[usize]; 6] = [
            &[5, 3, 7, 11],
            &[2, 7, 2049],
            &[9, 13],
            &[4, 8, 52, 20],
            &[3, 5, 20000],
            &[2, 2, 32768],
        ];
        for shape in shapes {
            assert!(Params::new(shape, 0.0, 0.0).fused(), "{shape:?}");
            for (tuning, act) in [
                (Tuning::CPU, Activation::Identity),
                (Tuning::GPU, Activation::Identity),
                (Tuning::CPU, Activation::Relu),
                (Tuning::CPU, Activation::Sigmoid),
            ] {
                let ([fused, tree], _) = both_paths(shape, tuning, act);
                for (k, (a, b)) in fused.iter().zip(&tree).enumerate() {
                    let same = a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits());
                    assert!(same, "{shape:?} {tuning:?} {act:?}: output {k} differs");
                }
            }
        }
    }

    #[test]
    fn long_channels_take_the_tree_path() {
        assert!(Params::new(&[2, 3, 32768], 0.0, 0.0).fused());
        assert!(!Params::new(&[2, 3, 32769], 0.0, 0.0).fused());
        assert!(!Params::new(&[128, 64, 64, 25], 0.0, 0.0).fused());
    }
}
