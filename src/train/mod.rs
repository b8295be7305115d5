//! Training workflows on top of the engine.

mod checkpoint;
mod step;

pub use checkpoint::{CheckpointError, Loaded, load, save, write_atomically};
pub use step::{TrainError, TrainStep};
