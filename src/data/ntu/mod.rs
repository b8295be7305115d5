//! NTU RGB+D 60 and 120: the `.skeleton` parser, CTR-GCN's three preprocessing stages
//! reproduced bit for bit, the standard benchmark splits, CTR-GCN's `.npz` layout and the
//! `prepare` command that turns a folder of raw files into training files.
//!
//! The pipeline of one file is [`parse_skeleton`] → [`RawSkeleton::from_file`] (stage 1) →
//! [`denoise`] (stage 2) → [`translate`] (stage 3); [`process_file`] runs all of it.

mod name;
mod names;
pub mod npz;
mod numeric;
pub mod prepare;
mod skeleton;
mod split;
mod stage1;
mod stage2;
mod stage3;

pub use name::SampleName;
pub use names::{read_name_list, shipped_names};
pub use numeric::{pairwise_sum, variance_sum};
pub use skeleton::{BodyFrame, JOINTS, SkeletonFile, parse_skeleton};
pub use split::{Benchmark, Split};
pub use stage1::{RawBody, RawSkeleton};
pub use stage2::{ACTOR_WIDTH, Denoised, Filtered, denoise};
pub use stage3::{FRAME_WIDTH, PERSONS, SingleActor, translate};

use crate::data::{DataError, Place, Sequence};
use std::path::Path;

/// NTU RGB+D 60 or 120: which name list, benchmarks, class count and one-actor rule apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    Ntu60,
    Ntu120,
}

impl Edition {
    pub fn classes(self) -> usize {
        match self {
            Edition::Ntu60 => 60,
            Edition::Ntu120 => 120,
        }
    }

    /// The two standard benchmarks, in the order CTR-GCN writes them.
    pub fn benchmarks(self) -> [Benchmark; 2] {
        match self {
            Edition::Ntu60 => [Benchmark::Ntu60XSub, Benchmark::Ntu60XView],
            Edition::Ntu120 => [Benchmark::Ntu120XSub, Benchmark::Ntu120XSet],
        }
    }

    /// The script of each edition fills the second person of one-actor clips differently.
    pub fn single_actor(self) -> SingleActor {
        match self {
            Edition::Ntu60 => SingleActor::Zeros,
            Edition::Ntu120 => SingleActor::Duplicate,
        }
    }

    pub fn contains(self, name: &SampleName) -> bool {
        match self {
            Edition::Ntu60 => name.in_ntu60(),
            Edition::Ntu120 => true,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Edition::Ntu60 => "NTU RGB+D 60",
            Edition::Ntu120 => "NTU RGB+D 120",
        }
    }
}

/// One `.skeleton` file through all three stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub name: SampleName,
    /// `(frames, 2, 25, 3)`, translated, unpadded.
    pub sequence: Sequence,
    /// Frames of the file dropped in stage 1 because they had no body.
    pub dropped_frames: usize,
}

/// Parses and preprocesses one `.skeleton` file held in memory. The name of `path` must be
/// `SsssCcccPpppRrrrAaaa.skeleton`; it gives the sample name and label.
pub fn process_file(
    bytes: &[u8],
    path: &Path,
    single: SingleActor,
) -> Result<Processed, DataError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = SampleName::from_file_name(file_name)
        .map_err(|message| DataError::new(path, Place::File, message))?;
    let raw = RawSkeleton::from_file(parse_skeleton(bytes, path)?, path)?;
    let denoised = denoise(&raw, path)?;
    let sequence = translate(&denoised, single, path)?;
    Ok(Processed {
        name,
        sequence,
        dropped_frames: raw.dropped_frames.len(),
    })
}
