//! S001C001P001R001A012 exists only as the official `txt2npy` dict (no raw file, no golden):
//! its joints still go through stages 1–3, and the stage-3 rules can be checked on them.

mod common;

use sfhead::data::ntu::{
    BodyFrame, JOINTS, RawSkeleton, SingleActor, SkeletonFile, denoise, translate,
};
use std::path::Path;

/// The `txt2npy` dict in its JSON copy, as a parsed file with one body per frame.
fn a012() -> (Vec<usize>, SkeletonFile) {
    let path = common::ntu_dir().join("derived/S001C001P001R001A012.skeleton.json.gz");
    let dict: serde_json::Value = serde_json::from_slice(&common::gunzip(&path)).unwrap();
    assert_eq!(dict["file_name"], "S001C001P001R001A012");
    assert_eq!(dict["njoints"], 25);
    let nbodys: Vec<usize> = serde_json::from_value(dict["nbodys"].clone()).unwrap();
    // float32 values written as their shortest decimal: they round-trip exactly.
    let skel: Vec<Vec<[f32; 3]>> = serde_json::from_value(dict["skel_body0"].clone()).unwrap();
    let rgb: Vec<Vec<[f32; 2]>> = serde_json::from_value(dict["rgb_body0"].clone()).unwrap();
    let frames = skel
        .iter()
        .zip(&rgb)
        .map(|(joints, colors)| {
            vec![BodyFrame {
                id: 1,
                joints: joints.as_slice().try_into().unwrap(),
                colors: colors.as_slice().try_into().unwrap(),
            }]
        })
        .collect();
    (nbodys, SkeletonFile { frames })
}

#[test]
fn one_body_goes_through_unchanged_to_stage2() {
    let (nbodys, file) = a012();
    assert_eq!(nbodys, vec![1; 102]);
    let path = Path::new("S001C001P001R001A012.skeleton");
    let raw = RawSkeleton::from_file(file.clone(), path).unwrap();
    assert_eq!((raw.valid_frames, raw.bodies.len()), (102, 1));
    assert_eq!(raw.bodies[0].motion, None, "motion only for several bodies");
    let denoised = denoise(&raw, path).unwrap();
    assert_eq!((denoised.actors, denoised.frames), (1, 102));
    let joints: Vec<f32> = file
        .frames
        .iter()
        .flat_map(|f| f[0].joints.as_flattened().to_vec())
        .collect();
    assert_eq!(common::bits(&denoised.joints), common::bits(&joints));
}

#[test]
fn stage3_centres_on_the_first_frame_mid_spine() {
    let (_, file) = a012();
    let path = Path::new("S001C001P001R001A012.skeleton");
    let denoised = denoise(&RawSkeleton::from_file(file.clone(), path).unwrap(), path).unwrap();
    let origin = file.frames[0][0].joints[1];
    for rule in [SingleActor::Zeros, SingleActor::Duplicate] {
        let sequence = translate(&denoised, rule, path).unwrap();
        assert_eq!(
            (sequence.frames, sequence.persons, sequence.joints),
            (102, 2, 25)
        );
        assert_eq!(
            &sequence.frame(0)[3..6],
            &[0.0; 3],
            "joint 2 of frame 0 is the origin"
        );
        for (t, frame) in file.frames.iter().enumerate() {
            let out = sequence.frame(t);
            for j in 0..JOINTS {
                let raw = frame[0].joints[j];
                let expected = [raw[0] - origin[0], raw[1] - origin[1], raw[2] - origin[2]];
                assert_eq!(
                    &out[3 * j..3 * j + 3],
                    &expected,
                    "frame {t} joint {}",
                    j + 1
                );
            }
            let person2 = &out[75..];
            match rule {
                SingleActor::Zeros => assert!(person2.iter().all(|&v| v.to_bits() == 0)),
                SingleActor::Duplicate => assert_eq!(person2, &out[..75]),
            }
        }
    }
}
