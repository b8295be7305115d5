//! Stage 1 of CTR-GCN's NTU preprocessing (`get_raw_skes_data`): bodies keyed by tracking id.

use super::numeric::variance_sum;
use super::skeleton::{JOINTS, SkeletonFile};
use crate::data::{DataError, Place};
use std::collections::HashMap;
use std::path::Path;

/// Every row one tracking id contributed, stacked in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBody {
    pub id: u64,
    /// `(rows · 25)` joint positions, one block of 25 per appearance.
    pub joints: Vec<[f32; 3]>,
    /// `(rows · 25)` colour-image positions, in step with `joints`.
    pub colors: Vec<[f32; 2]>,
    /// The valid-frame index of the first appearance. CTR-GCN records the interval as
    /// `start, start + 1, …` whatever frames the body really appears in, so
    /// `start..start + rows` is the whole of it.
    pub start: usize,
    /// `np.sum(np.var(joints, axis=0))`, present only when the file has several ids.
    pub motion: Option<f32>,
}

impl RawBody {
    /// How many times the body was listed (the length of CTR-GCN's interval).
    pub fn rows(&self) -> usize {
        self.joints.len() / JOINTS
    }

    /// The last frame of the interval, inclusive (CTR-GCN's `interval[-1]`).
    pub fn end(&self) -> usize {
        self.start + self.rows() - 1
    }

    /// The joints of appearance `r`.
    pub fn frame(&self, r: usize) -> &[[f32; 3]] {
        &self.joints[r * JOINTS..(r + 1) * JOINTS]
    }
}

/// A file after stage 1: bodies in order of first appearance and the frames kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSkeleton {
    pub bodies: Vec<RawBody>,
    /// Frames with at least one body; 0-body frames are dropped and the rest renumbered.
    pub valid_frames: usize,
    /// File frame indices (0-based) that had no body.
    pub dropped_frames: Vec<usize>,
}

impl RawSkeleton {
    /// Groups the bodies of a parsed file by tracking id; fails if no frame has a body.
    pub fn from_file(file: SkeletonFile, path: &Path) -> Result<Self, DataError> {
        let mut bodies: Vec<RawBody> = Vec::new();
        let mut by_id: HashMap<u64, usize> = HashMap::new();
        let mut dropped_frames = Vec::new();
        let mut valid_frames = 0;
        for (f, frame) in file.frames.into_iter().enumerate() {
            if frame.is_empty() {
                dropped_frames.push(f);
                continue;
            }
            for body in frame {
                match by_id.get(&body.id) {
                    Some(&k) => {
                        let known = &mut bodies[k];
                        known.joints.extend_from_slice(&body.joints);
                        known.colors.extend_from_slice(&body.colors);
                    }
                    None => {
                        by_id.insert(body.id, bodies.len());
                        bodies.push(RawBody {
                            id: body.id,
                            joints: body.joints.to_vec(),
                            colors: body.colors.to_vec(),
                            start: valid_frames,
                            motion: None,
                        });
                    }
                }
            }
            valid_frames += 1;
        }
        if valid_frames == 0 {
            let message = if dropped_frames.is_empty() {
                "the file has no frames".to_string()
            } else {
                format!("all {} frames have 0 bodies", dropped_frames.len())
            };
            return Err(DataError::new(path, Place::File, message));
        }
        if bodies.len() > 1 {
            for body in &mut bodies {
                body.motion = Some(variance_sum(&body.joints));
            }
        }
        Ok(Self {
            bodies,
            valid_frames,
            dropped_frames,
        })
    }
}
