//! Checkpoints as safetensors: every tensor of a [`Store`] under its name (PyTorch state-dict keys
//! for models, `optim.*` for optimiser state) plus string metadata. Writing goes to a temporary
//! file in the same directory that is renamed into place, so a crash never leaves half a file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use std::io::Write;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::atomic::write_atomic;
use crate::engine::{Store, StoreError};
use crate::gpu::Gpu;
use crate::ops::sgd::momentum_name;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a safetensors file: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}: key `{key}`: {message}", path.display())]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a load matched, in the manner of PyTorch's `load_state_dict(strict=False)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub loaded: Vec<String>,
    /// Stored tensors the file does not have.
    pub missing: Vec<String>,
    /// Keys of the file the store does not have (skipped).
    pub unexpected: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

/// PyTorch keeps BN batch counters as int64 scalars; the engine as one f32.
fn is_counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Writes every tensor of `store` (read back from the GPU) and `metadata` to `path` atomically.
/// BN batch counters are written as PyTorch's int64 scalars, so the file loads into PyTorch.
pub fn save(
    gpu: &Gpu,
    store: &Store,
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let mut tensors = Vec::new();
    for name in store.names() {
        let shape = store.shape(name).expect("listed names exist").to_vec();
        let values = store.read(gpu, name)?;
        tensors.push(if is_counter(name) {
            OutputTensor::counter(name, values[0] as i64)
        } else {
            OutputTensor::f32(name, shape, values)
        });
    }
    write_tensors(path, &tensors, metadata)
}

/// A named tensor to write: f32 values, or an int64 scalar.
pub struct OutputTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl OutputTensor {
    pub fn f32(name: &str, shape: Vec<usize>, values: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "`{name}`: shape and data"
        );
        Self {
            name: name.to_string(),
            dtype: Dtype::F32,
            shape,
            bytes: bytemuck::cast_slice(&values).to_vec(),
        }
    }

    pub fn counter(name: &str, value: i64) -> Self {
        Self::i64(name, Vec::new(), vec![value])
    }

    pub fn i64(name: &str, shape: Vec<usize>, values: Vec<i64>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "`{name}`: shape and data"
        );
        Self {
            name: name.to_string(),
            dtype: Dtype::I64,
            shape,
            bytes: bytemuck::cast_slice(&values).to_vec(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same tensor under another name (a second key of one parameter).
    pub fn renamed(&self, name: &str) -> Self {
        Self {
            name: name.to_string(),
            dtype: self.dtype,
            shape: self.shape.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

/// Writes `tensors` and `metadata` as one safetensors file, atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[OutputTensor],
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let views = tensors.iter().map(|t| {
        let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes).expect("sizes agree");
        (t.name.as_str(), view)
    });
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, |file| file.write_all(&bytes)).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The string metadata of a checkpoint, without loading its tensors.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    metadata_of(&bytes, path)
}

/// The string metadata in the header of safetensors `bytes` read from `path`.
fn metadata_of(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// Loads every key of `path` that `store` has (f32, f64 or PyTorch's int64 batch counters,
/// converted to f32), checking shapes; reports the keys on either side that did not match.
pub fn load(gpu: &Gpu, store: &Store, path: &Path) -> Result<Loaded, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |message: String| CheckpointError::Format {
        path: path.to_path_buf(),
        message,
    };
    let file = SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let mut out = Loaded {
        metadata: metadata_of(&bytes, path)?,
        ..Loaded::default()
    };
    let key_error = |key: &str, message: String| CheckpointError::Key {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    // Elements written so far of each pack's momentum from its members' momenta, as checkpoints
    // from before the packing keep them.
    let mut pack_parts: HashMap<String, usize> = HashMap::new();
    for key in names {
        let part = packed_momentum(store, key);
        let Some(shape) = store.shape(key).or(part.as_ref().map(|p| p.shape)) else {
            out.unexpected.push(key.to_string());
            continue;
        };
        let view = file
            .tensor(key)
            .map_err(|e| key_error(key, e.to_string()))?;
        let numel: usize = shape.iter().product();
        let file_numel: usize = view.shape().iter().product();
        if file_numel != numel
            || view
                .shape()
                .iter()
                .filter(|&&d| d != 1)
                .ne(shape.iter().filter(|&&d| d != 1))
        {
            return Err(key_error(
                key,
                format!(
                    "shape {:?} does not match the model's {shape:?}",
                    view.shape()
                ),
            ));
        }
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytemuck::pod_collect_to_vec(view.data()),
            Dtype::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(view.data())
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            Dtype::I64 if is_counter(key) => bytemuck::pod_collect_to_vec::<u8, i64>(view.data())
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            other => {
                return Err(key_error(
                    key,
                    format!("dtype {other:?}, expected F32 or F64"),
                ));
            }
        };
        match part {
            Some(part) => {
                store.write_part(gpu, &part.momentum, part.offset, &values)?;
                *pack_parts.entry(part.momentum).or_default() += values.len();
            }
            None => store.write(gpu, key, &values)?,
        }
        out.loaded.push(key.to_string());
    }
    let whole = |name: &str| {
        let len = store.shape(name).map(|s| s.iter().product::<usize>());
        pack_parts.get(name).is_some_and(|&n| Some(n) == len)
    };
    out.missing = store
        .names()
        .filter(|n| !out.loaded.iter().any(|l| l == n) && !whole(n))
        .map(str::to_string)
        .collect();
    Ok(out)
}

/// Where a packed parameter's own momentum goes: its part of its pack's momentum.
struct MomentumPart<'a> {
    momentum: String,
    offset: usize,
    shape: &'a [usize],
}

/// The pack momentum part that `key` stands for, if it is the momentum of a packed parameter.
fn packed_momentum<'a>(store: &'a Store, key: &str) -> Option<MomentumPart<'a>> {
    let parameter = key.strip_prefix(&momentum_name(""))?;
    let (pack, offset) = store.packed_in(parameter)?;
    let momentum = momentum_name(pack);
    store.shape(&momentum)?;
    Some(MomentumPart {
        momentum,
        offset,
        shape: store.shape(parameter)?,
    })
}
