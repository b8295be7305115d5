//! `sfhead prepare`: convert or check a dataset's raw files, going on past bad files and
//! reporting every one of them at the end.

mod npz;
mod pku;
mod ucla;

pub use npz::{Element, NpzWriter, write_f32, write_f64};
pub use pku::{FRAMES as PKU_FRAMES, PkuPaths, prepare_pku};
pub use ucla::prepare_ucla;

use super::DataError;
use std::path::PathBuf;

/// What a prepare run wrote and which inputs it could not use.
#[derive(Debug, Default)]
pub struct Outcome {
    pub written: Vec<PathBuf>,
    /// One entry per bad input file, in the order they were met.
    pub failures: Vec<DataError>,
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> DataError {
    DataError::new(path, super::Place::File, e.to_string())
}
