//! Streaming `.npz` output (an uncompressed zip of `.npy` members, as NumPy's `savez` writes),
//! so that arrays larger than memory can be written piece by piece.

use npyz::WriterBuilder;
use std::io::{self, Seek, Write};
use zip::write::SimpleFileOptions;

/// Members above this size need zip64 records.
const ZIP32_LIMIT: u64 = 0xFFFF_0000;

pub struct NpzWriter<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
}

/// The element types written here, with their NumPy type strings.
#[derive(Debug, Clone, Copy)]
pub enum Element {
    F32,
    F64,
}

impl Element {
    fn type_str(self) -> &'static str {
        match self {
            Element::F32 => "<f4",
            Element::F64 => "<f8",
        }
    }

    fn bytes(self) -> u64 {
        match self {
            Element::F32 => 4,
            Element::F64 => 8,
        }
    }
}

impl<W: Write + Seek> NpzWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            zip: zip::ZipWriter::new(inner),
        }
    }

    /// Starts member `NAME.npy` of a C-order array of `shape`; the caller must then write
    /// exactly its values, little-endian, with [`write_f32`] or [`write_f64`].
    pub fn start(
        &mut self,
        name: &str,
        element: Element,
        shape: &[u64],
    ) -> io::Result<&mut zip::ZipWriter<W>> {
        let bytes = shape.iter().product::<u64>() * element.bytes();
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes >= ZIP32_LIMIT);
        self.zip
            .start_file(format!("{name}.npy"), options)
            .map_err(io::Error::other)?;
        let dtype = npyz::DType::Plain(element.type_str().parse().map_err(io::Error::other)?);
        npyz::WriteOptions::new_header_only()
            .dtype(dtype)
            .shape(shape)
            .writer(&mut self.zip)
            .write_header_only()?;
        Ok(&mut self.zip)
    }

    pub fn finish(self) -> io::Result<W> {
        self.zip.finish().map_err(io::Error::other)
    }
}

pub fn write_f32(w: &mut impl Write, values: &[f32]) -> io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_all(&bytes)
}

pub fn write_f64(w: &mut impl Write, values: &[f64]) -> io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_all(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn members_read_back_with_their_shapes_and_values() {
        let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
        let w = npz.start("x", Element::F32, &[2, 3]).unwrap();
        write_f32(w, &[1.0, 2.0, 3.0]).unwrap();
        write_f32(w, &[4.0, 5.0, -6.5]).unwrap();
        let w = npz.start("y", Element::F64, &[2]).unwrap();
        write_f64(w, &[0.25, 1e300]).unwrap();
        let bytes = npz.finish().unwrap().into_inner();

        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let x = npyz::NpyFile::new(archive.by_name("x.npy").unwrap()).unwrap();
        assert_eq!(x.shape(), &[2, 3]);
        assert_eq!(
            x.into_vec::<f32>().unwrap(),
            [1.0, 2.0, 3.0, 4.0, 5.0, -6.5]
        );
        let y = npyz::NpyFile::new(archive.by_name("y.npy").unwrap()).unwrap();
        assert_eq!(y.into_vec::<f64>().unwrap(), [0.25, 1e300]);
    }
}
