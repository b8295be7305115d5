//! Training workflows on top of the engine.

mod checkpoint;
mod config;
pub mod data;
mod debug;
mod metrics;
mod progress;
pub mod run_log;
mod step;
pub mod tensorboard;
mod trainer;

pub use checkpoint::{
    CheckpointError, Loaded, OutputTensor, load, read_metadata, save, write_tensors,
};
pub use config::{ConfigError, DEFAULT_PRESET, PRESETS, TrainConfig};
pub use debug::{Batch, DebugReport, debug_grads, read_batch};
pub use metrics::top_k_hits;
pub use progress::{eval_bar, human};
pub use step::{PendingStep, StepLosses, StepOptions, TrainError, TrainStep};
pub use trainer::{
    BEST_CHECKPOINT, BEST_SCORES, CONFIG_FILE, ConfigSource, EpochLog, LAST_CHECKPOINT, Summary,
    checkpoint_metadata, saved_config, train,
};
