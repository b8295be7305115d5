//! Seeded random damage to real files: every reader returns `Ok` or `Err`, and never panics.

mod common;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sfhead::data::ntu::npz::NpzClips;
use sfhead::data::ntu::{SingleActor, process_file};
use sfhead::data::{ClipSet, PackedClips, PackedMeta, PackedWriter, Part};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Tokens that stress number parsing and counts when dropped into a file.
const TOKENS: [&str; 12] = [
    "nan",
    "-inf",
    "1e39",
    "-0",
    "0",
    "1",
    "2",
    "25",
    "99999999999999999999",
    "-1",
    "+7",
    "0x10",
];

/// One random kind of damage: bit flips, a cut, inserted bytes or tokens, a dropped or
/// doubled span.
fn mutate(rng: &mut ChaCha8Rng, original: &[u8], focus: &[usize]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let len = bytes.len().max(1);
    // Half of the positions land near a spot of interest (a header), the rest anywhere.
    let position = |rng: &mut ChaCha8Rng| -> usize {
        if !focus.is_empty() && rng.random_bool(0.5) {
            let spot = focus[rng.random_range(0..focus.len())];
            (spot + rng.random_range(0..160)).min(len - 1)
        } else {
            rng.random_range(0..len)
        }
    };
    match rng.random_range(0..6) {
        0 => {
            for _ in 0..rng.random_range(1..5) {
                let at = position(rng);
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => {
            let at = position(rng);
            bytes.truncate(at);
        }
        2 => {
            let at = position(rng).min(bytes.len());
            let junk: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
            bytes.splice(at..at, junk);
        }
        3 => {
            let at = position(rng).min(bytes.len());
            let token = format!(" {} ", TOKENS[rng.random_range(0..TOKENS.len())]);
            bytes.splice(at..at, token.into_bytes());
        }
        4 => {
            let at = position(rng).min(bytes.len());
            let end = (at + rng.random_range(1..400)).min(bytes.len());
            bytes.drain(at..end);
        }
        _ => {
            let at = position(rng).min(bytes.len());
            let end = (at + rng.random_range(1..400)).min(bytes.len());
            let span = bytes[at..end].to_vec();
            bytes.splice(at..at, span);
        }
    }
    bytes
}

/// Runs `read` on `rounds` damaged copies of `original`; fails on the first panic.
fn survive(
    what: &str,
    seed: u64,
    rounds: usize,
    original: &[u8],
    focus: &[usize],
    read: impl Fn(Vec<u8>),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for round in 0..rounds {
        let damaged = mutate(&mut rng, original, focus);
        let outcome = catch_unwind(AssertUnwindSafe(|| read(damaged)));
        assert!(
            outcome.is_ok(),
            "{what}: round {round} of seed {seed} panicked"
        );
    }
}

#[test]
fn damaged_skeleton_files_never_panic() {
    let files = common::raw_files();
    let (runs, failed) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    for (k, (name, original)) in files.iter().enumerate() {
        let path = Path::new(name);
        // The first lines (counts and the first body) are where damage changes the structure.
        let focus = [0, 40, 120];
        survive(name, k as u64, 150, original, &focus, |bytes| {
            for rule in [SingleActor::Zeros, SingleActor::Duplicate] {
                runs.set(runs.get() + 1);
                if let Err(e) = process_file(&bytes, path, rule) {
                    assert!(e.to_string().starts_with(name.as_str()), "{e}");
                    failed.set(failed.get() + 1);
                }
            }
        });
    }
    let (runs, failed) = (runs.get(), failed.get());
    assert_eq!(runs, 18 * 150 * 2);
    assert!(
        failed > runs / 2,
        "most damage is caught ({failed} errors in {runs} runs)"
    );
}

/// Offsets of the `.npy` headers inside an archive.
fn npy_headers(bytes: &[u8]) -> Vec<usize> {
    let mut spots: Vec<usize> = bytes
        .windows(6)
        .enumerate()
        .filter(|(_, w)| *w == b"\x93NUMPY")
        .map(|(i, _)| i)
        .collect();
    spots.push(0);
    spots.push(bytes.len().saturating_sub(300));
    spots
}

fn read_all(clips: &dyn ClipSet) {
    for i in 0..clips.len() {
        let clip = clips.clip(i);
        assert_eq!(
            clip.data.len(),
            clip.frames * clip.persons * clip.joints * 3
        );
        let _ = (clips.name(i), clips.label(i));
    }
}

#[test]
fn damaged_npz_files_never_panic() {
    let original =
        common::gunzip(&common::ntu_dir().join("golden/run-s001-p003-p004/NTU60_CS.npz.gz"));
    let path = Path::new("NTU60_CS.npz");
    let focus = npy_headers(&original);
    survive("NTU60_CS.npz", 7, 3000, &original, &focus, |bytes| {
        for part in [Part::Train, Part::Test] {
            if let Ok(clips) = NpzClips::from_bytes(bytes.clone(), path, part) {
                read_all(&clips);
            }
        }
    });
}

#[test]
fn damaged_packed_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sfpk");
    let meta = PackedMeta {
        benchmark: "NTU60 X-Sub".into(),
        persons: 2,
        joints: 25,
        classes: 60,
    };
    let mut writer = PackedWriter::create(&path, meta).unwrap();
    for (k, frames) in [3usize, 1, 4, 2].into_iter().enumerate() {
        let part = if k < 2 { Part::Train } else { Part::Test };
        let values: Vec<f32> = (0..frames * 150).map(|v| v as f32 * 0.01).collect();
        writer
            .push(part, &format!("S001C001P001R001A00{k}"), k as u32, &values)
            .unwrap();
    }
    writer.finish().unwrap();
    let original = std::fs::read(&path).unwrap();
    let index = original.len() - 120;
    survive("x.sfpk", 11, 5000, &original, &[0, 40, index], |bytes| {
        for part in [Part::Train, Part::Test] {
            if let Ok(clips) = PackedClips::from_bytes(bytes.clone(), &path, part) {
                read_all(&clips);
            }
        }
    });
}
