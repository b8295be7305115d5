//! Reading numpy `.npz` archives: zip members holding `.npy` arrays.
//!
//! Uncompressed members (`np.savez`) are used in place, straight from the memory-mapped file;
//! compressed ones (`np.savez_compressed`) are inflated into memory. Every size an array's
//! header claims is checked against the bytes really there before anything is allocated.

use super::io::Bytes;
use super::{DataError, Place};
use npyz::{DType, NpyHeader, Order};
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use zip::{CompressionMethod, ZipArchive};

/// numpy refuses `.npy` headers longer than this (`max_header_size`), and so do we.
const MAX_HEADER_TEXT: usize = 10_000;

/// An opened `.npz` file.
pub struct NpzArchive {
    bytes: Bytes,
    path: PathBuf,
}

/// An array's header and where its raw data lies.
pub struct NpzArray {
    pub key: String,
    /// numpy's type string, e.g. `<f4`.
    pub dtype: String,
    pub shape: Vec<u64>,
    pub fortran_order: bool,
    header: NpyHeader,
    data: ArrayData,
}

enum ArrayData {
    /// A range of the archive's own bytes (an uncompressed member).
    InArchive(Range<usize>),
    /// Inflated from a compressed member.
    Inflated(Vec<u8>),
}

impl NpzArchive {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Ok(Self {
            bytes: Bytes::map(path)?,
            path: path.to_path_buf(),
        })
    }

    /// An archive already in memory; `path` only names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Self {
        Self {
            bytes: Bytes::Owned(bytes),
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn zip(&self) -> Result<ZipArchive<Cursor<&[u8]>>, DataError> {
        ZipArchive::new(Cursor::new(&self.bytes[..])).map_err(|e| {
            DataError::new(
                &self.path,
                Place::File,
                format!("not a readable .npz (zip) archive: {e}"),
            )
        })
    }

    /// The array names, without the `.npy` suffix, in archive order.
    pub fn keys(&self) -> Result<Vec<String>, DataError> {
        Ok(self
            .zip()?
            .file_names()
            .filter_map(|n| n.strip_suffix(".npy"))
            .map(str::to_string)
            .collect())
    }

    pub fn contains(&self, key: &str) -> Result<bool, DataError> {
        Ok(self.keys()?.iter().any(|k| k == key))
    }

    /// Locates array `key` and checks that its data is exactly as long as its header says.
    pub fn array(&self, key: &str) -> Result<NpzArray, DataError> {
        let err =
            |message: String| DataError::new(&self.path, Place::Key(key.to_string()), message);
        let mut zip = self.zip()?;
        let mut member = zip
            .by_name(&format!("{key}.npy"))
            .map_err(|e| err(format!("missing from the archive ({e})")))?;
        let (payload, inflated): (Range<usize>, Option<Vec<u8>>) = match member.compression() {
            CompressionMethod::Stored => {
                let start = member
                    .data_start()
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| err("the member has no data offset".into()))?;
                let end = usize::try_from(member.compressed_size())
                    .ok()
                    .and_then(|len| start.checked_add(len))
                    .filter(|&end| end <= self.bytes.len())
                    .ok_or_else(|| err("the member runs past the end of the file".into()))?;
                (start..end, None)
            }
            _ => {
                let mut bytes = Vec::new();
                let size = member.size();
                (&mut member)
                    .take(size)
                    .read_to_end(&mut bytes)
                    .map_err(|e| err(format!("cannot inflate: {e}")))?;
                (0..bytes.len(), Some(bytes))
            }
        };
        let buffer: &[u8] = match &inflated {
            Some(bytes) => bytes,
            None => &self.bytes[payload.clone()],
        };
        let (header, header_len) = read_npy_header(buffer).map_err(err)?;
        let DType::Plain(type_str) = header.dtype() else {
            return Err(err(format!(
                "structured dtype {} is not supported",
                header.dtype().descr()
            )));
        };
        let item = type_str
            .num_bytes()
            .ok_or_else(|| err(format!("dtype {type_str} has no fixed size")))?;
        let needed = header
            .shape()
            .iter()
            .try_fold(item as u64, |n, &d| n.checked_mul(d))
            .ok_or_else(|| err(format!("shape {:?} is too large", header.shape())))?;
        let present = (buffer.len() - header_len) as u64;
        if needed != present {
            return Err(err(format!(
                "shape {:?} of {type_str} needs {needed} bytes of data, the member holds {present}",
                header.shape()
            )));
        }
        let data = match inflated {
            Some(mut bytes) => {
                bytes.drain(..header_len);
                ArrayData::Inflated(bytes)
            }
            None => ArrayData::InArchive(payload.start + header_len..payload.end),
        };
        Ok(NpzArray {
            key: key.to_string(),
            dtype: type_str.to_string(),
            shape: header.shape().to_vec(),
            fortran_order: header.order() == Order::Fortran,
            header,
            data,
        })
    }

    /// The raw data bytes of an array located by [`NpzArchive::array`].
    pub fn data<'a>(&'a self, array: &'a NpzArray) -> &'a [u8] {
        match &array.data {
            ArrayData::InArchive(range) => &self.bytes[range.clone()],
            ArrayData::Inflated(bytes) => bytes,
        }
    }

    /// Reads a whole array of `T` as a flat vector, in storage order.
    pub fn read<T: npyz::Deserialize>(&self, array: &NpzArray) -> Result<Vec<T>, DataError> {
        npyz::NpyFile::with_header(array.header.clone(), self.data(array))
            .into_vec()
            .map_err(|e| {
                DataError::new(
                    &self.path,
                    Place::Key(array.key.clone()),
                    format!("cannot read: {e}"),
                )
            })
    }
}

/// Parses the header of an in-memory `.npy`, returning it and its length in bytes. The
/// length field is checked before the header is read, so a corrupt one cannot make the
/// parser allocate more than the buffer holds.
fn read_npy_header(buffer: &[u8]) -> Result<(NpyHeader, usize), String> {
    let declared = match buffer {
        [0x93, b'N', b'U', b'M', b'P', b'Y', 1, _, a, b, ..] => {
            10 + usize::from(u16::from_le_bytes([*a, *b]))
        }
        [0x93, b'N', b'U', b'M', b'P', b'Y', 2 | 3, _, a, b, c, d, ..] => {
            12 + u32::from_le_bytes([*a, *b, *c, *d]) as usize
        }
        _ => return Err("not a .npy array (no NUMPY magic and version)".into()),
    };
    if declared > buffer.len() || declared > MAX_HEADER_TEXT + 12 {
        return Err(format!(
            "the .npy header claims {declared} bytes; the member holds {}",
            buffer.len()
        ));
    }
    let mut cursor = Cursor::new(buffer);
    let header =
        NpyHeader::from_reader(&mut cursor).map_err(|e| format!("bad .npy header: {e}"))?;
    Ok((header, cursor.position() as usize))
}
