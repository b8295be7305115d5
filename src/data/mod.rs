//! Skeleton data: parsers, preprocessing pipelines, storage formats and feeders.
//!
//! Nothing here touches the GPU. Every reader reports bad input as a [`DataError`] that names the
//! file and the place (line, frame, key) where it went wrong.

mod error;
mod io;
pub mod npz;
pub mod ntu;
pub mod packed;
mod sequence;

pub use error::{DataError, Place};
pub use packed::{PackedClips, PackedMeta, PackedWriter, Part};
pub use sequence::{ClipSet, Sequence};
