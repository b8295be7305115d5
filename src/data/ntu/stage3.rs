//! Stage 3 of CTR-GCN's NTU preprocessing (`seq_transformation`): centre and lay out two persons.

use super::numeric::pairwise_sum;
use super::skeleton::JOINTS;
use super::stage2::{ACTOR_WIDTH, Denoised};
use crate::data::{DataError, Place, Sequence};
use std::path::Path;

/// Persons per frame in CTR-GCN's NTU arrays.
pub const PERSONS: usize = 2;
/// Values per frame: 2 persons × 25 joints × xyz.
pub const FRAME_WIDTH: usize = PERSONS * ACTOR_WIDTH;

/// What fills the second person of a one-actor sequence; the two CTR-GCN scripts differ here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleActor {
    /// Zeros, as the NTU RGB+D 60 script does.
    Zeros,
    /// A copy of the first person, as the NTU RGB+D 120 script does.
    Duplicate,
}

/// Moves the origin to actor 1's mid-spine (joint 2) in its first non-zero frame, keeps
/// each actor's missing frames at zero, and lays the result out as `(frames, 2, 25, 3)`.
pub fn translate(
    denoised: &Denoised,
    single: SingleActor,
    path: &Path,
) -> Result<Sequence, DataError> {
    let width = denoised.actors * ACTOR_WIDTH;
    if !(1..=2).contains(&denoised.actors) || denoised.joints.len() != denoised.frames * width {
        return Err(DataError::new(
            path,
            Place::File,
            format!(
                "{} values are not {} frames of {} actors",
                denoised.joints.len(),
                denoised.frames,
                denoised.actors
            ),
        ));
    }
    let rows = || denoised.joints.chunks_exact(width);
    let Some(first) = rows().position(|row| row[..ACTOR_WIDTH].iter().any(|&v| v != 0.0)) else {
        return Err(DataError::new(
            path,
            Place::File,
            format!(
                "actor 1 is zero in all {} frames left after denoising, so there is no origin",
                denoised.frames
            ),
        ));
    };
    let origin: [f32; 3] = denoised.joints[first * width + 3..first * width + 6]
        .try_into()
        .expect("3 values");

    let mut data = Vec::with_capacity(denoised.frames * FRAME_WIDTH);
    for row in rows() {
        let start = data.len();
        if denoised.actors == 2 {
            for actor in row.chunks_exact(ACTOR_WIDTH) {
                // The script tests for missing frames before it translates them.
                if pairwise_sum(actor) == 0.0 {
                    data.extend_from_slice(&[0.0; ACTOR_WIDTH]);
                } else {
                    push_translated(&mut data, actor, origin);
                }
            }
        } else {
            push_translated(&mut data, row, origin);
            match single {
                SingleActor::Zeros => data.extend_from_slice(&[0.0; ACTOR_WIDTH]),
                SingleActor::Duplicate => data.extend_from_within(start..start + ACTOR_WIDTH),
            }
        }
    }
    Ok(Sequence::new(denoised.frames, PERSONS, JOINTS, data))
}

fn push_translated(out: &mut Vec<f32>, actor: &[f32], origin: [f32; 3]) {
    for joint in actor.chunks_exact(3) {
        out.extend([
            joint[0] - origin[0],
            joint[1] - origin[1],
            joint[2] - origin[2],
        ]);
    }
}
