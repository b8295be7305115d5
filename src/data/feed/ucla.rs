use super::streams::{UCLA_BONE_PAIRS, bones, motion};
use super::{Feeder, SampleKey, SampleShape, Stream};
use crate::data::Sequence;
use rand::{Rng, RngExt};

const JOINTS: usize = 20;
/// Training draws its frame indices from this many concatenated copies of the clip.
const SAMPLING_COPIES: usize = 100;

/// CTR-GCN's NW-UCLA feeder (`feeder_ucla.Feeder`): centre on frame 0's spine, random view
/// rotation and scale (training), per-axis min-max normalisation to [−1, 1], `frames` sampled
/// frames, then bone and motion. Computed in f64 like the reference, emitted as f32
/// `(3, frames, 20, 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct UclaFeeder {
    pub frames: usize,
    pub train: bool,
    pub stream: Stream,
    pub motion: bool,
}

impl UclaFeeder {
    /// CTR-GCN's settings: 52 frames.
    pub fn new(train: bool, stream: Stream, motion: bool) -> Self {
        Self {
            frames: 52,
            train,
            stream,
            motion,
        }
    }
}

impl Feeder for UclaFeeder {
    fn shape(&self) -> SampleShape {
        SampleShape {
            channels: 3,
            frames: self.frames,
            joints: JOINTS,
            persons: 1,
        }
    }

    fn feed(&self, clip: &Sequence, key: SampleKey, out: &mut [f32]) -> Result<(), String> {
        let shape = self.shape();
        if (clip.persons, clip.joints) != (1, JOINTS) {
            return Err(format!(
                "the NW-UCLA feeder takes 1 person of 20 joints, the clip has {} of {}",
                clip.persons, clip.joints
            ));
        }
        if clip.frames == 0 || self.frames == 0 {
            return Err("the clip and the sample need at least one frame".into());
        }
        if let Stream::KthMode(_) = self.stream {
            return Err("k-th mode is defined on the NTU tree only".into());
        }
        if out.len() != shape.len() {
            return Err(format!(
                "output holds {} values, not {}",
                out.len(),
                shape.len()
            ));
        }
        let mut rng = key.rng();
        let view = if self.train {
            view_transform(&mut rng)
        } else {
            IDENTITY
        };
        let points = normalised(clip, &view);
        let picks = if self.train {
            random_frames(clip.frames, self.frames, &mut rng)
        } else {
            spaced_frames(clip.frames, self.frames)
        };
        for (t, &frame) in picks.iter().enumerate() {
            for v in 0..JOINTS {
                let p = points[frame * JOINTS + v];
                for (c, value) in p.into_iter().enumerate() {
                    out[shape.at(c, t, v, 0)] = value as f32;
                }
            }
        }
        if self.stream == Stream::Bone {
            let joints = out.to_vec();
            bones(&joints, shape, &UCLA_BONE_PAIRS, out);
        }
        if self.motion {
            motion(out, shape);
        }
        Ok(())
    }
}

type Matrix = [[f64; 3]; 3];
const IDENTITY: Matrix = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// Ry·Rx·sI for whole-degree angles ax, ay ∈ [−60, 60] and a scale s ∈ [0.5, 1.5).
fn view_transform(rng: &mut impl Rng) -> Matrix {
    let ax = f64::from(rng.random_range(-60i32..=60)).to_radians();
    let ay = f64::from(rng.random_range(-60i32..=60)).to_radians();
    let s: f64 = rng.random_range(0.5..1.5);
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, ax.cos(), ax.sin()],
        [0.0, -ax.sin(), ax.cos()],
    ];
    let ry = [
        [ay.cos(), 0.0, -ay.sin()],
        [0.0, 1.0, 0.0],
        [ay.sin(), 0.0, ay.cos()],
    ];
    let scale = [[s, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, s]];
    matmul(&ry, &matmul(&rx, &scale))
}

fn matmul(a: &Matrix, b: &Matrix) -> Matrix {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// Centres on frame 0's joint 2, applies `p′ = p·view` (row vectors), then maps each axis to
/// [−1, 1] by its minimum and maximum over all frames and joints. An axis with no spread (which
/// CTR-GCN would turn into NaN) maps to 0.
fn normalised(clip: &Sequence, view: &Matrix) -> Vec<[f64; 3]> {
    let centre: [f64; 3] = std::array::from_fn(|c| f64::from(clip.frame(0)[3 + c]));
    let points: Vec<[f64; 3]> = clip
        .data
        .chunks_exact(3)
        .map(|p| {
            let q: [f64; 3] = std::array::from_fn(|c| f64::from(p[c]) - centre[c]);
            std::array::from_fn(|j| q[0] * view[0][j] + q[1] * view[1][j] + q[2] * view[2][j])
        })
        .collect();
    let mut low = [f64::INFINITY; 3];
    let mut high = [f64::NEG_INFINITY; 3];
    for p in &points {
        for c in 0..3 {
            low[c] = low[c].min(p[c]);
            high[c] = high[c].max(p[c]);
        }
    }
    points
        .into_iter()
        .map(|p| {
            std::array::from_fn(|c| {
                let range = high[c] - low[c];
                if range > 0.0 {
                    (p[c] - low[c]) / range * 2.0 - 1.0
                } else {
                    0.0
                }
            })
        })
        .collect()
}

/// Training: `count` distinct draws from `SAMPLING_COPIES` concatenated copies of the clip's
/// frame indices, sorted (so short clips repeat frames and long ones skip).
fn random_frames(frames: usize, count: usize, rng: &mut impl Rng) -> Vec<usize> {
    let pool = frames * SAMPLING_COPIES;
    let mut picks: Vec<usize> = rand::seq::index::sample(rng, pool, count.min(pool))
        .into_iter()
        .map(|i| i % frames)
        .collect();
    picks.sort_unstable();
    picks
}

/// Test: ⌊linspace(0, frames − 1, count)⌋ with NumPy's arithmetic (i·step, exact last point).
fn spaced_frames(frames: usize, count: usize) -> Vec<usize> {
    let last = (frames - 1) as f64;
    let step = last / (count.max(2) - 1) as f64;
    (0..count)
        .map(|i| {
            if i + 1 == count && count > 1 {
                frames - 1
            } else {
                (i as f64 * step) as usize
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn spaced_frames_match_numpy_linspace() {
        // np.linspace(0, 9, 4).astype(int) = [0, 3, 6, 9]; (0, 30, 52) has 0, 0, 1, 1, 2, …
        assert_eq!(spaced_frames(10, 4), [0, 3, 6, 9]);
        let s = spaced_frames(31, 52);
        assert_eq!(&s[..6], &[0, 0, 1, 1, 2, 2]);
        assert_eq!(s[51], 30);
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(spaced_frames(1, 52), vec![0; 52]);
        assert_eq!(spaced_frames(201, 52)[1], 3);
    }

    #[test]
    fn random_frames_are_sorted_and_in_range() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for frames in [1, 2, 31, 201] {
            let picks = random_frames(frames, 52, &mut rng);
            assert_eq!(picks.len(), 52);
            assert!(picks.windows(2).all(|w| w[0] <= w[1]));
            assert!(picks.iter().all(|&p| p < frames));
        }
        // From 100 copies, each frame of a 1-frame… 3-frame clip is picked many times.
        let picks = random_frames(3, 52, &mut rng);
        assert!((0..3).all(|f| picks.contains(&f)));
    }

    #[test]
    fn view_transform_is_a_scaled_rotation() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let m = view_transform(&mut rng);
            // Mᵀ·M = s²·I.
            let mtm: Matrix = std::array::from_fn(|i| {
                std::array::from_fn(|j| (0..3).map(|k| m[k][i] * m[k][j]).sum())
            });
            let s2 = mtm[0][0];
            assert!((0.25..2.25).contains(&s2), "{s2}");
            for (i, row) in mtm.iter().enumerate() {
                for (j, value) in row.iter().enumerate() {
                    let expected = if i == j { s2 } else { 0.0 };
                    assert!((value - expected).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn normalisation_by_hand() {
        // Two frames of 20 joints; joint 2 of frame 0 is at (1, 1, 1).
        let mut data = vec![1.0f32; 2 * 20 * 3];
        data[0..3].copy_from_slice(&[3.0, 1.0, 1.0]); // frame 0, joint 1: x range [0, 2] after centring
        data[60..63].copy_from_slice(&[1.0, 5.0, 1.0]); // frame 1, joint 1: y range [0, 4]
        let clip = Sequence::new(2, 1, 20, data);
        let p = normalised(&clip, &IDENTITY);
        assert_eq!(p[0], [1.0, -1.0, 0.0], "x max, y min, z has no spread");
        assert_eq!(p[1], [-1.0, -1.0, 0.0]);
        assert_eq!(p[20], [-1.0, 1.0, 0.0]);
    }
}
