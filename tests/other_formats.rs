//! The MSR Daily Activity 3D and UTD-MHAD readers on their real samples.

use sfhead::data::other::{parse_msr, parse_utd_csv};
use std::path::{Path, PathBuf};

fn sample(rel: &str) -> (PathBuf, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/other")
        .join(rel);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn msr_daily_activity_sample() {
    let (path, bytes) = sample("msr-daily-activity3d/a03_s01_e01_skeleton.txt");
    let clip = parse_msr(&path, &bytes).unwrap();
    assert_eq!((clip.name.as_str(), clip.label), ("a03_s01_e01", 2));
    let s = &clip.skeleton;
    assert_eq!((s.frames, s.persons, s.joints), (311, 1, 20));
    // Every frame holds 40 rows; the world coordinates are rows 0, 2, 4, … of each frame.
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for t in [0, 150, 310] {
        let first_row = 1 + t * 41 + 1;
        for v in [0, 7, 19] {
            let row: Vec<f32> = lines[first_row + 2 * v]
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!(
                &s.frame(t)[v * 3..v * 3 + 3],
                &row[..3],
                "frame {t} joint {v}"
            );
        }
    }
    assert_eq!(
        &s.frame(0)[..6],
        &[-0.044125, -0.39809, 2.34933, -0.062776, -0.345188, 2.35427]
    );
}

#[test]
fn utd_mhad_sample() {
    let (path, bytes) = sample("utd-mhad/a1_s1_t2_skeleton.csv");
    let clip = parse_utd_csv(&path, &bytes).unwrap();
    assert_eq!((clip.name.as_str(), clip.label), ("a1_s1_t2", 0));
    let s = &clip.skeleton;
    assert_eq!((s.frames, s.persons, s.joints), (52, 1, 20));
    // d_skel[joint 1 (head), :, frame 0] and frame 1; the file's last value is joint 20's z in
    // the last frame.
    assert_eq!(&s.frame(0)[..3], &[-0.047672, 0.47898, 2.8249]);
    assert_eq!(&s.frame(1)[..3], &[-0.046943, 0.47943, 2.8246]);
    assert_eq!(s.frame(51)[59], 2.9086);
    // The head is above the hip centre (joint 4) in every frame: the joint order is UTD's own.
    assert!((0..52).all(|t| s.frame(t)[1] > s.frame(t)[3 * 3 + 1]));
}
