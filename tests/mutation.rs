//! Seeded random mutations of real inputs (byte flips, cuts, inserted and repeated bytes): every
//! reader answers Ok or an error naming the file, and never panics.

use flate2::Compression;
use flate2::write::GzEncoder;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfhead::data::DataError;
use std::path::{Path, PathBuf};

const ROUNDS: usize = 400;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// One random edit or a few of them.
fn mutate(original: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..6) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = rng.random(),
            2 => bytes.truncate(at),
            3 => bytes.insert(
                at,
                *b" ,.-0123456789eE\n\r[]{}\"naif"
                    .get(rng.random_range(0..27))
                    .unwrap(),
            ),
            4 => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// Runs `read` on `ROUNDS` mutations of `original`; an error must name `path`.
fn survive<T>(
    path: &Path,
    original: &[u8],
    seed: u64,
    read: impl Fn(&Path, &[u8]) -> Result<T, DataError>,
) -> (usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..ROUNDS {
        let bytes = mutate(original, &mut rng);
        match read(path, &bytes) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(
                    e.path.starts_with(path),
                    "{e} does not name {}",
                    path.display()
                );
                err += 1;
            }
        }
    }
    assert!(err > 0, "mutations must produce some errors");
    (ok, err)
}

#[test]
fn ucla_json() {
    let path = data("nw-ucla/a11_s01_e00_v03.json");
    let original = std::fs::read(&path).unwrap();
    survive(&path, &original, 1, sfhead::data::ucla::parse_clip);
}

#[test]
fn ucla_archive() {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for name in [
        "a02_s09_e04_v02.json",
        "a02_s09_e04_v03.json",
        "a11_s01_e00_v03.json",
    ] {
        tar.append_path_with_name(data("nw-ucla").join(name), format!("all_sqe/{name}"))
            .unwrap();
    }
    let original = tar.into_inner().unwrap().finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all_sqe.tar.gz");
    std::fs::write(&path, &original).unwrap();
    assert_eq!(
        sfhead::data::ucla::read_clips(&path, || {}).unwrap().len(),
        3
    );
    survive(&path, &original, 2, |path, bytes| {
        std::fs::write(path, bytes).unwrap();
        let clips = sfhead::data::ucla::read_clips(path, || {})?;
        clips.into_iter().collect::<Result<Vec<_>, _>>()
    });
}

#[test]
fn pku_skeleton() {
    let path = data("pku-mmd/skeletons/A10N08-L.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let prefix: String = text.lines().take(12).map(|l| format!("{l}\n")).collect();
    survive(
        &path,
        prefix.as_bytes(),
        3,
        sfhead::data::pku::parse_skeleton,
    );
}

#[test]
fn pku_labels_and_split() {
    let path = data("pku-mmd/labels/HAND01-M.txt");
    survive(
        &path,
        &std::fs::read(&path).unwrap(),
        4,
        sfhead::data::pku::parse_labels,
    );
    let path = data("pku-mmd/cross-subject.txt");
    survive(
        &path,
        &std::fs::read(&path).unwrap(),
        5,
        sfhead::data::pku::parse_split,
    );
}

#[test]
fn msr_text() {
    let path = data("other/msr-daily-activity3d/a03_s01_e01_skeleton.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    // The header says 311 frames; keep 3 of them and say so.
    let prefix: String = text
        .lines()
        .skip(1)
        .take(3 * 41)
        .map(|l| format!("{l}\n"))
        .collect();
    survive(
        &path,
        format!("3 20\n{prefix}").as_bytes(),
        6,
        sfhead::data::other::parse_msr,
    );
}

#[test]
fn utd_csv() {
    let path = data("other/utd-mhad/a1_s1_t2_skeleton.csv");
    survive(
        &path,
        &std::fs::read(&path).unwrap(),
        7,
        sfhead::data::other::parse_utd_csv,
    );
}
