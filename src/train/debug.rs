//! `sfhead debug grads`: one training-mode forward and backward of a model on given weights and a
//! given batch, written out for an outside reference (PyTorch, say) to compare: the logits, the
//! loss and the gradient of every parameter under its PyTorch key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};

use super::checkpoint::{OutputTensor, load, write_tensors};
use super::step::{StepOptions, TrainStep};
use crate::data::{DataError, Place};
use crate::engine::Store;
use crate::gpu::Gpu;
use crate::model::ctrgcn::{CtrGcnConfig, Dataset, IN_CHANNELS};
use crate::model::network::Network;
use crate::ops::batch_norm::Mode;

/// A batch read from a safetensors file: `x` (N, 3, T, V, M) and `y` (N) class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub x: Vec<f32>,
    pub shape: Vec<usize>,
    pub labels: Vec<u32>,
}

fn key_error(path: &Path, key: &str, message: impl Into<String>) -> DataError {
    DataError::new(path, Place::Key(key.into()), message)
}

/// Reads `x` (F32 or F64) and `y` (any integer type, non-negative) from `path`.
pub fn read_batch(path: &Path) -> Result<Batch, DataError> {
    let bytes = std::fs::read(path)
        .map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| DataError::new(path, Place::File, format!("not a safetensors file: {e}")))?;
    let x = file
        .tensor("x")
        .map_err(|_| key_error(path, "x", "missing: the batch needs `x` (N, C, T, V, M)"))?;
    if x.shape().len() != 5 {
        return Err(key_error(
            path,
            "x",
            format!("shape {:?} is not (N, C, T, V, M)", x.shape()),
        ));
    }
    let values: Vec<f32> = match x.dtype() {
        Dtype::F32 => bytemuck::pod_collect_to_vec(x.data()),
        Dtype::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(x.data())
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => {
            return Err(key_error(
                path,
                "x",
                format!("dtype {other:?}, expected F32 or F64"),
            ));
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(key_error(path, "x", format!("value {i} is not finite")));
    }
    let y = file
        .tensor("y")
        .map_err(|_| key_error(path, "y", "missing: the batch needs labels `y` (N)"))?;
    if y.shape() != [x.shape()[0]] {
        return Err(key_error(
            path,
            "y",
            format!("shape {:?}, expected [{}]", y.shape(), x.shape()[0]),
        ));
    }
    let labels: Vec<i64> = match y.dtype() {
        Dtype::I64 => bytemuck::pod_collect_to_vec(y.data()),
        Dtype::I32 => bytemuck::pod_collect_to_vec::<u8, i32>(y.data())
            .into_iter()
            .map(i64::from)
            .collect(),
        Dtype::U32 => bytemuck::pod_collect_to_vec::<u8, u32>(y.data())
            .into_iter()
            .map(i64::from)
            .collect(),
        Dtype::U8 => y.data().iter().map(|&v| i64::from(v)).collect(),
        other => {
            return Err(key_error(
                path,
                "y",
                format!("dtype {other:?}, expected an integer type"),
            ));
        }
    };
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            u32::try_from(l).map_err(|_| key_error(path, "y", format!("label {i} is {l}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Batch {
        x: values,
        shape: x.shape().to_vec(),
        labels,
    })
}

/// What a `debug grads` run did.
#[derive(Debug, Clone)]
pub struct DebugReport {
    pub loss: f32,
    pub gradients: usize,
    /// Keys of the weights file the model does not have.
    pub unexpected: Vec<String>,
}

/// Loads `weights` (by PyTorch key; every parameter must be present) and the batch `input`,
/// runs one training-mode step of `config` without an update, and writes `logits`, `loss`, the
/// loss terms `loss.ce` (and with SF-Head `loss.con`, `loss.red`, unweighted) and
/// `grad.<key>` for every parameter the loss depends on to `out`.
pub fn debug_grads(
    gpu: &Arc<Gpu>,
    dataset: Dataset,
    config: CtrGcnConfig,
    weights: &Path,
    input: &Path,
    out: &Path,
) -> anyhow::Result<DebugReport> {
    let backbone = config.backbone;
    let batch = read_batch(input)?;
    let fits = batch.shape[1] == IN_CHANNELS
        && batch.shape[3] == config.joints()
        && batch.shape[4] == config.persons;
    if !fits {
        let want = format!(
            "(N, {IN_CHANNELS}, T, {}, {})",
            config.joints(),
            config.persons
        );
        let message = format!(
            "shape {:?} does not fit {dataset:?}: expected {want}",
            batch.shape
        );
        return Err(key_error(input, "x", message).into());
    }
    let mut store = Store::new();
    let options = StepOptions {
        sgd: None,
        keep_gradients: true,
    };
    let classes = config.classes;
    let step = TrainStep::build(gpu, &mut store, &batch.shape, options, |g, x, labels| {
        Network::new(g, config, 0).forward(g, x, Some(labels), Mode::Train)
    })?;
    let loaded = load(gpu, &store, weights)?;
    let missing: Vec<&String> = loaded
        .missing
        .iter()
        .filter(|k| !k.starts_with("optim.") && !k.ends_with("num_batches_tracked"))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: {} model tensors are missing, first `{}`",
            weights.display(),
            missing.len(),
            missing[0]
        );
    }
    let loss = step.step(&batch.x, &batch.labels, 0.0)?;
    let rows = batch.shape[0];
    let mut tensors = vec![
        OutputTensor::f32("logits", vec![rows, classes], step.logits()?),
        OutputTensor::f32("loss", vec![], vec![loss]),
    ];
    for (name, value) in step.loss_terms()? {
        tensors.push(OutputTensor::f32(
            &format!("loss.{name}"),
            vec![],
            vec![value],
        ));
    }
    let gradients = step.gradients()?;
    for (key, values) in &gradients {
        let shape = store.shape(key).expect("parameters are stored").to_vec();
        tensors.push(OutputTensor::f32(
            &format!("grad.{key}"),
            shape,
            values.clone(),
        ));
    }
    let metadata = BTreeMap::from([
        ("model".to_string(), backbone.name().to_string()),
        ("dataset".to_string(), format!("{dataset:?}").to_lowercase()),
        ("adapter".to_string(), gpu.report().summary()),
    ]);
    write_tensors(out, &tensors, &metadata)?;
    Ok(DebugReport {
        loss,
        gradients: gradients.len(),
        unexpected: loaded.unexpected,
    })
}
