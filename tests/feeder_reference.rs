//! The test-time feeders against NumPy transcriptions of CTR-GCN's feeders on real clips
//! (`tests/reference/feeder_reference.py` wrote the `.npy` files).

use sfhead::data::Sequence;
use sfhead::data::feed::{Feeder, NtuFeeder, SampleKey, Stream, UclaFeeder};
use sfhead::data::pku::parse_skeleton;
use sfhead::data::ucla::parse_clip;
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn reference(name: &str) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(data("reference").join(format!("{name}.npy"))).unwrap();
    let array = npyz::NpyFile::new(&bytes[..]).unwrap();
    (array.shape().to_vec(), array.into_vec().unwrap())
}

fn feed(feeder: &dyn Feeder, clip: &Sequence) -> Vec<f32> {
    let mut out = vec![f32::NAN; feeder.shape().len()];
    feeder
        .feed(clip, SampleKey::new(0, 0, 0), &mut out)
        .unwrap();
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn ucla_test_feeder_matches_the_reference() {
    for name in ["a04_s01_e00_v01", "a01_s01_e00_v03", "a02_s09_e04_v02"] {
        let path = data(&format!("nw-ucla/{name}.json"));
        let clip = parse_clip(&path, &std::fs::read(&path).unwrap())
            .unwrap()
            .skeleton;
        for (tag, stream, motion) in [
            ("joint", Stream::Joint, false),
            ("bone_motion", Stream::Bone, true),
        ] {
            let (shape, expected) = reference(&format!("ucla_{name}_{tag}"));
            assert_eq!(shape, [3, 52, 20, 1]);
            let got = feed(&UclaFeeder::new(false, stream, motion), &clip);
            let diff = max_abs_diff(&got, &expected);
            assert!(diff <= 1e-6, "{name} {tag}: max |diff| {diff}");
        }
    }
}

#[test]
fn ntu_test_feeder_matches_the_reference() {
    let path = data("pku-mmd/skeletons/A10N08-L.txt");
    let video = parse_skeleton(&path, &std::fs::read(&path).unwrap()).unwrap();
    for (start, end) in [(0, 43), (600, 760)] {
        let rows = video.data[start * 150..end * 150].to_vec();
        let clip = Sequence::new(end - start, 2, 25, rows);
        for (tag, stream, motion) in [
            ("joint", Stream::Joint, false),
            ("bone_motion", Stream::Bone, true),
        ] {
            let (shape, expected) = reference(&format!("ntu_A10N08-L_{start}_{end}_{tag}"));
            assert_eq!(shape, [3, 64, 25, 2]);
            let got = feed(&NtuFeeder::test(stream, motion), &clip);
            let diff = max_abs_diff(&got, &expected);
            assert!(diff <= 1e-6, "{start}..{end} {tag}: max |diff| {diff}");
        }
    }
}
