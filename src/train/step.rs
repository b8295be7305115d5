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

/// One compiled training step: forward, cross-entropy, backward and the SGD update of every
/// parameter, recorded once and submitted once per call.
pub struct TrainStep {
    exe: Executor,
    x: TensorId,
    labels: TensorId,
    lr: TensorId,
    loss: TensorId,
    classes: usize,
}

impl TrainStep {
    /// Builds the step for batches of shape `x_shape`. `forward` maps the input to (N, classes)
    /// logits and declares the parameters; they live in `store`.
    pub fn new(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        x_shape: &[usize],
        sgd_config: SgdConfig,
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
        let pairs: Vec<_> = params.into_iter().zip(grads).collect();
        sgd(&mut g, &pairs, lr, sgd_config);
        let exe = Executor::compile(gpu, &g, store, &[loss])?;
        Ok(Self {
            exe,
            x,
            labels,
            lr,
            loss,
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

    pub fn memory(&self) -> &MemoryReport {
        self.exe.memory()
    }

    pub fn executor(&self) -> &Executor {
        &self.exe
    }
}
