//! File plumbing shared by the storage formats: memory-mapped input, little-endian floats.

use super::{DataError, Place};
use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::Path;

/// The bytes of an input file, mapped from disk or held in memory.
pub(crate) enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    /// Maps `path` read-only.
    pub(crate) fn map(path: &Path) -> Result<Self, DataError> {
        let cannot = |e: io::Error| DataError::new(path, Place::File, format!("cannot read: {e}"));
        let file = File::open(path).map_err(cannot)?;
        if file.metadata().map_err(cannot)?.len() == 0 {
            // Mapping an empty file fails on some platforms; there is nothing to map anyway.
            return Ok(Bytes::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and private to this process. Like every memory-mapped
        // reader, it assumes nobody truncates the file while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(cannot)?;
        Ok(Bytes::Mapped(map))
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

/// Little-endian bytes of float32 values.
pub(crate) fn f32_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Float32 values from little-endian bytes (whole 4-byte groups only).
pub(crate) fn f32_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
