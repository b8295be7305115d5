//! Skeleton data: parsers, preprocessing pipelines, storage formats and feeders.
//!
//! Nothing here touches the GPU. Every reader reports bad input as a [`DataError`] that names the
//! file and the place (line, frame, key) where it went wrong.

pub mod batch;
pub mod feed;
mod io;
mod memory;
pub mod npz;
pub mod ntu;
pub mod other;
pub mod packed;
pub mod pku;
pub mod prepare;
pub mod pyskl;
mod sequence;
pub mod subset;
mod text;
pub mod ucla;

pub use crate::error::{DataError, Place};
pub use memory::InMemoryClips;
pub use packed::{PackedClips, PackedMeta, PackedWriter, Part};
pub use sequence::{ClipSet, Sequence};
