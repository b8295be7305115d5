//! Feeder invariants on whole samples: layout, padding, zero persons, streams, determinism.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfhead::data::Sequence;
use sfhead::data::feed::{Crop, Feeder, NtuFeeder, SampleKey, Stream, UclaFeeder};
use sfhead::data::ucla::parse_clip;
use std::path::Path;

/// A random NTU-style clip: `frames` frames, 25 joints, person 2 present or all zero.
fn random_clip(frames: usize, second_person: bool, seed: u64) -> Sequence {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0.0; frames * 2 * 25 * 3];
    for t in 0..frames {
        for m in 0..if second_person { 2 } else { 1 } {
            for i in 0..75 {
                data[(t * 2 + m) * 75 + i] = rng.random_range(-1.0..1.0);
            }
        }
    }
    Sequence::new(frames, 2, 25, data)
}

fn run(feeder: &dyn Feeder, clip: &Sequence, key: SampleKey) -> Vec<f32> {
    let mut out = vec![f32::NAN; feeder.shape().len()];
    feeder.feed(clip, key, &mut out).unwrap();
    out
}

const KEY: SampleKey = SampleKey {
    seed: 1,
    epoch: 0,
    index: 0,
};

#[test]
fn ntu_layout_is_c_t_v_m_and_resize_is_identity_at_window_length() {
    let clip = random_clip(64, true, 1);
    let feeder = NtuFeeder {
        crop: Crop::Central { p: 1.0 },
        ..NtuFeeder::test(Stream::Joint, false)
    };
    let out = run(&feeder, &clip, KEY);
    let s = feeder.shape();
    assert_eq!((s.channels, s.frames, s.joints, s.persons), (3, 64, 25, 2));
    for t in 0..64 {
        for m in 0..2 {
            for v in 0..25 {
                for c in 0..3 {
                    assert_eq!(out[s.at(c, t, v, m)], clip.frame(t)[(m * 25 + v) * 3 + c]);
                }
            }
        }
    }
}

#[test]
fn zero_padding_after_the_valid_frames_changes_nothing() {
    let clip = random_clip(90, true, 2);
    let mut padded = clip.data.clone();
    padded.resize(300 * 150, 0.0);
    let padded = Sequence::new(300, 2, 25, padded);
    for feeder in [
        NtuFeeder::train(Stream::Bone, true),
        NtuFeeder::test(Stream::Joint, false),
    ] {
        for index in 0..5 {
            let key = SampleKey::new(7, 3, index);
            assert_eq!(run(&feeder, &clip, key), run(&feeder, &padded, key));
        }
    }
}

#[test]
fn a_missing_second_person_stays_zero_through_every_transform() {
    let clip = random_clip(120, false, 3);
    let one_person = Sequence::new(
        120,
        1,
        25,
        clip.data
            .chunks(150)
            .flat_map(|f| f[..75].to_vec())
            .collect(),
    );
    for stream in [
        Stream::Joint,
        Stream::Bone,
        Stream::KthMode(1),
        Stream::KthMode(2),
    ] {
        let feeder = NtuFeeder::train(stream, true);
        let s = feeder.shape();
        for input in [&clip, &one_person] {
            let out = run(&feeder, input, KEY);
            let second = (0..s.len()).filter(|i| i % 2 == 1);
            assert!(second.clone().all(|i| out[i] == 0.0), "{stream:?}");
            assert!((0..s.len()).step_by(2).any(|i| out[i] != 0.0));
        }
        assert_eq!(run(&feeder, &clip, KEY), run(&feeder, &one_person, KEY));
    }
}

#[test]
fn bone_of_the_root_is_zero_and_motion_ends_in_zero() {
    let clip = random_clip(100, true, 4);
    let feeder = NtuFeeder::train(Stream::Bone, true);
    let s = feeder.shape();
    let out = run(&feeder, &clip, KEY);
    for c in 0..3 {
        for m in 0..2 {
            assert!((0..64).all(|t| out[s.at(c, t, 20, m)] == 0.0), "joint 21");
            assert!((0..25).all(|v| out[s.at(c, 63, v, m)] == 0.0), "last frame");
        }
    }
    assert!(out.iter().filter(|&&x| x != 0.0).count() > s.len() / 2);
}

#[test]
fn kth_mode_eight_is_the_joint_stream() {
    let clip = random_clip(150, true, 5);
    for motion in [false, true] {
        let joint = run(&NtuFeeder::train(Stream::Joint, motion), &clip, KEY);
        let k8 = run(&NtuFeeder::train(Stream::KthMode(8), motion), &clip, KEY);
        assert_eq!(joint, k8);
        let k1 = run(&NtuFeeder::train(Stream::KthMode(1), motion), &clip, KEY);
        assert_ne!(joint, k1);
    }
}

#[test]
fn samples_depend_on_the_key_only() {
    let clip = random_clip(200, true, 6);
    let feeder = NtuFeeder::train(Stream::Joint, false);
    let a = run(&feeder, &clip, SampleKey::new(1, 2, 3));
    assert_eq!(a, run(&feeder, &clip, SampleKey::new(1, 2, 3)));
    for other in [
        SampleKey::new(2, 2, 3),
        SampleKey::new(1, 3, 3),
        SampleKey::new(1, 2, 4),
    ] {
        assert_ne!(a, run(&feeder, &clip, other), "{other:?}");
    }
    // The test feeder has no randomness at all.
    let test = NtuFeeder::test(Stream::Joint, false);
    assert_eq!(
        run(&test, &clip, SampleKey::new(1, 2, 3)),
        run(&test, &clip, KEY)
    );
}

#[test]
fn an_all_zero_clip_gives_a_zero_sample_and_bad_clips_are_refused() {
    let feeder = NtuFeeder::train(Stream::Bone, true);
    let out = run(&feeder, &Sequence::new(10, 2, 25, vec![0.0; 1500]), KEY);
    assert!(out.iter().all(|&x| x == 0.0));
    let mut out = vec![0.0; feeder.shape().len()];
    let wrong_joints = Sequence::new(4, 1, 20, vec![1.0; 240]);
    assert!(
        feeder
            .feed(&wrong_joints, KEY, &mut out)
            .unwrap_err()
            .contains("25 joints")
    );
    let three = Sequence::new(4, 3, 25, vec![1.0; 900]);
    assert!(
        feeder
            .feed(&three, KEY, &mut out)
            .unwrap_err()
            .contains("3 persons")
    );
    let k0 = NtuFeeder::train(Stream::KthMode(0), false);
    assert!(k0.feed(&random_clip(5, true, 1), KEY, &mut out).is_err());
}

fn ucla_clip(name: &str) -> Sequence {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/nw-ucla")
        .join(name);
    parse_clip(&path, &std::fs::read(&path).unwrap())
        .unwrap()
        .skeleton
}

#[test]
fn ucla_test_sample_spans_minus_one_to_one_on_every_axis() {
    // 52 spaced frames of a clip shorter than 52 frames include every frame, so each axis
    // reaches both ends of the normalised range.
    let clip = ucla_clip("a01_s01_e00_v03.json");
    assert!(clip.frames <= 52);
    let feeder = UclaFeeder::new(false, Stream::Joint, false);
    let s = feeder.shape();
    assert_eq!((s.channels, s.frames, s.joints, s.persons), (3, 52, 20, 1));
    let out = run(&feeder, &clip, KEY);
    for c in 0..3 {
        let axis = &out[c * 52 * 20..(c + 1) * 52 * 20];
        let low = axis.iter().copied().fold(f32::INFINITY, f32::min);
        let high = axis.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((low, high), (-1.0, 1.0), "axis {c}");
    }
}

#[test]
fn ucla_two_frame_clip_by_hand() {
    // Frame 0 and frame 1 of a real clip; linspace(0, 1, 52) floors to 51 × frame 0, then frame 1.
    let real = ucla_clip("a01_s01_e00_v01.json");
    let clip = Sequence::new(2, 1, 20, real.data[..120].to_vec());
    let out = run(&UclaFeeder::new(false, Stream::Joint, false), &clip, KEY);
    let at = |c: usize, t: usize, v: usize| out[(c * 52 + t) * 20 + v];
    for c in 0..3 {
        let low = clip
            .data
            .iter()
            .skip(c)
            .step_by(3)
            .copied()
            .fold(f32::INFINITY, f32::min);
        let high = clip
            .data
            .iter()
            .skip(c)
            .step_by(3)
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        for v in 0..20 {
            let expect = |t: usize| {
                let x = f64::from(clip.data[(t * 20 + v) * 3 + c]);
                ((x - f64::from(low)) / f64::from(high - low) * 2.0 - 1.0) as f32
            };
            assert!((0..51).all(|t| (at(c, t, v) - expect(0)).abs() < 1e-6));
            assert!((at(c, 51, v) - expect(1)).abs() < 1e-6);
        }
    }
}

#[test]
fn ucla_train_samples_are_keyed_and_bone_motion_hold() {
    let clip = ucla_clip("a01_s01_e00_v02.json");
    let joint = UclaFeeder::new(true, Stream::Joint, false);
    let a = run(&joint, &clip, SampleKey::new(1, 0, 5));
    assert_eq!(a, run(&joint, &clip, SampleKey::new(1, 0, 5)));
    assert_ne!(a, run(&joint, &clip, SampleKey::new(1, 0, 6)));
    assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)));
    let bone_motion = UclaFeeder::new(true, Stream::Bone, true);
    let out = run(&bone_motion, &clip, KEY);
    let at = |c: usize, t: usize, v: usize| out[(c * 52 + t) * 20 + v];
    for c in 0..3 {
        assert!(
            (0..52).all(|t| at(c, t, 2) == 0.0),
            "joint 3 is the bone root"
        );
        assert!((0..20).all(|v| at(c, 51, v) == 0.0), "motion ends in zero");
    }
    // The one-frame clips feed without trouble.
    let one = ucla_clip("a02_s09_e04_v02.json");
    assert_eq!(one.frames, 1);
    let out = run(&UclaFeeder::new(true, Stream::Joint, false), &one, KEY);
    assert!(out.iter().all(|x| x.is_finite()));
}
