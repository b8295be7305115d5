//! Feeders: turn one stored clip into one network input sample, `(C = 3, T, V, M)` f32 as
//! CTR-GCN's feeders emit it, with the training augmentations drawn from a per-sample generator.

mod crop;
mod key;
mod ntu;
mod pyskl;
mod rotate;
mod shape;
mod streams;
mod ucla;

pub use crop::{Crop, resize_into, valid_frames};
pub use key::{SampleKey, noise_rng, shuffle_rng};
pub use ntu::NtuFeeder;
pub use pyskl::{
    CLIP_LEN, FLIP_PROBABILITY, Pose, Precision, PysklFeeder, ROTATION, TEST_CLIPS, f32_to_half,
    flip_joints, half_to_f32, pre_normalize, rot3d, rotate_pose, round_to_half, test_indices,
    train_indices, write_sample,
};
pub use rotate::{MAX_ANGLE, random_rotation, rotate, rotation_matrix};
pub use shape::SampleShape;
pub use streams::{
    INFOGCN_PARENTS, NTU_BONE_PAIRS, UCLA_BONE_PAIRS, bones, kth_ancestors, kth_mode, motion,
};
pub use ucla::UclaFeeder;

use crate::data::Sequence;

/// Which derived input a feeder emits (motion is a separate switch applied last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Joint,
    /// CTR-GCN's bone pairs of the dataset.
    Bone,
    /// InfoGCN's k-th mode (NTU joint order only; k ≥ 1, and k ≥ 8 is the raw joints).
    KthMode(usize),
}

/// Makes one input sample out of one clip. Implementations hold only settings, so one feeder
/// serves all batcher threads; all randomness comes from `key`.
pub trait Feeder: Send + Sync {
    /// The shape of every sample this feeder writes.
    fn shape(&self) -> SampleShape;

    /// Writes the sample for `clip` into `out` (`shape().len()` values). A clip the feeder cannot
    /// take (wrong joint count, too many persons) is an error that says why.
    fn feed(&self, clip: &Sequence, key: SampleKey, out: &mut [f32]) -> Result<(), String>;

    /// Clips per sample: more than one where testing averages several (pyskl's 10-clip test).
    fn clips(&self) -> usize {
        1
    }

    /// Writes all [`Feeder::clips`] clips of the sample, clip after clip (`clips() ·
    /// shape().len()` values).
    fn feed_clips(&self, clip: &Sequence, key: SampleKey, out: &mut [f32]) -> Result<(), String> {
        self.feed(clip, key, out)
    }
}
