//! The input streams derived from joints: bones, InfoGCN's k-th mode and motion. Each works on a
//! `(3, T, V, M)` sample.

use super::SampleShape;

/// CTR-GCN's NTU bone pairs `(v1, v2)`, 1-based: bone[v1] = joint[v1] − joint[v2]. Joint 21 (the
/// spine) is paired with itself, so its bone is zero.
pub const NTU_BONE_PAIRS: [(usize, usize); 25] = [
    (1, 2),
    (2, 21),
    (3, 21),
    (4, 3),
    (5, 21),
    (6, 5),
    (7, 6),
    (8, 7),
    (9, 21),
    (10, 9),
    (11, 10),
    (12, 11),
    (13, 1),
    (14, 13),
    (15, 14),
    (16, 15),
    (17, 1),
    (18, 17),
    (19, 18),
    (20, 19),
    (22, 23),
    (21, 21),
    (23, 8),
    (24, 25),
    (25, 12),
];

/// CTR-GCN's NW-UCLA bone pairs, 1-based; joint 3 (shoulder centre) is the zero bone.
pub const UCLA_BONE_PAIRS: [(usize, usize); 20] = [
    (1, 2),
    (2, 3),
    (3, 3),
    (4, 3),
    (5, 3),
    (6, 5),
    (7, 6),
    (8, 7),
    (9, 3),
    (10, 9),
    (11, 10),
    (12, 11),
    (13, 1),
    (14, 13),
    (15, 14),
    (16, 15),
    (17, 1),
    (18, 17),
    (19, 18),
    (20, 19),
];

/// InfoGCN's NTU tree, rooted at joint 2 (mid spine): `INFOGCN_PARENTS[v − 1]` is the 1-based
/// parent of joint v, 0 for the root.
pub const INFOGCN_PARENTS: [usize; 25] = [
    2, 0, 21, 3, 21, 5, 6, 7, 21, 9, 10, 11, 1, 13, 14, 15, 1, 17, 18, 19, 2, 23, 8, 25, 12,
];

/// bone[v1] = x[v1] − x[v2] for every pair (1-based); joints that are no pair's v1 get 0.
pub fn bones(x: &[f32], shape: SampleShape, pairs: &[(usize, usize)], out: &mut [f32]) {
    out.fill(0.0);
    let m_count = shape.persons;
    for c in 0..shape.channels {
        for t in 0..shape.frames {
            let row = shape.at(c, t, 0, 0);
            for &(v1, v2) in pairs {
                for m in 0..m_count {
                    let (a, b) = (row + (v1 - 1) * m_count + m, row + (v2 - 1) * m_count + m);
                    out[a] = x[a] - x[b];
                }
            }
        }
    }
}

/// For each 0-based joint, its k-th ancestor on InfoGCN's tree, if it has one.
pub fn kth_ancestors(k: usize) -> [Option<usize>; 25] {
    std::array::from_fn(|v| {
        let mut joint = v + 1;
        for _ in 0..k {
            joint = INFOGCN_PARENTS[joint - 1];
            if joint == 0 {
                return None;
            }
        }
        Some(joint - 1)
    })
}

/// InfoGCN's k-th mode input x′ = (I − A^k)·x along the joints: x′[v] = x[v] − x[k-th ancestor
/// of v], or x[v] when v has none. No NTU joint is deeper than 7, so k ≥ 8 gives the raw joints.
pub fn kth_mode(x: &[f32], shape: SampleShape, k: usize, out: &mut [f32]) {
    let ancestors = kth_ancestors(k);
    let m_count = shape.persons;
    for c in 0..shape.channels {
        for t in 0..shape.frames {
            let row = shape.at(c, t, 0, 0);
            for (v, ancestor) in ancestors.iter().enumerate() {
                for m in 0..m_count {
                    let i = row + v * m_count + m;
                    out[i] = match ancestor {
                        Some(a) => x[i] - x[row + a * m_count + m],
                        None => x[i],
                    };
                }
            }
        }
    }
}

/// Motion in place: x[t] ← x[t + 1] − x[t], and the last frame becomes 0.
pub fn motion(x: &mut [f32], shape: SampleShape) {
    let frame = shape.frame_stride();
    for c in 0..shape.channels {
        let channel = &mut x[shape.at(c, 0, 0, 0)..][..shape.frames * frame];
        for t in 0..shape.frames.saturating_sub(1) {
            for i in t * frame..(t + 1) * frame {
                channel[i] = channel[i + frame] - channel[i];
            }
        }
        if let Some(last) = channel.chunks_exact_mut(frame).last() {
            last.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(frames: usize, joints: usize, persons: usize) -> SampleShape {
        SampleShape {
            channels: 3,
            frames,
            joints,
            persons,
        }
    }

    /// x[c, t, v, m] = 1000 c + 100 t + v + 0.5 m (distinct, easy to subtract by hand).
    fn numbered(s: SampleShape) -> Vec<f32> {
        let mut x = vec![0.0; s.len()];
        for c in 0..3 {
            for t in 0..s.frames {
                for v in 0..s.joints {
                    for m in 0..s.persons {
                        x[s.at(c, t, v, m)] = (1000 * c + 100 * t + v) as f32 + 0.5 * m as f32;
                    }
                }
            }
        }
        x
    }

    #[test]
    fn ntu_bones_by_hand() {
        let s = shape(2, 25, 2);
        let x = numbered(s);
        let mut b = vec![f32::NAN; s.len()];
        bones(&x, s, &NTU_BONE_PAIRS, &mut b);
        // Joint 1 (index 0) − joint 2 (index 1) = −1; joint 4 − joint 3 = 1; joint 23 − 8 = 15.
        assert_eq!(b[s.at(0, 0, 0, 0)], -1.0);
        assert_eq!(b[s.at(2, 1, 3, 1)], 1.0);
        assert_eq!(b[s.at(1, 0, 22, 0)], 15.0);
        // The root of the bone tree (joint 21) is 0.
        assert!((0..3).all(|c| b[s.at(c, 1, 20, 1)] == 0.0));
        assert!(b.iter().all(|v| v.is_finite()), "every joint is written");
    }

    #[test]
    fn ucla_bones_by_hand() {
        let s = shape(1, 20, 1);
        let x = numbered(s);
        let mut b = vec![f32::NAN; s.len()];
        bones(&x, s, &UCLA_BONE_PAIRS, &mut b);
        assert_eq!(b[s.at(0, 0, 2, 0)], 0.0, "joint 3 is the root");
        assert_eq!(b[s.at(1, 0, 8, 0)], 6.0, "joint 9 − joint 3");
        assert_eq!(b[s.at(2, 0, 16, 0)], 16.0, "joint 17 − joint 1");
    }

    #[test]
    fn kth_mode_by_hand() {
        let s = shape(1, 25, 1);
        let x = numbered(s);
        let mut out = vec![0.0; s.len()];
        kth_mode(&x, s, 1, &mut out);
        assert_eq!(out[s.at(0, 0, 1, 0)], 1.0, "joint 2 keeps its position");
        assert_eq!(out[s.at(0, 0, 20, 0)], 19.0, "joint 21 − joint 2");
        assert_eq!(out[s.at(0, 0, 21, 0)], -1.0, "joint 22 − joint 23");
        kth_mode(&x, s, 2, &mut out);
        assert_eq!(out[s.at(0, 0, 3, 0)], -17.0, "joint 4 − joint 21");
        assert_eq!(out[s.at(0, 0, 20, 0)], 20.0, "joint 21 has no grandparent");
        assert_eq!(out[s.at(0, 0, 21, 0)], 14.0, "joint 22 − joint 8");
    }

    #[test]
    fn depths_and_k_eight_is_the_raw_joints() {
        let depth = |v: usize| {
            (1..=8)
                .take_while(|&k| kth_ancestors(k)[v].is_some())
                .count()
        };
        let depths: Vec<usize> = (0..25).map(depth).collect();
        assert_eq!(
            depths,
            [
                1, 0, 2, 3, 2, 3, 4, 5, 2, 3, 4, 5, 2, 3, 4, 5, 2, 3, 4, 5, 1, 7, 6, 7, 6
            ]
        );
        let s = shape(3, 25, 2);
        let x = numbered(s);
        let mut out = vec![0.0; s.len()];
        kth_mode(&x, s, 8, &mut out);
        assert_eq!(out, x);
    }

    #[test]
    fn motion_by_hand_and_last_frame_zero() {
        let s = shape(3, 2, 2);
        let mut x = numbered(s);
        x[s.at(1, 2, 1, 1)] = 250.0; // frame 2 differs from the pattern at one point
        motion(&mut x, s);
        for c in 0..3 {
            for v in 0..2 {
                for m in 0..2 {
                    assert_eq!(x[s.at(c, 0, v, m)], 100.0);
                    assert_eq!(x[s.at(c, 2, v, m)], 0.0);
                }
            }
        }
        assert_eq!(x[s.at(1, 1, 1, 1)], 250.0 - 1101.5);
    }
}
