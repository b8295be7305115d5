//! Time of one CTR-GCN training step (forward, loss, backward, SGD) and of one evaluation
//! forward on the adapter in use, with the planner's memory.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::engine::{Executor, Graph, MemoryReport, Store};
use crate::gpu::Gpu;
use crate::model::ctrgcn::{CtrGcnConfig, Dataset, IN_CHANNELS, Placement};
use crate::model::init::Init;
use crate::model::network::Network;
use crate::ops::batch_norm::Mode;
use crate::ops::sgd::SgdConfig;
use crate::train::TrainStep;

#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub adapter: String,
    /// The backbone, as people name it (CTR-GCN, ST-GCN, …).
    pub model: String,
    pub dataset: String,
    /// off, tap or inline.
    pub sfhead: String,
    pub batch: usize,
    pub frames: usize,
    pub milliseconds_per_step: f64,
    pub samples_per_second: f64,
    pub activation_bytes: u64,
    pub unshared_activation_bytes: u64,
    pub persistent_bytes: u64,
    pub scratch_bytes: u64,
    pub dispatches: usize,
    /// The same model's evaluation forward on the same batch.
    pub eval_milliseconds_per_step: f64,
    pub eval_dispatches: usize,
    /// Time and dispatches per kernel (op and shader entry point) over one profiled step,
    /// largest time first; empty unless profiling was asked for.
    pub kernels: Vec<KernelProfile>,
}

/// One kernel's share of a profiled step.
#[derive(Debug, Clone, Serialize)]
pub struct KernelProfile {
    /// `op:entry`.
    pub kernel: String,
    pub milliseconds: f64,
    pub dispatches: usize,
}

/// Builds the step for `batch` samples of `frames` frames, runs two warm-up steps, then times
/// `steps` steps, each reading its loss back as a training loop does.
pub fn time_step(
    gpu: &Arc<Gpu>,
    dataset: Dataset,
    config: CtrGcnConfig,
    batch: usize,
    frames: usize,
    steps: usize,
    profile: bool,
) -> anyhow::Result<StepTiming> {
    let backbone = config.backbone;
    let sfhead = match &config.sf_head {
        None => "off",
        Some(o) if o.placement == Placement::Tap => "tap",
        Some(_) => "inline",
    }
    .to_string();
    let (joints, persons, classes) = (config.joints(), config.persons, config.classes);
    let shape = [batch, IN_CHANNELS, frames, joints, persons];
    let mut store = Store::new();
    let step = TrainStep::new(
        gpu,
        &mut store,
        &shape,
        SgdConfig::default(),
        |g, x, labels| Network::new(g, config.clone(), 1).forward(g, x, Some(labels), Mode::Train),
    )?;
    let x = Init::new(1).uniform(shape.iter().product(), -1.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|i| (i % classes) as u32).collect();
    for _ in 0..2 {
        step.step(&x, &labels, 0.01)?;
    }
    // As the trainer runs: each step submitted before the previous one's losses are read.
    let start = Instant::now();
    let mut pending = step.submit(&x, &labels, 0.01)?;
    for _ in 1..steps.max(1) {
        let next = step.submit(&x, &labels, 0.01)?;
        step.losses(std::mem::replace(&mut pending, next))?;
    }
    step.losses(pending)?;
    let seconds = start.elapsed().as_secs_f64() / steps.max(1) as f64;

    let mut g = Graph::new();
    let input = g.input("x", &shape);
    let logits = Network::new(&mut g, config, 1)
        .forward(&mut g, input, None, Mode::Eval)
        .logits;
    let eval = Executor::compile(gpu, &g, &mut store, &[logits])?;
    eval.write(input, &x)?;
    eval.run();
    eval.read(logits)?;
    let start = Instant::now();
    for _ in 0..steps.max(1) {
        eval.write(input, &x)?;
        eval.run();
        eval.read(logits)?;
    }
    let eval_seconds = start.elapsed().as_secs_f64() / steps.max(1) as f64;
    let mut kernels: Vec<KernelProfile> = Vec::new();
    if profile {
        for (label, time) in step.executor().profile() {
            // Labels are `op#node:entry`; group by the op and its kernel entry.
            let (op, entry) = label.split_once(':').unwrap_or((&label, ""));
            let op = op.split('#').next().unwrap_or(op);
            let kernel = format!("{op}:{entry}");
            let milliseconds = time.as_secs_f64() * 1e3;
            match kernels.iter_mut().find(|k| k.kernel == kernel) {
                Some(k) => {
                    k.milliseconds += milliseconds;
                    k.dispatches += 1;
                }
                None => kernels.push(KernelProfile {
                    kernel,
                    milliseconds,
                    dispatches: 1,
                }),
            }
        }
        kernels.sort_by(|a, b| b.milliseconds.total_cmp(&a.milliseconds));
    }
    let MemoryReport {
        activation_bytes,
        unshared_activation_bytes,
        persistent_bytes,
        scratch_bytes,
        ..
    } = step.memory().clone();
    Ok(StepTiming {
        adapter: gpu.report().summary(),
        model: backbone.title().to_string(),
        dataset: format!("{dataset:?}").to_lowercase(),
        sfhead,
        batch,
        frames,
        milliseconds_per_step: seconds * 1e3,
        samples_per_second: batch as f64 / seconds,
        activation_bytes,
        unshared_activation_bytes,
        persistent_bytes,
        scratch_bytes,
        dispatches: step.executor().dispatch_labels().len(),
        eval_milliseconds_per_step: eval_seconds * 1e3,
        eval_dispatches: eval.dispatch_labels().len(),
        kernels,
    })
}
