//! Decodes the SF-Head fixtures of `tests/fixtures/README.md`: one PyTorch training step of
//! CTR-GCN + SF-Head (`ctrgcn_sfhead_{tap,inline}.safetensors`) and the 10-step trajectories
//! (`trajectory_ntu60.safetensors`). Keys follow the state dict the fixture lists in its metadata.

use std::collections::HashMap;
use std::path::Path;

use sfhead::data::{DataError, Place};

use super::ctrgcn_fixture::{Named, Reader, Tensor};

pub const STEP_FORMAT: &str = "sfhead-sfhead-fixture-1";
pub const TRAJECTORY_FORMAT: &str = "sfhead-trajectory-fixture-1";

/// The state a fixture's model starts from: float tensors and BN counters by state-dict key.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    pub floats: Named<Tensor>,
    pub batches_tracked: Named<i64>,
}

impl Weights {
    fn read(file: &Reader<'_>, keys: &[String]) -> Result<Self, DataError> {
        let mut weights = Self::default();
        for key in keys {
            if key.ends_with("num_batches_tracked") {
                let count = file.i64(&format!("weight.{key}"), &[])?[0];
                weights.batches_tracked.entries.push((key.clone(), count));
            } else {
                let shape = file.shape(&format!("weight.{key}"))?;
                let t = file.int8_scaled(key, &shape)?;
                weights.floats.entries.push((key.clone(), t));
            }
        }
        Ok(weights)
    }
}

/// One training step of CTR-GCN + SF-Head in float64, with PyTorch's float32 envelope.
#[derive(Debug, Clone)]
pub struct StepFixture {
    pub metadata: HashMap<String, String>,
    pub x: Tensor,
    pub y: Vec<i64>,
    pub logits: Tensor,
    /// `loss` (total), `loss.ce`, `loss.con`, `loss.red`.
    pub losses: Named<f32>,
    pub weights: Weights,
    /// Gradients of the parameters that have one, in state-dict order.
    pub grads: Named<Tensor>,
    /// Running statistics after the forward.
    pub running_after: Named<Tensor>,
    /// Per parameter with a gradient: the largest relative L2 distance of a float32 PyTorch
    /// run on a perturbed input from the float64 gradient.
    pub envelope: Named<f32>,
    /// The same for `logits`, `loss`, `loss.ce`, `loss.con`, `loss.red`.
    pub output_envelope: Named<f32>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))
}

fn expect_format(
    path: &Path,
    metadata: &HashMap<String, String>,
    format: &str,
) -> Result<(), DataError> {
    match metadata.get("format") {
        Some(f) if f == format => Ok(()),
        other => Err(DataError::new(
            path,
            Place::Key("__metadata__.format".into()),
            format!("expected `{format}`, found {other:?}"),
        )),
    }
}

fn lines(metadata: &HashMap<String, String>, key: &str) -> Vec<String> {
    metadata
        .get(key)
        .map(|v| {
            v.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

impl StepFixture {
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let bytes = read_file(path)?;
        let file = Reader::new(path, &bytes)?;
        let metadata = file.metadata()?;
        expect_format(path, &metadata, STEP_FORMAT)?;
        let keys = lines(&metadata, "state_dict_keys");
        let no_grad = lines(&metadata, "no_grad");
        let x = file.f32("x", None)?;
        let n = x.shape[0];
        let mut losses = Named::default();
        let mut output_envelope = Named::default();
        for key in ["loss", "loss.ce", "loss.con", "loss.red"] {
            losses
                .entries
                .push((key.to_string(), file.f32(key, Some(&[]))?.data[0]));
        }
        for key in ["logits", "loss", "loss.ce", "loss.con", "loss.red"] {
            let value = file.f32(&format!("f32_envelope.{key}"), Some(&[]))?.data[0];
            output_envelope.entries.push((key.to_string(), value));
        }
        let weights = Weights::read(&file, &keys)?;
        let mut grads = Named::default();
        let mut running_after = Named::default();
        for (key, w) in &weights.floats.entries {
            if key.contains("running_") {
                let after = file.f32(&format!("after.{key}"), Some(&w.shape))?;
                running_after.entries.push((key.clone(), after));
            } else if !no_grad.contains(key) {
                grads
                    .entries
                    .push((key.clone(), file.f24(&format!("grad.{key}"), &w.shape)?));
            }
        }
        let envelope_values = file.f32("f32_envelope", Some(&[grads.entries.len()]))?.data;
        let envelope = Named {
            entries: grads
                .entries
                .iter()
                .map(|(k, _)| k.clone())
                .zip(envelope_values)
                .collect(),
        };
        Ok(Self {
            y: file.i64("y", &[n])?,
            logits: file.f32("logits", None)?,
            x,
            metadata,
            losses,
            weights,
            grads,
            running_after,
            envelope,
            output_envelope,
        })
    }

    pub fn loss(&self, key: &str) -> f32 {
        *self.losses.get(key).unwrap_or_else(|| panic!("{key}"))
    }
}

/// One run of a trajectory: the float64 loss at each step and PyTorch's float32 envelope.
#[derive(Debug, Clone)]
pub struct Trajectory {
    pub loss: Vec<f32>,
    /// Largest |loss₃₂ − loss₆₄| over float32 runs on perturbed inputs, per step.
    pub envelope: Vec<f32>,
}

/// Ten SGD steps of CTR-GCN and of CTR-GCN + SF-Head from the same weights on the same batch.
#[derive(Debug, Clone)]
pub struct TrajectoryFixture {
    pub metadata: HashMap<String, String>,
    pub x: Tensor,
    pub y: Vec<i64>,
    pub weights: Weights,
    pub ctrgcn: Trajectory,
    pub sfhead: Trajectory,
}

impl TrajectoryFixture {
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let bytes = read_file(path)?;
        let file = Reader::new(path, &bytes)?;
        let metadata = file.metadata()?;
        expect_format(path, &metadata, TRAJECTORY_FORMAT)?;
        let keys = lines(&metadata, "state_dict_keys");
        let x = file.f32("x", None)?;
        let n = x.shape[0];
        let run = |name: &str| -> Result<Trajectory, DataError> {
            Ok(Trajectory {
                loss: file.f32(&format!("{name}.loss"), None)?.data,
                envelope: file.f32(&format!("{name}.envelope"), None)?.data,
            })
        };
        Ok(Self {
            y: file.i64("y", &[n])?,
            weights: Weights::read(&file, &keys)?,
            ctrgcn: run("ctrgcn")?,
            sfhead: run("sfhead")?,
            x,
            metadata,
        })
    }
}
