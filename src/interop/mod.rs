//! PyTorch interop, both ways (docs/interop.md).
//!
//! - [`export`]: an sfhead checkpoint as a plain state dict, what
//!   `safetensors.torch.load_file` reads and the official PyTorch model loads with `strict=True`: the
//!   model's keys, shapes and dtypes only (f32 parameters and buffers, int64 scalar
//!   `num_batches_tracked`), without optimiser state; training-only (tap) SF-Heads are dropped,
//!   in-line ones kept.
//! - [`import`]: a PyTorch state dict (f32 or f64, optionally with DataParallel's `module.`
//!   prefix) checked strictly against the model a configuration builds, written as an sfhead
//!   checkpoint with a training checkpoint's metadata at epoch 0.
//!
//! Neither needs a GPU: the model's keys, shapes and initial values come from its graph.

mod export;
mod file;
mod import;
mod model;

pub use export::{ExportReport, export};
pub use import::{DATA_PARALLEL_PREFIX, ImportReport, import};

use crate::data::DataError;
use crate::train::{CheckpointError, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    /// A problem with an input file, naming the file and the key.
    #[error(transparent)]
    Input(#[from] DataError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Output(#[from] CheckpointError),
}
