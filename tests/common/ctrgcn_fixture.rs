//! Decodes `tests/fixtures/ctrgcn_ntu60.safetensors`, one PyTorch training step of CTR-GCN, into
//! plain f32 tensors. Keys and encodings are documented in `tests/fixtures/README.md`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use sfhead::data::{DataError, Place};

use super::state_dict_listing::Entry;

pub const FORMAT: &str = "sfhead-ctrgcn-fixture-3";

/// A decoded tensor: row-major f32 values and their shape (empty for a scalar).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// State-dict keyed tensors in listing order.
#[derive(Debug, Clone)]
pub struct Named<T> {
    pub entries: Vec<(String, T)>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T> Named<T> {
    pub fn get(&self, key: &str) -> Option<&T> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }
}

#[derive(Debug, Clone)]
pub struct Fixture {
    pub metadata: HashMap<String, String>,
    /// (N, 3, 64, 25, 2) input batch.
    pub x: Tensor,
    /// (N) labels.
    pub y: Vec<i64>,
    /// (3, V, V) spatial adjacency the PA tensors were initialised from.
    pub adjacency: Tensor,
    /// (N, K) training-mode logits.
    pub logits: Tensor,
    pub loss: f32,
    /// Parameters and BN running statistics before the step.
    pub weights: Named<Tensor>,
    /// `num_batches_tracked` of every BN before the forward.
    pub batches_tracked: Named<i64>,
    /// Gradient of every parameter.
    pub grads: Named<Tensor>,
    /// BN running statistics after the forward.
    pub running_after: Named<Tensor>,
    pub batches_tracked_after: Named<i64>,
    /// Parameters after one SGD step.
    pub updated: Named<Tensor>,
    /// The change of each parameter in that step (updated − weight, before rounding to f32).
    pub steps: Named<Tensor>,
    /// ‖g₃₂ − g‖₂ / ‖g‖₂ of PyTorch's own float32 gradient of each parameter against the
    /// float64 reference.
    pub pytorch_f32_error: Named<f32>,
    /// The float32 fairness bar: the largest such distance over PyTorch float32 runs on inputs
    /// perturbed by 1e-6 (tests/common/parity.rs).
    pub pytorch_f32_envelope: Named<f32>,
}

impl Fixture {
    /// Reads the fixture and checks that its keys are exactly those the listing implies.
    pub fn load(path: &Path, listing: &[Entry]) -> Result<Self, DataError> {
        let bytes = std::fs::read(path)
            .map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))?;
        Self::decode(path, &bytes, listing)
    }

    /// Decodes the bytes of a fixture; `path` names it in errors.
    pub fn decode(path: &Path, bytes: &[u8], listing: &[Entry]) -> Result<Self, DataError> {
        let file = Reader::new(path, bytes)?;
        let metadata = file.metadata()?;
        match metadata.get("format") {
            Some(format) if format == FORMAT => {}
            other => {
                return Err(DataError::new(
                    path,
                    Place::Key("__metadata__.format".into()),
                    format!("expected `{FORMAT}`, found {other:?}"),
                ));
            }
        }
        file.expect_exactly(&expected_keys(listing))?;

        let x = file.f32("x", None)?;
        let n = x.shape.first().copied().unwrap_or(0);
        let classes = listing
            .iter()
            .find(|e| e.key == "fc.bias")
            .map_or(0, Entry::numel);
        let mut fixture = Fixture {
            y: file.i64("y", &[n])?,
            adjacency: file.f32("adjacency", None)?,
            logits: file.f32("logits", Some(&[n, classes]))?,
            loss: file.f32("loss", Some(&[]))?.data[0],
            x,
            metadata,
            weights: Named::default(),
            batches_tracked: Named::default(),
            grads: Named::default(),
            running_after: Named::default(),
            batches_tracked_after: Named::default(),
            updated: Named::default(),
            steps: Named::default(),
            pytorch_f32_error: Named::default(),
            pytorch_f32_envelope: Named::default(),
        };
        let parameters = listing.iter().filter(|e| e.is_parameter()).count();
        let f32_error = file.f32("f32_error", Some(&[parameters]))?.data;
        let mut f32_error = f32_error.into_iter();
        let envelope = file.f32("f32_envelope", Some(&[parameters]))?.data;
        let mut envelope = envelope.into_iter();
        for e in listing {
            let key = e.key.clone();
            if e.key.ends_with("num_batches_tracked") {
                let before = file.i64(&format!("weight.{key}"), &e.shape)?[0];
                let after = file.i64(&format!("after.{key}"), &e.shape)?[0];
                fixture.batches_tracked.entries.push((key.clone(), before));
                fixture.batches_tracked_after.entries.push((key, after));
                continue;
            }
            let weight = file.int8_scaled(&key, &e.shape)?;
            if e.is_parameter() {
                let grad = file.f24(&format!("grad.{key}"), &e.shape)?;
                let update = file.f16_scaled(&key, &e.shape)?;
                let updated = Tensor {
                    shape: e.shape.clone(),
                    data: weight
                        .data
                        .iter()
                        .zip(&update)
                        .map(|(w, d)| w + d)
                        .collect(),
                };
                let error = f32_error.next().expect("one error per parameter");
                fixture.grads.entries.push((key.clone(), grad));
                fixture.updated.entries.push((key.clone(), updated));
                fixture.steps.entries.push((
                    key.clone(),
                    Tensor {
                        shape: e.shape.clone(),
                        data: update,
                    },
                ));
                fixture.pytorch_f32_error.entries.push((key.clone(), error));
                let bar = envelope.next().expect("one envelope per parameter");
                fixture
                    .pytorch_f32_envelope
                    .entries
                    .push((key.clone(), bar));
            } else {
                let after = file.f32(&format!("after.{key}"), Some(&e.shape))?;
                fixture.running_after.entries.push((key.clone(), after));
            }
            fixture.weights.entries.push((key, weight));
        }
        Ok(fixture)
    }
}

/// Every key a fixture for this listing holds.
fn expected_keys(listing: &[Entry]) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = [
        "x",
        "y",
        "adjacency",
        "logits",
        "loss",
        "f32_error",
        "f32_envelope",
    ]
    .map(String::from)
    .into();
    for e in listing {
        let key = &e.key;
        let prefixes: &[&str] = if key.ends_with("num_batches_tracked") {
            &["weight", "after"]
        } else if e.is_parameter() {
            &["weight", "weight_scale", "grad", "update", "update_scale"]
        } else {
            &["weight", "weight_scale", "after"]
        };
        keys.extend(prefixes.iter().map(|p| format!("{p}.{key}")));
    }
    keys
}

/// Typed access to the tensors of one safetensors file, with errors naming the file and key.
pub struct Reader<'a> {
    path: PathBuf,
    bytes: &'a [u8],
    tensors: SafeTensors<'a>,
}

impl<'a> Reader<'a> {
    pub fn new(path: &Path, bytes: &'a [u8]) -> Result<Self, DataError> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| {
            DataError::new(path, Place::File, format!("not a safetensors file: {e}"))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            tensors,
        })
    }

    pub fn metadata(&self) -> Result<HashMap<String, String>, DataError> {
        let (_, header) = SafeTensors::read_metadata(self.bytes)
            .map_err(|e| self.fault("__metadata__", format!("unreadable header: {e}")))?;
        Ok(header.metadata().clone().unwrap_or_default())
    }

    /// Fails on the first missing key, then on the first unexpected one.
    pub fn expect_exactly(&self, expected: &BTreeSet<String>) -> Result<(), DataError> {
        let present: BTreeSet<String> =
            self.tensors.names().into_iter().map(String::from).collect();
        if let Some(missing) = expected.difference(&present).next() {
            return Err(self.fault(missing, "missing".into()));
        }
        if let Some(extra) = present.difference(expected).next() {
            return Err(self.fault(extra, "not part of the format".into()));
        }
        Ok(())
    }

    /// The shape of a tensor of any dtype.
    pub fn shape(&self, key: &str) -> Result<Vec<usize>, DataError> {
        let view = self
            .tensors
            .tensor(key)
            .map_err(|_| self.fault(key, "missing".into()))?;
        Ok(view.shape().to_vec())
    }

    /// An F32 tensor; `shape` is checked when given.
    pub fn f32(&self, key: &str, shape: Option<&[usize]>) -> Result<Tensor, DataError> {
        let (shape, bytes) = self.raw(key, Dtype::F32, shape)?;
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Tensor { shape, data })
    }

    pub fn i64(&self, key: &str, shape: &[usize]) -> Result<Vec<i64>, DataError> {
        let (_, bytes) = self.raw(key, Dtype::I64, Some(shape))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|b| {
                let mut le = [0u8; 8];
                le.copy_from_slice(b);
                i64::from_le_bytes(le)
            })
            .collect())
    }

    /// `weight.KEY` (I8) × `weight_scale.KEY` (F32 scalar).
    pub fn int8_scaled(&self, key: &str, shape: &[usize]) -> Result<Tensor, DataError> {
        let scale = self.scalar(&format!("weight_scale.{key}"))?;
        let (shape, bytes) = self.raw(&format!("weight.{key}"), Dtype::I8, Some(shape))?;
        let data = bytes.iter().map(|&q| f32::from(q as i8) * scale).collect();
        Ok(Tensor { shape, data })
    }

    /// A U8 tensor of shape `shape + [3]`: the upper three little-endian bytes of an f32.
    pub fn f24(&self, key: &str, shape: &[usize]) -> Result<Tensor, DataError> {
        let stored: Vec<usize> = shape.iter().copied().chain([3]).collect();
        let (_, bytes) = self.raw(key, Dtype::U8, Some(&stored))?;
        let data = bytes
            .chunks_exact(3)
            .map(|b| f32::from_le_bytes([0, b[0], b[1], b[2]]))
            .collect();
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// `update.KEY` (F16) × `update_scale.KEY` (F32 scalar): the step's change of each value.
    pub fn f16_scaled(&self, key: &str, shape: &[usize]) -> Result<Vec<f32>, DataError> {
        let scale = self.scalar(&format!("update_scale.{key}"))?;
        let (_, bytes) = self.raw(&format!("update.{key}"), Dtype::F16, Some(shape))?;
        Ok(bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32() * scale)
            .collect())
    }

    fn scalar(&self, key: &str) -> Result<f32, DataError> {
        let value = self.f32(key, Some(&[]))?.data[0];
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(self.fault(
                key,
                format!("scale must be finite and positive, found {value}"),
            ))
        }
    }

    fn raw(
        &self,
        key: &str,
        dtype: Dtype,
        shape: Option<&[usize]>,
    ) -> Result<(Vec<usize>, &'a [u8]), DataError> {
        let view = self
            .tensors
            .tensor(key)
            .map_err(|_| self.fault(key, "missing".into()))?;
        if view.dtype() != dtype {
            return Err(self.fault(key, format!("expected {dtype:?}, found {:?}", view.dtype())));
        }
        match shape {
            Some(shape) if view.shape() != shape => {
                return Err(self.fault(
                    key,
                    format!("expected shape {shape:?}, found {:?}", view.shape()),
                ));
            }
            _ => {}
        }
        Ok((view.shape().to_vec(), view.data()))
    }

    fn fault(&self, key: &str, message: String) -> DataError {
        DataError::new(&self.path, Place::Key(key.into()), message)
    }
}

/// A conv bias followed directly by a training-mode BN: the BN removes it, so its exact gradient
/// is zero and PyTorch's is rounding noise.
pub fn cancelled_by_batch_norm(key: &str) -> bool {
    let tcn_entry = key.contains(".tcn1.branches.") && key.ends_with(".0.bias");
    tcn_entry
        || key.ends_with(".3.conv.bias")
        || key.ends_with("residual.conv.bias")
        || key.ends_with("gcn1.down.0.bias")
}
