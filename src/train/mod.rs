//! Training workflows on top of the engine.

mod step;

pub use step::{TrainError, TrainStep};
