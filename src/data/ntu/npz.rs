//! CTR-GCN's NTU `.npz` layout (`NTU60_CS.npz` and the like), read and written.
//!
//! | key | shape | dtype |
//! |---|---|---|
//! | `x_train`, `x_test` | (N, T, 150) | `<f4`, each frame `[person][joint][x, y, z]`, zero-padded to T |
//! | `y_train`, `y_test` | (N, classes) | `<f8`, one-hot |
//! | `names_train`, `names_test` | (N,) | `<U…`, sample names (ours; CTR-GCN ignores them) |
//!
//! Clip lengths are not stored: like CTR-GCN's feeder, the reader counts the frames that are
//! not all zero and takes that many leading frames.

use super::stage3::{FRAME_WIDTH, PERSONS};
use crate::atomic::AtomicFile;
use crate::data::io::{f32_from_le, f32_le_bytes};
use crate::data::npz::{NpzArchive, NpzArray};
use crate::data::{ClipSet, DataError, Part, Place, Sequence};
use npyz::{DType, TypeStr, WriteOptions, WriterBuilder};
use std::io::{self, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const JOINTS: usize = FRAME_WIDTH / PERSONS / 3;

/// One side of a CTR-GCN `.npz`: the `x_*` array used in place, labels from `y_*`.
pub struct NpzClips {
    archive: NpzArchive,
    x: NpzArray,
    padded_frames: usize,
    labels: Vec<u32>,
    names: Vec<String>,
    classes: usize,
}

impl NpzClips {
    pub fn open(path: &Path, part: Part) -> Result<Self, DataError> {
        Self::read(NpzArchive::open(path)?, part)
    }

    /// Reads an archive already in memory; `path` only names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path, part: Part) -> Result<Self, DataError> {
        Self::read(NpzArchive::from_bytes(bytes, path), part)
    }

    /// The width of the one-hot labels.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// T, the frame count every clip is padded to.
    pub fn padded_frames(&self) -> usize {
        self.padded_frames
    }

    fn read(archive: NpzArchive, part: Part) -> Result<Self, DataError> {
        let path = archive.path().to_path_buf();
        let key_error = |key: &str, message: String| {
            DataError::new(&path, Place::Key(key.to_string()), message)
        };

        let x_key = format!("x_{}", part.as_str());
        let x = archive.array(&x_key)?;
        expect_dtype(&x, "<f4", "float32", &path)?;
        let [clips, padded_frames, width] = x.shape[..] else {
            return Err(key_error(
                &x_key,
                format!("shape {:?} is not (clips, frames, {FRAME_WIDTH})", x.shape),
            ));
        };
        if width != FRAME_WIDTH as u64 {
            return Err(key_error(
                &x_key,
                format!(
                    "frames hold {width} values, not {FRAME_WIDTH} (2 persons × 25 joints × xyz)"
                ),
            ));
        }

        let y_key = format!("y_{}", part.as_str());
        let y = archive.array(&y_key)?;
        expect_dtype(&y, "<f8", "float64", &path)?;
        let [rows, classes] = y.shape[..] else {
            return Err(key_error(
                &y_key,
                format!("shape {:?} is not (clips, classes)", y.shape),
            ));
        };
        if rows != clips {
            return Err(key_error(
                &y_key,
                format!("{rows} label rows for {clips} clips"),
            ));
        }
        let one_hot: Vec<f64> = archive.read(&y)?;
        let labels = one_hot
            .chunks_exact(classes.max(1) as usize)
            .take(rows as usize)
            .enumerate()
            .map(|(row, values)| {
                let mut hot = values.iter().enumerate().filter(|(_, v)| **v > 0.0);
                match (hot.next(), hot.next()) {
                    (Some((label, _)), None) => Ok(label as u32),
                    _ => Err(DataError::new(
                        &path,
                        Place::Key(format!("{y_key}[{row}]")),
                        "not one-hot: expected exactly one positive entry",
                    )),
                }
            })
            .collect::<Result<Vec<u32>, DataError>>()?;
        if labels.len() as u64 != clips {
            return Err(key_error(
                &y_key,
                format!("{classes} classes cannot label clips"),
            ));
        }

        let names_key = format!("names_{}", part.as_str());
        let names = if archive.contains(&names_key)? {
            let names_array = archive.array(&names_key)?;
            if !names_array.dtype.starts_with("<U") || names_array.shape != [clips] {
                return Err(key_error(
                    &names_key,
                    format!(
                        "{} of shape {:?} is not {clips} unicode names",
                        names_array.dtype, names_array.shape
                    ),
                ));
            }
            archive.read::<String>(&names_array)?
        } else {
            (0..clips).map(|i| format!("{x_key}[{i}]")).collect()
        };

        Ok(Self {
            archive,
            x,
            padded_frames: padded_frames as usize,
            labels,
            names,
            classes: classes as usize,
        })
    }
}

fn expect_dtype(array: &NpzArray, dtype: &str, what: &str, path: &Path) -> Result<(), DataError> {
    if array.dtype != dtype || array.fortran_order {
        return Err(DataError::new(
            path,
            Place::Key(array.key.clone()),
            format!(
                "dtype {}{} is not {dtype} ({what}, C order)",
                array.dtype,
                if array.fortran_order {
                    ", Fortran order"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

impl ClipSet for NpzClips {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }

    /// The clip's leading frames, as many as it has frames that are not all zero.
    fn clip(&self, index: usize) -> Sequence {
        let clip_bytes = self.padded_frames * FRAME_WIDTH * 4;
        let bytes = &self.archive.data(&self.x)[index * clip_bytes..(index + 1) * clip_bytes];
        let mut values = f32_from_le(bytes);
        let valid = values
            .chunks_exact(FRAME_WIDTH)
            .filter(|frame| frame.iter().any(|&v| v != 0.0))
            .count();
        values.truncate(valid * FRAME_WIDTH);
        Sequence::new(valid, PERSONS, JOINTS, values)
    }
}

/// A clip to write: its `(frames, 150)` values, unpadded.
#[derive(Debug, Clone, Copy)]
pub struct NpzClip<'a> {
    pub name: &'a str,
    pub label: u32,
    pub values: &'a [f32],
}

/// Writes a benchmark in CTR-GCN's layout (uncompressed, like `np.savez`), padding every
/// clip with zero frames to `padded_frames`. The file appears only once complete.
pub fn write_ctrgcn_npz(
    path: &Path,
    classes: usize,
    padded_frames: usize,
    train: &[NpzClip],
    test: &[NpzClip],
) -> io::Result<()> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(true);
    let mut zip = ZipWriter::new(AtomicFile::create(path)?);
    for (part, clips) in [(Part::Train, train), (Part::Test, test)] {
        zip.start_file(format!("x_{}.npy", part.as_str()), options)?;
        write_x(&mut zip, padded_frames, clips)?;
        zip.start_file(format!("y_{}.npy", part.as_str()), options)?;
        write_one_hot(&mut zip, classes, clips)?;
    }
    for (part, clips) in [(Part::Train, train), (Part::Test, test)] {
        zip.start_file(format!("names_{}.npy", part.as_str()), options)?;
        write_names(&mut zip, clips)?;
    }
    zip.finish()?.commit()
}

fn type_str(s: &str) -> DType {
    DType::Plain(s.parse::<TypeStr>().expect("a valid numpy type string"))
}

fn write_x(out: &mut impl Write, padded_frames: usize, clips: &[NpzClip]) -> io::Result<()> {
    let shape = [clips.len() as u64, padded_frames as u64, FRAME_WIDTH as u64];
    let out = WriteOptions::new_header_only()
        .dtype(type_str("<f4"))
        .shape(&shape)
        .writer(out)
        .write_header_only()?;
    for clip in clips {
        let frames = clip.values.len() / FRAME_WIDTH;
        if !clip.values.len().is_multiple_of(FRAME_WIDTH) || frames > padded_frames {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "clip {} has {} values: not whole {FRAME_WIDTH}-value frames, or more than {padded_frames} frames",
                    clip.name,
                    clip.values.len()
                ),
            ));
        }
        out.write_all(&f32_le_bytes(clip.values))?;
        out.write_all(&vec![0; (padded_frames - frames) * FRAME_WIDTH * 4])?;
    }
    Ok(())
}

fn write_one_hot(out: &mut impl Write, classes: usize, clips: &[NpzClip]) -> io::Result<()> {
    let mut writer = WriteOptions::new()
        .dtype(type_str("<f8"))
        .shape(&[clips.len() as u64, classes as u64])
        .writer(out)
        .begin_nd()?;
    for clip in clips {
        if clip.label as usize >= classes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "label {} of {} is not below {classes}",
                    clip.label, clip.name
                ),
            ));
        }
        writer.extend((0..classes).map(|k| {
            if k == clip.label as usize {
                1.0f64
            } else {
                0.0
            }
        }))?;
    }
    writer.finish()
}

fn write_names(out: &mut impl Write, clips: &[NpzClip]) -> io::Result<()> {
    let longest = clips
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut writer = WriteOptions::<str>::new()
        .dtype(type_str(&format!("<U{longest}")))
        .shape(&[clips.len() as u64])
        .writer(out)
        .begin_nd()?;
    for clip in clips {
        writer.push(clip.name)?;
    }
    writer.finish()
}
