//! Valid-frame crop and linear temporal resize (CTR-GCN's `valid_crop_resize`).

use super::SampleShape;
use crate::data::Sequence;
use rand::{Rng, RngExt};
use std::ops::Range;

/// CTR-GCN's training crop never goes below 64 frames (a constant in its code, whatever the
/// window), unless the clip itself is shorter.
const MIN_TRAIN_CROP: usize = 64;

/// How the window of valid frames to resize is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    /// Training: a random share p ~ U[min, max) of the valid frames at a random start.
    Random { min: f64, max: f64 },
    /// Testing: the central share p of the valid frames.
    Central { p: f64 },
}

impl Crop {
    /// CTR-GCN's training crop, p ∈ [0.5, 1).
    pub const TRAIN: Crop = Crop::Random { min: 0.5, max: 1.0 };
    /// CTR-GCN's test crop, the central 95 %.
    pub const TEST: Crop = Crop::Central { p: 0.95 };

    /// The frames to keep out of `valid` leading valid frames (`valid` ≥ 1); never empty.
    pub fn frames(&self, valid: usize, rng: &mut impl Rng) -> Range<usize> {
        match *self {
            Crop::Random { min, max } => {
                let p = rng.random::<f64>() * (max - min) + min;
                let wanted = (valid as f64 * p).floor() as usize;
                let len = wanted.max(MIN_TRAIN_CROP).min(valid);
                let start = rng.random_range(0..=valid - len);
                start..start + len
            }
            Crop::Central { p } => {
                // Python's `int((1 - p) * valid / 2)`, evaluated the same way.
                let bias = ((1.0 - p) * valid as f64 / 2.0) as usize;
                if 2 * bias < valid {
                    bias..valid - bias
                } else {
                    0..valid
                }
            }
        }
    }
}

/// The number of valid frames as CTR-GCN counts them: frames whose coordinate sum (over
/// channels, then persons, then joints) is not zero. Valid frames are taken to be the leading
/// ones.
pub fn valid_frames(clip: &Sequence) -> usize {
    (0..clip.frames)
        .filter(|&t| {
            let frame = clip.frame(t);
            let point = |m: usize, v: usize| {
                let p = &frame[(m * clip.joints + v) * 3..][..3];
                p[0] + p[1] + p[2]
            };
            let sum: f32 = (0..clip.joints)
                .map(|v| (0..clip.persons).map(|m| point(m, v)).sum::<f32>())
                .sum();
            sum != 0.0
        })
        .count()
}

/// Resamples `frames` of `clip` to `shape.frames` frames by linear interpolation along time,
/// with PyTorch's `align_corners=False` rules (computed in f32 as PyTorch does on the CPU), and
/// writes them in `(C, T, V, M)` layout. Output persons beyond the clip's are zero.
pub fn resize_into(clip: &Sequence, frames: Range<usize>, shape: SampleShape, out: &mut [f32]) {
    debug_assert_eq!(out.len(), shape.len());
    debug_assert!(!frames.is_empty() && frames.end <= clip.frames);
    debug_assert!(clip.joints == shape.joints && clip.persons <= shape.persons);
    out.fill(0.0);
    let len = frames.len();
    let scale = len as f32 / shape.frames as f32;
    for j in 0..shape.frames {
        let src = (scale * (j as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src as usize).min(len - 1);
        let i1 = if i0 < len - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        let x0 = clip.frame(frames.start + i0);
        let x1 = clip.frame(frames.start + i1);
        for m in 0..clip.persons {
            for v in 0..clip.joints {
                let from = (m * clip.joints + v) * 3;
                for c in 0..3 {
                    out[shape.at(c, j, v, m)] = l0 * x0[from + c] + l1 * x1[from + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// One person, one joint, x = t + 1, y = 10 (t + 1), z = -(t + 1).
    fn ramp(frames: usize) -> Sequence {
        let data = (0..frames)
            .flat_map(|t| {
                let x = t as f32 + 1.0;
                [x, 10.0 * x, -x]
            })
            .collect();
        Sequence::new(frames, 1, 1, data)
    }

    fn shape(frames: usize, persons: usize) -> SampleShape {
        SampleShape {
            channels: 3,
            frames,
            joints: 1,
            persons,
        }
    }

    #[test]
    fn resize_to_the_same_length_is_the_identity() {
        let clip = ramp(7);
        let mut out = vec![f32::NAN; 21];
        resize_into(&clip, 0..7, shape(7, 1), &mut out);
        let x: Vec<f32> = (1..=7).map(|t| t as f32).collect();
        assert_eq!(&out[0..7], &x[..]);
        assert_eq!(out[7..14].iter().sum::<f32>(), 280.0);
    }

    #[test]
    fn upsampling_follows_align_corners_false() {
        // L = 2 → W = 4: src = (j + 0.5)/2 - 0.5 = -0.25 (→ 0), 0.25, 0.75, 1.25 (i1 clamped).
        let clip = ramp(2);
        let mut out = vec![0.0; 12];
        resize_into(&clip, 0..2, shape(4, 1), &mut out);
        assert_eq!(&out[0..4], &[1.0, 1.25, 1.75, 2.0]);
        assert_eq!(&out[8..12], &[-1.0, -1.25, -1.75, -2.0]);
    }

    #[test]
    fn downsampling_follows_align_corners_false() {
        // L = 6 → W = 4: scale 1.5, src = 0.25, 1.75, 3.25, 4.75 over frames 2..8 of x = t + 1.
        let clip = ramp(9);
        let mut out = vec![0.0; 12];
        resize_into(&clip, 2..8, shape(4, 1), &mut out);
        assert_eq!(&out[0..4], &[3.25, 4.75, 6.25, 7.75]);
    }

    #[test]
    fn missing_persons_are_zero() {
        let clip = ramp(3);
        let mut out = vec![f32::NAN; 3 * 5 * 2];
        resize_into(&clip, 0..3, shape(5, 2), &mut out);
        let s = shape(5, 2);
        for c in 0..3 {
            for t in 0..5 {
                assert_eq!(out[s.at(c, t, 0, 1)], 0.0);
                assert!(out[s.at(c, t, 0, 0)] != 0.0);
            }
        }
    }

    #[test]
    fn valid_frames_counts_non_zero_frames() {
        let mut data = vec![0.0; 5 * 2 * 2 * 3];
        data[0] = 1.0; // frame 0, person 0
        data[12 + 11] = -2.0; // frame 1, person 1 only
        data[24] = 1.0; // frame 2: values cancel to a zero sum, as CTR-GCN counts
        data[25] = -1.0;
        let clip = Sequence::new(5, 2, 2, data);
        assert_eq!(valid_frames(&clip), 2);
    }

    #[test]
    fn test_crop_keeps_the_central_95_percent() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(Crop::TEST.frames(100, &mut rng), 2..98);
        assert_eq!(Crop::TEST.frames(40, &mut rng), 1..39);
        assert_eq!(Crop::TEST.frames(39, &mut rng), 0..39);
        assert_eq!(Crop::TEST.frames(1, &mut rng), 0..1);
    }

    #[test]
    fn train_crop_stays_within_the_rules() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut lengths = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let r = Crop::TRAIN.frames(300, &mut rng);
            assert!(r.end <= 300 && (150..300).contains(&r.len()), "{r:?}");
            lengths.insert(r.len());
            // Short clips: at least 64 frames or the whole clip.
            let r = Crop::TRAIN.frames(100, &mut rng);
            assert!(r.end <= 100 && r.len() >= 64, "{r:?}");
            assert_eq!(Crop::TRAIN.frames(40, &mut rng), 0..40);
        }
        assert!(lengths.len() > 100, "p is drawn, not fixed");
    }
}
