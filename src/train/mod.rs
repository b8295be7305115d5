//! Training workflows on top of the engine.

mod checkpoint;
mod config;
mod debug;
mod metrics;
mod step;
mod trainer;

pub use checkpoint::{CheckpointError, Loaded, OutputTensor, load, save, write_tensors};
pub use config::{ConfigError, DEFAULT_PRESET, PRESETS, TrainConfig};
pub use debug::{Batch, DebugReport, debug_grads, read_batch};
pub use metrics::top_k_hits;
pub use step::{StepOptions, TrainError, TrainStep};
pub use trainer::{EpochLog, Summary, saved_config, train};
