use std::sync::Arc;

use crate::engine::{AutodiffError, CompileError, Executor, Graph, MemoryReport, Store, TensorId};
use crate::gpu::Gpu;
use crate::ops::cross_entropy::cross_entropy;
use crate::ops::sgd::{SgdConfig, sgd};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("label {label} at batch position {position} is not below the {classes} classes")]
    Label {
        label: u32,
        position: usize,
        classes: usize,
    },
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
    #[error(transparent)]
    Compile(#[from] CompileError),
}

/// What a [`TrainStep`] does besides forward, loss and backward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOptions {
    /// The update applied after the backward; `None` leaves the parameters as they are.
    pub sgd: Option<SgdConfig>,
    /// Keep the logits and every parameter gradient readable after a step.
    pub keep_gradients: bool,
}

/// One compiled training step: forward, cross-entropy, backward and (optionally) the SGD update
/// of every parameter, recorded once and submitted once per call.
pub struct TrainStep {
    exe: Executor,
    x: TensorId,
    labels: TensorId,
    lr: TensorId,
    loss: TensorId,
    logits: TensorId,
    gradients: Vec<(String, TensorId)>,
    classes: usize,
}

impl TrainStep {
    /// A step that updates the parameters with `sgd_config`, keeping only the loss.
    pub fn new(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        x_shape: &[usize],
        sgd_config: SgdConfig,
        forward: impl FnOnce(&mut Graph, TensorId) -> TensorId,
    ) -> Result<Self, TrainError> {
        let options = StepOptions {
            sgd: Some(sgd_config),
            keep_gradients: false,
        };
        Self::build(gpu, store, x_shape, options, forward)
    }

    /// Builds the step for batches of shape `x_shape`. `forward` maps the input to (N, classes)
    /// logits and declares the parameters; they live in `store`.
    pub fn build(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        x_shape: &[usize],
        options: StepOptions,
        forward: impl FnOnce(&mut Graph, TensorId) -> TensorId,
    ) -> Result<Self, TrainError> {
        let mut g = Graph::new();
        let x = g.input("x", x_shape);
        let logits = forward(&mut g, x);
        let (rows, classes) = (g.shape(logits)[0], g.shape(logits)[1]);
        let labels = g.input_u32("labels", &[rows]);
        let loss = cross_entropy(&mut g, logits, labels);
        let params = g.parameters();
        let grads = g.backward(loss, &params)?;
        let lr = g.input("lr", &[1]);
        let gradients: Vec<(String, TensorId)> = params
            .iter()
            .zip(&grads)
            .map(|(&p, &gr)| (g.tensor(p).name.clone(), gr))
            .collect();
        if let Some(config) = options.sgd {
            let pairs: Vec<_> = params.into_iter().zip(grads).collect();
            sgd(&mut g, &pairs, lr, config);
        }
        let mut keep = vec![loss];
        if options.keep_gradients {
            keep.push(logits);
            keep.extend(gradients.iter().map(|(_, t)| *t));
        }
        let exe = Executor::compile(gpu, &g, store, &keep)?;
        Ok(Self {
            exe,
            x,
            labels,
            lr,
            loss,
            logits,
            gradients: if options.keep_gradients {
                gradients
            } else {
                Vec::new()
            },
            classes,
        })
    }

    /// Runs one step on a batch and returns its loss (read back after the step).
    pub fn step(&self, x: &[f32], labels: &[u32], lr: f32) -> Result<f32, TrainError> {
        if let Some((position, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= self.classes)
        {
            return Err(TrainError::Label {
                label,
                position,
                classes: self.classes,
            });
        }
        self.exe.write(self.x, x)?;
        self.exe.write_u32(self.labels, labels)?;
        self.exe.write(self.lr, &[lr])?;
        self.exe.run();
        Ok(self.exe.read(self.loss)?[0])
    }

    /// The logits of the last step (only with `keep_gradients`).
    pub fn logits(&self) -> Result<Vec<f32>, TrainError> {
        Ok(self.exe.read(self.logits)?)
    }

    /// Every parameter's gradient of the last step, by parameter name in declaration order
    /// (empty without `keep_gradients`).
    pub fn gradients(&self) -> Result<Vec<(String, Vec<f32>)>, TrainError> {
        self.gradients
            .iter()
            .map(|(name, t)| Ok((name.clone(), self.exe.read(*t)?)))
            .collect()
    }

    pub fn memory(&self) -> &MemoryReport {
        self.exe.memory()
    }

    pub fn executor(&self) -> &Executor {
        &self.exe
    }
}
