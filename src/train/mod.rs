//! Training workflows on top of the engine.

mod checkpoint;
mod step;

pub use checkpoint::{CheckpointError, Loaded, load, save};
pub use step::{StepOptions, TrainError, TrainStep};
