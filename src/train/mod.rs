//! Training workflows on top of the engine.

mod checkpoint;
mod debug;
mod step;

pub use checkpoint::{CheckpointError, Loaded, OutputTensor, load, save, write_tensors};
pub use debug::{Batch, DebugReport, debug_grads, read_batch};
pub use step::{StepOptions, TrainError, TrainStep};
