//! Stage 2 of CTR-GCN's NTU preprocessing (`get_raw_denoised_data`): pick at most two actors.
//!
//! Reproduces the script's quirks on purpose: intervals assume contiguous presence, two
//! intervals that share a single frame count as disjoint, the second actor's interval starts
//! at 0, and only the multi-body path removes all-zero frames.

use super::numeric::{pairwise_sum, variance_sum};
use super::skeleton::JOINTS;
use super::stage1::{RawBody, RawSkeleton};
use crate::data::{DataError, Place};
use std::path::Path;

/// Bodies listed in at most this many frames are dropped as noise.
const MAX_NOISE_ROWS: usize = 11;
/// A frame is noisy when its x spread exceeds this fraction of its y spread.
const SPREAD_RATIO: f64 = 0.8;
/// Bodies with at least this fraction of noisy frames are dropped.
const NOISY_FRACTION: f64 = 0.69754;

/// Values per actor per frame: 25 joints × xyz.
pub const ACTOR_WIDTH: usize = JOINTS * 3;

/// Why a body took no part in the output.
#[derive(Debug, Clone, PartialEq)]
pub enum Filtered {
    /// Listed in too few frames.
    Length { id: u64, rows: usize },
    /// Too many frames wider than tall.
    Spread { id: u64, noisy_fraction: f64 },
    /// Overlaps both actors' intervals.
    Overlap { id: u64 },
}

/// A file after stage 2.
#[derive(Debug, Clone, PartialEq)]
pub struct Denoised {
    /// 1 or 2.
    pub actors: usize,
    /// Frames left in `joints`.
    pub frames: usize,
    /// `(frames, actors · 75)` float32: per frame, actor-major `[joint][x, y, z]`.
    pub joints: Vec<f32>,
    /// `(valid frames, actors, 25, 2)` colour positions, NaN where absent. Frames removed from
    /// `joints` as missing stay here as NaN rows, as in the script.
    pub colors: Vec<f32>,
    /// Bodies written into each actor's slot, in the order written.
    pub assigned: [Vec<u64>; 2],
    /// The final motion of each body that survived the filters, in actor-choice order.
    pub motions: Vec<(u64, f32)>,
    pub filtered: Vec<Filtered>,
}

/// Chooses the actors of a stage-1 file and lays them out frame by frame.
pub fn denoise(raw: &RawSkeleton, path: &Path) -> Result<Denoised, DataError> {
    let frames = raw.valid_frames;
    // Stage 1 never builds these; a hand-made record might.
    if let Some(body) = raw.bodies.iter().find(|b| {
        b.joints.is_empty() || b.joints.len() % JOINTS != 0 || b.colors.len() != b.joints.len()
    }) {
        return Err(DataError::new(
            path,
            Place::File,
            format!(
                "body {} has {} joint rows and {} colour rows, not whole frames of {JOINTS}",
                body.id,
                body.joints.len(),
                body.colors.len()
            ),
        ));
    }
    if let [only] = raw.bodies.as_slice() {
        let mut slots = Slots::new(frames, 1);
        slots.place(only, 0, path)?;
        return Ok(slots.into_denoised(Vec::new(), Vec::new()));
    }

    let mut filtered = Vec::new();
    let mut survivors: Vec<(&RawBody, f32)> = Vec::new();
    for body in &raw.bodies {
        if body.rows() <= MAX_NOISE_ROWS {
            filtered.push(Filtered::Length {
                id: body.id,
                rows: body.rows(),
            });
        } else {
            // Stage 1 sets it for every body of a multi-body file.
            let motion = body.motion.unwrap_or_else(|| variance_sum(&body.joints));
            survivors.push((body, motion));
        }
    }
    if survivors.len() != 1 {
        survivors = spread_filter(survivors, &mut filtered);
    }
    if survivors.len() > 1 {
        // Stable, like Python's sorted(reverse=True): equal motions keep their order.
        survivors.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    let motions = survivors.iter().map(|(b, m)| (b.id, *m)).collect();

    let mut slots = match survivors.as_slice() {
        [] => {
            return Err(DataError::new(
                path,
                Place::File,
                format!(
                    "no body is left after denoising: each of the {} bodies is listed in at most {MAX_NOISE_ROWS} frames",
                    raw.bodies.len()
                ),
            ));
        }
        [(only, _)] => {
            let mut slots = Slots::new(frames, 1);
            slots.place(only, 0, path)?;
            slots
        }
        [(first, _), rest @ ..] => {
            let mut slots = Slots::new(frames, 2);
            slots.place(first, 0, path)?;
            let mut actor1 = (first.start, first.end());
            let mut actor2 = (0, 0);
            for (body, _) in rest {
                let interval = (body.start, body.end());
                if !overlaps(actor1, interval) {
                    slots.place(body, 0, path)?;
                    actor1 = widen(actor1, interval);
                } else if !overlaps(actor2, interval) {
                    slots.place(body, 1, path)?;
                    actor2 = widen(actor2, interval);
                } else {
                    filtered.push(Filtered::Overlap { id: body.id });
                }
            }
            slots
        }
    };
    slots.remove_missing_frames();
    Ok(slots.into_denoised(motions, filtered))
}

/// Drops bodies whose frames are mostly wider than tall; lowers the motion of the others to
/// that of their reasonable frames. Stops as soon as a single body is left.
fn spread_filter<'a>(
    bodies: Vec<(&'a RawBody, f32)>,
    filtered: &mut Vec<Filtered>,
) -> Vec<(&'a RawBody, f32)> {
    let mut alive = vec![true; bodies.len()];
    let mut left = bodies.len();
    let mut motions: Vec<f32> = bodies.iter().map(|(_, m)| *m).collect();
    for (k, (body, motion)) in bodies.iter().enumerate() {
        if left == 1 {
            break;
        }
        let reasonable: Vec<usize> = (0..body.rows())
            .filter(|&r| spread_is_reasonable(body.frame(r)))
            .collect();
        let noisy = body.rows() - reasonable.len();
        if noisy == 0 {
            continue;
        }
        let noisy_fraction = noisy as f64 / body.rows() as f64;
        if noisy_fraction >= NOISY_FRACTION {
            alive[k] = false;
            left -= 1;
            filtered.push(Filtered::Spread {
                id: body.id,
                noisy_fraction,
            });
        } else {
            let rows: Vec<[f32; 3]> = reasonable
                .iter()
                .flat_map(|&r| body.frame(r).iter().copied())
                .collect();
            let reasonable_motion = variance_sum(&rows);
            if reasonable_motion < *motion {
                motions[k] = reasonable_motion;
            }
        }
    }
    bodies
        .into_iter()
        .zip(motions)
        .zip(alive)
        .filter_map(|(((body, _), motion), alive)| alive.then_some((body, motion)))
        .collect()
}

/// `(max x − min x) <= 0.8 · (max y − min y)`: the spreads are float32, and the product and
/// comparison are float64, as numpy 1.x evaluates a Python float times a float32 scalar.
fn spread_is_reasonable(joints: &[[f32; 3]]) -> bool {
    let range = |c: usize| {
        let (lo, hi) = joints
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p[c]), hi.max(p[c]))
            });
        hi - lo
    };
    f64::from(range(0)) <= SPREAD_RATIO * f64::from(range(1))
}

/// The script's overlap test on inclusive intervals: sharing one frame does not count.
fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.1.min(b.1) as i64 - a.0.max(b.0) as i64 > 0
}

fn widen(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0.min(b.0), a.1.max(b.1))
}

/// The output arrays while actors are being written into them.
struct Slots {
    actors: usize,
    frames: usize,
    joints: Vec<f32>,
    colors: Vec<f32>,
    assigned: [Vec<u64>; 2],
}

impl Slots {
    fn new(frames: usize, actors: usize) -> Self {
        Self {
            actors,
            frames,
            joints: vec![0.0; frames * actors * ACTOR_WIDTH],
            colors: vec![f32::NAN; frames * actors * JOINTS * 2],
            assigned: [Vec::new(), Vec::new()],
        }
    }

    /// Writes `body` over its interval into `actor`'s columns, replacing what was there.
    fn place(&mut self, body: &RawBody, actor: usize, path: &Path) -> Result<(), DataError> {
        if body.end() >= self.frames {
            return Err(DataError::new(
                path,
                Place::Frame {
                    frame: body.start,
                    line: None,
                },
                format!(
                    "body {} is listed {} times from valid frame {} on, past the last of {} valid frames (listed twice in one frame?)",
                    body.id,
                    body.rows(),
                    body.start,
                    self.frames
                ),
            ));
        }
        let width = self.actors * ACTOR_WIDTH;
        for r in 0..body.rows() {
            let t = body.start + r;
            let row = &mut self.joints[t * width + actor * ACTOR_WIDTH..][..ACTOR_WIDTH];
            for (dst, src) in row.chunks_exact_mut(3).zip(body.frame(r)) {
                dst.copy_from_slice(src);
            }
            let colors = &mut self.colors[(t * self.actors + actor) * JOINTS * 2..][..JOINTS * 2];
            for (dst, src) in colors
                .chunks_exact_mut(2)
                .zip(&body.colors[r * JOINTS..(r + 1) * JOINTS])
            {
                dst.copy_from_slice(src);
            }
        }
        self.assigned[actor].push(body.id);
        Ok(())
    }

    /// Cuts the frames whose values sum to 0 (numpy's float32 row sum) out of the joints and
    /// blanks their colours.
    fn remove_missing_frames(&mut self) {
        let width = self.actors * ACTOR_WIDTH;
        let color_width = self.actors * JOINTS * 2;
        let mut kept = Vec::with_capacity(self.joints.len());
        for (t, row) in self.joints.chunks_exact(width).enumerate() {
            if pairwise_sum(row) != 0.0 {
                kept.extend_from_slice(row);
            } else {
                self.colors[t * color_width..(t + 1) * color_width].fill(f32::NAN);
            }
        }
        self.frames = kept.len() / width;
        self.joints = kept;
    }

    fn into_denoised(self, motions: Vec<(u64, f32)>, filtered: Vec<Filtered>) -> Denoised {
        Denoised {
            actors: self.actors,
            frames: self.frames,
            joints: self.joints,
            colors: self.colors,
            assigned: self.assigned,
            motions,
            filtered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_sharing_one_frame_do_not_overlap() {
        assert!(!overlaps((0, 10), (10, 20)));
        assert!(overlaps((0, 11), (10, 20)));
        assert!(!overlaps((0, 0), (0, 40)));
    }

    #[test]
    fn wide_frames_are_unreasonable() {
        let mut joints = [[0.0f32; 3]; JOINTS];
        joints[1] = [0.75, 1.0, 0.0];
        assert!(spread_is_reasonable(&joints));
        joints[1] = [0.85, 1.0, 0.0];
        assert!(!spread_is_reasonable(&joints));
    }

    #[test]
    fn spread_threshold_is_compared_in_f64() {
        // 0.8f32 is 0.800000011920929: above 0.8 · 1.0 in f64, equal to it in f32.
        let mut joints = [[0.0f32; 3]; JOINTS];
        joints[1] = [0.8, 1.0, 0.0];
        assert!(!spread_is_reasonable(&joints));
    }
}
