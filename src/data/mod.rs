//! Skeleton data: parsers, preprocessing pipelines, storage formats and feeders.
//!
//! Nothing here touches the GPU. Every reader reports bad input as a [`DataError`] that names the
//! file and the place (line, frame, key) where it went wrong.

mod error;
mod sequence;

pub use error::{DataError, Place};
pub use sequence::{ClipSet, Sequence};
