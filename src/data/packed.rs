//! The packed clip store (`.sfpk`): variable-length clips of one benchmark, both sides of its
//! split, memory-mapped for reading.
//!
//! Byte layout, all little-endian (`docs/data.md` has the same table):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SFPK\r\n\x1a\n` |
//! | 8 | 4 | version (1) |
//! | 12 | 4 | channels (3) |
//! | 16 | 4 | persons |
//! | 20 | 4 | joints |
//! | 24 | 4 | classes |
//! | 28 | 4 | reserved (0) |
//! | 32 | 8 | clips N |
//! | 40 | 8 | training clips (clips `0..train` are the training side, the rest the test side) |
//! | 48 | 8 | total frames F |
//! | 56 | 8 | data offset (128) |
//! | 64 | 8 | index offset |
//! | 72 | 8 | index length |
//! | 80 | 48 | reserved (0) |
//! | 128 | F·persons·joints·channels·4 | f32 data, clip after clip, frame-major |
//! | index | 8·(N+1) | first frame of each clip, then F |
//! | | 4·N | labels (u32) |
//! | | 4·(N+1) | byte offset of each name in the name block, then its length |
//! | | … | names, UTF-8, concatenated |
//! | | 4 + … | benchmark title: length (u32) and UTF-8 bytes |
//!
//! The index starts at an 8-byte boundary and ends the file.

use super::io::{Bytes, f32_from_le, f32_le_bytes};
use super::{ClipSet, DataError, Place, Sequence};
use crate::atomic::AtomicFile;
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"SFPK\r\n\x1a\n";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 128;
const CHANNELS: u32 = 3;
/// Most persons × joints a frame may hold: far above any skeleton, low enough that sizes
/// computed from a damaged header cannot overflow.
const MAX_POINTS: u64 = 1 << 20;

/// One side of a benchmark split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    Test,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Test => "test",
        }
    }
}

/// What a packed file describes besides its clips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedMeta {
    /// A title for messages, e.g. `NTU60 X-Sub`.
    pub benchmark: String,
    pub persons: usize,
    pub joints: usize,
    pub classes: usize,
}

/// Writes a packed file: training clips first, then test clips, then [`PackedWriter::finish`].
/// Nothing appears at the target path before `finish` succeeds.
pub struct PackedWriter {
    file: AtomicFile,
    meta: PackedMeta,
    frame_offsets: Vec<u64>,
    labels: Vec<u32>,
    names: Vec<String>,
    train_clips: Option<u64>,
}

impl PackedWriter {
    pub fn create(path: &Path, meta: PackedMeta) -> io::Result<Self> {
        let points = (meta.persons as u64).saturating_mul(meta.joints as u64);
        if points == 0 || points > MAX_POINTS {
            return Err(invalid(format!(
                "{} persons × {} joints is not a frame layout the format holds",
                meta.persons, meta.joints
            )));
        }
        let mut file = AtomicFile::create(path)?;
        file.write_all(&[0; HEADER_LEN as usize])?;
        Ok(Self {
            file,
            meta,
            frame_offsets: vec![0],
            labels: Vec::new(),
            names: Vec::new(),
            train_clips: None,
        })
    }

    /// Appends a clip of `frames · persons · joints · 3` values to `part`.
    pub fn push(&mut self, part: Part, name: &str, label: u32, values: &[f32]) -> io::Result<()> {
        let width = self.meta.persons * self.meta.joints * CHANNELS as usize;
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(invalid(format!(
                "clip {name} has {} values, not a whole number of {width}-value frames",
                values.len()
            )));
        }
        if label as usize >= self.meta.classes {
            return Err(invalid(format!(
                "label {label} of {name} is not below {} classes",
                self.meta.classes
            )));
        }
        match (part, self.train_clips) {
            (Part::Train, Some(_)) => {
                return Err(invalid(format!(
                    "training clip {name} after the test clips began"
                )));
            }
            (Part::Test, None) => self.train_clips = Some(self.labels.len() as u64),
            _ => {}
        }
        self.file.write_all(&f32_le_bytes(values))?;
        let last = *self.frame_offsets.last().expect("starts with 0");
        self.frame_offsets
            .push(last + (values.len() / width) as u64);
        self.labels.push(label);
        self.names.push(name.to_string());
        Ok(())
    }

    /// Writes the index and the header, then renames the file into place.
    pub fn finish(mut self) -> io::Result<()> {
        let clips = self.labels.len() as u64;
        let total_frames = *self.frame_offsets.last().expect("starts with 0");
        let data_end = HEADER_LEN
            + total_frames
                * (self.meta.persons * self.meta.joints) as u64
                * u64::from(CHANNELS)
                * 4;
        let index_offset = data_end.next_multiple_of(8);
        self.file
            .write_all(&vec![0; (index_offset - data_end) as usize])?;

        let mut index = Vec::new();
        for offset in &self.frame_offsets {
            index.extend(offset.to_le_bytes());
        }
        for label in &self.labels {
            index.extend(label.to_le_bytes());
        }
        let mut name_offset = 0u32;
        let mut blob: Vec<u8> = Vec::new();
        for name in &self.names {
            index.extend(name_offset.to_le_bytes());
            blob.extend(name.as_bytes());
            name_offset = u32::try_from(blob.len())
                .map_err(|_| invalid("the names take more than 4 GiB".into()))?;
        }
        index.extend(name_offset.to_le_bytes());
        index.extend(blob);
        index.extend(u32_len(self.meta.benchmark.len())?.to_le_bytes());
        index.extend(self.meta.benchmark.as_bytes());
        self.file.write_all(&index)?;

        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend(MAGIC);
        for value in [
            VERSION,
            CHANNELS,
            u32_len(self.meta.persons)?,
            u32_len(self.meta.joints)?,
            u32_len(self.meta.classes)?,
            0,
        ] {
            header.extend(value.to_le_bytes());
        }
        for value in [
            clips,
            self.train_clips.unwrap_or(clips),
            total_frames,
            HEADER_LEN,
            index_offset,
            index.len() as u64,
        ] {
            header.extend(value.to_le_bytes());
        }
        header.resize(HEADER_LEN as usize, 0);
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&header)?;
        self.file.commit()
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn u32_len(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| invalid(format!("{n} does not fit the format's 32-bit field")))
}

/// One side of a packed file, read through a memory map.
pub struct PackedClips {
    bytes: Bytes,
    meta: PackedMeta,
    /// The frame offsets of this side's clips and one past the last.
    frame_offsets: Vec<u64>,
    labels: Vec<u32>,
    names: Vec<String>,
    data_offset: usize,
}

impl PackedClips {
    pub fn open(path: &Path, part: Part) -> Result<Self, DataError> {
        Self::parse(Bytes::map(path)?, path, part)
    }

    /// Reads a packed file already in memory; `path` only names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path, part: Part) -> Result<Self, DataError> {
        Self::parse(Bytes::Owned(bytes), path, part)
    }

    pub fn meta(&self) -> &PackedMeta {
        &self.meta
    }

    /// The frame count of clip `index`, without reading it.
    pub fn frames(&self, index: usize) -> usize {
        (self.frame_offsets[index + 1] - self.frame_offsets[index]) as usize
    }

    fn parse(bytes: Bytes, path: &Path, part: Part) -> Result<Self, DataError> {
        let header = Header::read(&bytes, path)?;
        let clips = usize_of(header.clips, "clips", path)?;
        let mut index = Cursor {
            bytes: &bytes[..],
            pos: header.index_offset as usize,
            path,
        };
        let mut frame_offsets = Vec::with_capacity(clips.min(bytes.len() / 8) + 1);
        for k in 0..=clips {
            let offset = index.u64(|| format!("frame_offsets[{k}]"))?;
            let previous = frame_offsets.last().copied().unwrap_or(0);
            if offset < previous || (k == 0 && offset != 0) || offset > header.total_frames {
                return Err(DataError::new(
                    path,
                    Place::Key(format!("frame_offsets[{k}]")),
                    format!(
                        "{offset} is out of order or past {} frames",
                        header.total_frames
                    ),
                ));
            }
            frame_offsets.push(offset);
        }
        if frame_offsets[clips] != header.total_frames {
            return Err(key_error(
                path,
                "frame_offsets",
                format!(
                    "the clips hold {} frames, the header says {}",
                    frame_offsets[clips], header.total_frames
                ),
            ));
        }
        let mut labels = Vec::with_capacity(clips);
        for k in 0..clips {
            let label = index.u32(|| format!("labels[{k}]"))?;
            if label >= header.classes {
                return Err(DataError::new(
                    path,
                    Place::Key(format!("labels[{k}]")),
                    format!("label {label} is not below {} classes", header.classes),
                ));
            }
            labels.push(label);
        }
        let mut name_offsets = Vec::with_capacity(clips + 1);
        for k in 0..=clips {
            name_offsets.push(index.u32(|| format!("name_offsets[{k}]"))? as usize);
        }
        let blob_len = name_offsets[clips];
        let blob = index.take(blob_len, || "names".to_string())?;
        let mut names = Vec::with_capacity(clips);
        for k in 0..clips {
            let range = name_offsets[k]..name_offsets[k + 1];
            let name = blob
                .get(range)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| {
                    DataError::new(
                        path,
                        Place::Key(format!("names[{k}]")),
                        "name offsets out of order or not UTF-8",
                    )
                })?;
            names.push(name.to_string());
        }
        let title_len = index.u32(|| "benchmark".to_string())? as usize;
        let title = index.take(title_len, || "benchmark".to_string())?;
        let benchmark = std::str::from_utf8(title)
            .map_err(|_| key_error(path, "benchmark", "not UTF-8".into()))?
            .to_string();
        if index.pos != bytes.len() {
            return Err(key_error(
                path,
                "index",
                format!(
                    "the index ends at byte {}, the file at byte {}",
                    index.pos,
                    bytes.len()
                ),
            ));
        }

        let train = usize_of(header.train_clips, "train_clips", path)?;
        let side: Range<usize> = match part {
            Part::Train => 0..train,
            Part::Test => train..clips,
        };
        Ok(Self {
            meta: PackedMeta {
                benchmark,
                persons: header.persons as usize,
                joints: header.joints as usize,
                classes: header.classes as usize,
            },
            frame_offsets: frame_offsets[side.start..=side.end].to_vec(),
            labels: labels[side.clone()].to_vec(),
            names: names.drain(side).collect(),
            data_offset: header.data_offset as usize,
            bytes,
        })
    }
}

impl ClipSet for PackedClips {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }

    fn clip(&self, index: usize) -> Sequence {
        let frame_bytes = self.meta.persons * self.meta.joints * CHANNELS as usize * 4;
        let start = self.data_offset + self.frame_offsets[index] as usize * frame_bytes;
        let end = self.data_offset + self.frame_offsets[index + 1] as usize * frame_bytes;
        Sequence::new(
            self.frames(index),
            self.meta.persons,
            self.meta.joints,
            f32_from_le(&self.bytes[start..end]),
        )
    }
}

/// The fixed header, checked against the file's length.
struct Header {
    persons: u32,
    joints: u32,
    classes: u32,
    clips: u64,
    train_clips: u64,
    total_frames: u64,
    data_offset: u64,
    index_offset: u64,
}

impl Header {
    fn read(bytes: &[u8], path: &Path) -> Result<Self, DataError> {
        if bytes.len() < HEADER_LEN as usize {
            return Err(DataError::new(
                path,
                Place::File,
                format!(
                    "{} bytes is shorter than the {HEADER_LEN}-byte header",
                    bytes.len()
                ),
            ));
        }
        if bytes[..8] != MAGIC {
            return Err(key_error(path, "magic", "not a packed clip file".into()));
        }
        let mut c = Cursor {
            bytes,
            pos: 8,
            path,
        };
        let field = |name: &'static str| move || name.to_string();
        let version = c.u32(field("version"))?;
        if version != VERSION {
            return Err(key_error(
                path,
                "version",
                format!("version {version} is not supported (this build reads {VERSION})"),
            ));
        }
        let channels = c.u32(field("channels"))?;
        let persons = c.u32(field("persons"))?;
        let joints = c.u32(field("joints"))?;
        let classes = c.u32(field("classes"))?;
        c.u32(field("reserved"))?;
        let points = u64::from(persons) * u64::from(joints);
        if channels != CHANNELS || points == 0 || points > MAX_POINTS {
            return Err(key_error(
                path,
                "channels",
                format!(
                    "{persons} persons × {joints} joints × {channels} channels is not a frame layout this build reads"
                ),
            ));
        }
        let header = Header {
            persons,
            joints,
            classes,
            clips: c.u64(field("clips"))?,
            train_clips: c.u64(field("train_clips"))?,
            total_frames: c.u64(field("total_frames"))?,
            data_offset: c.u64(field("data_offset"))?,
            index_offset: c.u64(field("index_offset"))?,
        };
        let index_len = c.u64(field("index_length"))?;
        if header.train_clips > header.clips {
            return Err(key_error(
                path,
                "train_clips",
                format!(
                    "{} training clips of {} in all",
                    header.train_clips, header.clips
                ),
            ));
        }
        let frame_bytes = points * u64::from(CHANNELS) * 4;
        let data_end = header
            .total_frames
            .checked_mul(frame_bytes)
            .and_then(|n| n.checked_add(header.data_offset));
        let index_end = header.index_offset.checked_add(index_len);
        let consistent = header.data_offset == HEADER_LEN
            && data_end.is_some_and(|end| end <= header.index_offset)
            && index_end == Some(bytes.len() as u64);
        if !consistent {
            return Err(key_error(
                path,
                "index_offset",
                format!(
                    "data at {} for {} frames and an index of {index_len} bytes at {} do not fit a file of {} bytes",
                    header.data_offset,
                    header.total_frames,
                    header.index_offset,
                    bytes.len()
                ),
            ));
        }
        Ok(header)
    }
}

/// Reads little-endian fields in order, naming the field in errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: impl Fn() -> String) -> Result<&'a [u8], DataError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(DataError::new(
                self.path,
                Place::Key(field()),
                format!("the file ends before these {n} bytes at {}", self.pos),
            ));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u32(&mut self, field: impl Fn() -> String) -> Result<u32, DataError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: impl Fn() -> String) -> Result<u64, DataError> {
        let b = self.take(8, field)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

fn key_error(path: &Path, key: &str, message: String) -> DataError {
    DataError::new(path, Place::Key(key.to_string()), message)
}

fn usize_of(value: u64, key: &str, path: &Path) -> Result<usize, DataError> {
    usize::try_from(value)
        .map_err(|_| key_error(path, key, format!("{value} does not fit this platform")))
}

/// Where a packed file of a benchmark goes in an output folder.
pub fn packed_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.sfpk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> PackedMeta {
        PackedMeta {
            benchmark: "test bench".into(),
            persons: 2,
            joints: 1,
            classes: 4,
        }
    }

    fn write(path: &Path) {
        let mut w = PackedWriter::create(path, meta()).unwrap();
        w.push(Part::Train, "a", 1, &[1.0; 6]).unwrap();
        w.push(Part::Train, "bb", 3, &[2.0; 18]).unwrap();
        w.push(Part::Test, "ccc", 0, &[-0.5; 12]).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn round_trip_keeps_sides_names_labels_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sfpk");
        write(&path);
        let train = PackedClips::open(&path, Part::Train).unwrap();
        assert_eq!(train.len(), 2);
        assert_eq!(train.meta(), &meta());
        assert_eq!(
            (train.name(1), train.label(1), train.frames(1)),
            ("bb", 3, 3)
        );
        assert_eq!(train.clip(1), Sequence::new(3, 2, 1, vec![2.0; 18]));
        let test = PackedClips::open(&path, Part::Test).unwrap();
        assert_eq!(test.len(), 1);
        assert_eq!(test.clip(0), Sequence::new(2, 2, 1, vec![-0.5; 12]));
        assert_eq!(test.name(0), "ccc");
    }

    #[test]
    fn the_data_is_aligned_for_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sfpk");
        write(&path);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[128..132], &1.0f32.to_le_bytes());
        let index_offset = u64::from_le_bytes(bytes[64..72].try_into().unwrap());
        assert_eq!(index_offset % 8, 0);
    }

    #[test]
    fn writer_refuses_misordered_or_malformed_clips() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackedWriter::create(&dir.path().join("x.sfpk"), meta()).unwrap();
        assert!(w.push(Part::Train, "a", 0, &[0.0; 5]).is_err());
        assert!(w.push(Part::Train, "a", 4, &[0.0; 6]).is_err());
        w.push(Part::Test, "a", 0, &[0.0; 6]).unwrap();
        assert!(w.push(Part::Train, "b", 0, &[0.0; 6]).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sfpk");
        write(&path);
        let bytes = std::fs::read(&path).unwrap();
        for len in 0..bytes.len() {
            let r = PackedClips::from_bytes(bytes[..len].to_vec(), &path, Part::Train);
            assert!(r.is_err(), "truncated to {len} bytes was accepted");
        }
    }
}
