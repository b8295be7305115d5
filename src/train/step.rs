use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::engine::{
    AutodiffError, CompileError, Executor, Graph, MemoryReport, PendingValues, Role, Store,
    TensorId,
};
use crate::gpu::Gpu;
use crate::model::ModelOutput;
use crate::ops::add::add;
use crate::ops::cross_entropy::cross_entropy_smoothed;
use crate::ops::mul::scale;
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

/// A submitted step whose losses have not been read yet.
pub struct PendingStep(PendingValues);

/// What a step's loss came to.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLosses {
    /// The total the gradients are of.
    pub loss: f32,
    /// `ce`, then the model's own terms (SF-Head's `con` and `red`), unweighted.
    pub terms: Vec<(&'static str, f32)>,
}

/// One compiled training step: forward, the loss (cross-entropy plus the model's own weighted
/// terms), backward and (optionally) the SGD update of every parameter the loss depends on,
/// recorded once and submitted once per call.
pub struct TrainStep {
    exe: Executor,
    x: TensorId,
    labels: TensorId,
    lr: TensorId,
    loss: TensorId,
    logits: TensorId,
    /// `ce` and the model's terms, unweighted.
    terms: Vec<(&'static str, TensorId)>,
    gradients: Vec<(String, TensorId)>,
    classes: usize,
    /// The model's noise inputs, each with its element count.
    noise: Vec<(TensorId, usize)>,
    /// Where their values come from.
    noise_source: RefCell<NoiseSource>,
}

/// Where the values of a step's noise inputs come from.
enum NoiseSource {
    /// Fresh N(0, 1) draws for every step, in submission order.
    Seeded(Box<ChaCha8Rng>),
    /// The same values every step, the inputs' values one after the other.
    Fixed(Vec<f32>),
}

impl TrainStep {
    /// A step that updates the parameters with `sgd_config`, keeping only the loss.
    pub fn new<O: Into<ModelOutput>>(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        x_shape: &[usize],
        sgd_config: SgdConfig,
        forward: impl FnOnce(&mut Graph, TensorId, TensorId) -> O,
    ) -> Result<Self, TrainError> {
        let options = StepOptions {
            sgd: Some(sgd_config),
            keep_gradients: false,
        };
        Self::build(gpu, store, x_shape, options, forward)
    }

    /// Builds the step for batches of shape `x_shape`. `forward` maps the input and its labels
    /// (the labels for losses that need them) to (N, classes) logits, any loss terms of the
    /// model's own and its noise inputs, and declares the parameters; they live in `store`.
    /// Parameters the loss does not depend on get no gradient and no update, as in PyTorch.
    pub fn build<O: Into<ModelOutput>>(
        gpu: &Arc<Gpu>,
        store: &mut Store,
        x_shape: &[usize],
        options: StepOptions,
        forward: impl FnOnce(&mut Graph, TensorId, TensorId) -> O,
    ) -> Result<Self, TrainError> {
        let mut g = Graph::new();
        let x = g.input("x", x_shape);
        let labels = g.input_u32("labels", &x_shape[..1]);
        let output: ModelOutput = forward(&mut g, x, labels).into();
        let logits = output.logits;
        let classes = g.shape(logits)[1];
        let noise = output.noise.iter().map(|&t| (t, g.numel(t))).collect();
        let ce = cross_entropy_smoothed(&mut g, logits, labels, output.smoothing);
        let mut loss = ce;
        let mut terms = vec![("ce", ce)];
        for term in &output.losses {
            let weighted = scale(&mut g, term.value, term.weight);
            loss = add(&mut g, loss, weighted);
            terms.push((term.name, term.value));
        }
        let params = g.learnables();
        let grads = g.backward_partial(loss, &params)?;
        let lr = g.input("lr", &[1]);
        let pairs: Vec<(TensorId, TensorId)> = params
            .into_iter()
            .zip(grads)
            .filter_map(|(p, gr)| Some((p, gr?)))
            .collect();
        // By state-dict name, in state-dict order: a pack's gradient in its members' parts.
        let mut gradients: Vec<(String, TensorId)> = Vec::new();
        if options.keep_gradients {
            let mut by_parameter: HashMap<TensorId, TensorId> = HashMap::new();
            for &(p, gr) in &pairs {
                if g.tensor(p).role == Role::Pack {
                    let members = g.members(p);
                    let parts = g.unpack(gr, &members);
                    by_parameter.extend(members.into_iter().zip(parts));
                } else {
                    by_parameter.insert(p, gr);
                }
            }
            for p in g.parameters() {
                if let Some(&gr) = by_parameter.get(&p) {
                    gradients.push((g.tensor(p).name.clone(), gr));
                }
            }
        }
        if let Some(config) = options.sgd {
            sgd(&mut g, &pairs, lr, config);
        }
        let mut keep = vec![loss];
        keep.extend(terms.iter().map(|t| t.1));
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
            terms,
            gradients,
            classes,
            noise,
            noise_source: RefCell::new(NoiseSource::Seeded(Box::new(ChaCha8Rng::seed_from_u64(0)))),
        })
    }

    /// Draws the noise from `rng` from now on: the trainer keys it by seed and epoch
    /// (`data::feed::noise_rng`), so that a resumed run draws what an uninterrupted one does.
    pub fn reseed_noise(&self, rng: ChaCha8Rng) {
        *self.noise_source.borrow_mut() = NoiseSource::Seeded(Box::new(rng));
    }

    /// Feeds the noise inputs `values` (all of them, one after the other) at every step instead
    /// of random draws, as a parity check against a recorded step needs.
    pub fn fix_noise(&self, values: Vec<f32>) {
        let want: usize = self.noise.iter().map(|&(_, n)| n).sum();
        assert_eq!(values.len(), want, "noise values for every noise input");
        *self.noise_source.borrow_mut() = NoiseSource::Fixed(values);
    }

    fn write_noise(&self) -> Result<(), TrainError> {
        let mut source = self.noise_source.borrow_mut();
        let mut offset = 0;
        for &(t, n) in &self.noise {
            let values: Vec<f32> = match &mut *source {
                NoiseSource::Seeded(rng) => (0..n)
                    .map(|_| StandardNormal.sample(rng.as_mut()))
                    .collect(),
                NoiseSource::Fixed(all) => all[offset..offset + n].to_vec(),
            };
            offset += n;
            self.exe.write(t, &values)?;
        }
        Ok(())
    }

    /// Runs one step on a batch and returns its loss, waiting for it.
    pub fn step(&self, x: &[f32], labels: &[u32], lr: f32) -> Result<f32, TrainError> {
        let pending = self.submit(x, labels, lr)?;
        Ok(self.losses(pending)?.loss)
    }

    /// Submits one step on a batch without waiting for it: the loss and its terms come back
    /// with [`TrainStep::losses`], which can wait until the next step has been submitted, so
    /// that the device never idles while the host prepares a step. The results are the same
    /// as stepping one at a time.
    pub fn submit(&self, x: &[f32], labels: &[u32], lr: f32) -> Result<PendingStep, TrainError> {
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
        self.write_noise()?;
        let mut read = vec![self.loss];
        read.extend(self.terms.iter().map(|t| t.1));
        Ok(PendingStep(self.exe.run_reading(&read)?))
    }

    /// The loss and its unweighted terms of a submitted step.
    pub fn losses(&self, pending: PendingStep) -> Result<StepLosses, TrainError> {
        let values = self.exe.collect(pending.0)?;
        Ok(StepLosses {
            loss: values[0][0],
            terms: self
                .terms
                .iter()
                .zip(&values[1..])
                .map(|(&(name, _), v)| (name, v[0]))
                .collect(),
        })
    }

    /// The loss terms of the last step, unweighted: `ce`, then the model's own (SF-Head's
    /// `con` and `red`).
    pub fn loss_terms(&self) -> Result<Vec<(&'static str, f32)>, TrainError> {
        self.terms
            .iter()
            .map(|&(name, t)| Ok((name, self.exe.read(t)?[0])))
            .collect()
    }

    /// The logits of the last step (only with `keep_gradients`).
    pub fn logits(&self) -> Result<Vec<f32>, TrainError> {
        Ok(self.exe.read(self.logits)?)
    }

    /// The gradient of every parameter the loss depends on, by parameter name in declaration
    /// order (empty without `keep_gradients`).
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
