//! Reading tensors of a safetensors file (a PyTorch state dict or an sfhead checkpoint), with
//! every complaint naming the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::data::{DataError, Place};

/// A safetensors file read into memory.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// The parsed view of a [`TensorFile`].
pub struct Tensors<'a> {
    path: &'a Path,
    tensors: SafeTensors<'a>,
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path)
            .map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    pub fn parse(&self) -> Result<Tensors<'_>, DataError> {
        let not_safetensors = |e: safetensors::SafeTensorError| {
            DataError::new(
                &self.path,
                Place::File,
                format!("not a safetensors file: {e}"),
            )
        };
        let (_, header) = SafeTensors::read_metadata(&self.bytes).map_err(not_safetensors)?;
        let tensors = SafeTensors::deserialize(&self.bytes).map_err(not_safetensors)?;
        Ok(Tensors {
            path: &self.path,
            tensors,
            metadata: header
                .metadata()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }
}

impl<'a> Tensors<'a> {
    /// Every key, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.tensors.names();
        keys.sort_unstable();
        keys
    }

    pub fn fault(&self, key: &str, message: impl Into<String>) -> DataError {
        DataError::new(self.path, Place::Key(key.to_string()), message)
    }

    fn view(&self, key: &str) -> Result<TensorView<'a>, DataError> {
        self.tensors
            .tensor(key)
            .map_err(|_| self.fault(key, "missing"))
    }

    /// A float tensor of exactly `shape`, F32 or F64 (narrowed to f32), every value finite.
    /// Returns the values and whether they were narrowed from F64.
    pub fn floats(&self, key: &str, shape: &[usize]) -> Result<(Vec<f32>, bool), DataError> {
        let view = self.view(key)?;
        if view.shape() != shape {
            return Err(self.fault(
                key,
                format!(
                    "shape {:?} does not match the model's {shape:?}",
                    view.shape()
                ),
            ));
        }
        let (values, narrowed): (Vec<f32>, bool) = match view.dtype() {
            Dtype::F32 => (bytemuck::pod_collect_to_vec(view.data()), false),
            Dtype::F64 => (
                bytemuck::pod_collect_to_vec::<u8, f64>(view.data())
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
                true,
            ),
            other => {
                return Err(self.fault(key, format!("dtype {other:?}, expected F32 or F64")));
            }
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.fault(key, format!("value {i} is {} in float32", values[i])));
        }
        Ok((values, narrowed))
    }

    /// A BN batch counter: an integer scalar (PyTorch's int64 `()`, or a one-value tensor as
    /// PyTorch also accepts), non-negative.
    pub fn counter(&self, key: &str) -> Result<i64, DataError> {
        let view = self.view(key)?;
        if !matches!(view.shape(), [] | [1]) {
            return Err(self.fault(
                key,
                format!("shape {:?}, expected a scalar batch counter", view.shape()),
            ));
        }
        let value = match view.dtype() {
            Dtype::I64 => bytemuck::pod_read_unaligned::<i64>(view.data()),
            Dtype::I32 => i64::from(bytemuck::pod_read_unaligned::<i32>(view.data())),
            other => {
                return Err(self.fault(key, format!("dtype {other:?}, expected I64")));
            }
        };
        if value < 0 {
            return Err(self.fault(key, format!("batch counter {value} is negative")));
        }
        Ok(value)
    }
}
