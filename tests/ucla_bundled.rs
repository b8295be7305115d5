//! The bundled NW-UCLA archive: split sizes, classes, edge-case clips, the test order and labels.

use flate2::read::GzDecoder;
use sfhead::data::ClipSet;
use sfhead::data::ucla::{UclaSplits, bundled_archive, read_clips};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

fn splits() -> UclaSplits {
    UclaSplits::open(None).expect("the bundled archive reads")
}

#[test]
fn split_sizes_and_classes() {
    let s = splits();
    assert_eq!(s.train.len(), 1020);
    assert_eq!(s.test.len(), 464);
    assert_eq!(s.train.len() + s.test.len(), 1484);
    let classes: BTreeSet<u32> = s
        .train
        .labels()
        .iter()
        .chain(s.test.labels())
        .copied()
        .collect();
    assert_eq!(classes, (0..10).collect());
    for (set, views) in [(&s.train, ["_v01", "_v02"]), (&s.test, ["_v03", "_v03"])] {
        assert!(
            set.names()
                .iter()
                .all(|n| views.iter().any(|v| n.ends_with(v)))
        );
        assert!((0..set.len()).all(|i| {
            let c = set.get(i);
            c.persons == 1 && c.joints == 20 && c.frames >= 1
        }));
    }
}

#[test]
fn the_one_frame_clips_are_kept() {
    let s = splits();
    let one_frame: Vec<&str> = s
        .train
        .names()
        .iter()
        .chain(s.test.names())
        .enumerate()
        .filter(|&(i, _)| {
            let clip = if i < s.train.len() {
                s.train.get(i)
            } else {
                s.test.get(i - s.train.len())
            };
            clip.frames == 1
        })
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(one_frame, ["a02_s09_e04_v02", "a02_s09_e04_v03"]);
}

/// `val_label` rows in order: name, frame count, 1-based label.
fn val_label() -> Vec<(String, usize, u32)> {
    let tsv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/nw-ucla-val_label.tsv"),
    )
    .unwrap();
    tsv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn test_order_lengths_and_labels_equal_val_label() {
    let s = splits();
    let rows = val_label();
    assert_eq!(rows.len(), 464);
    for (i, (name, length, label)) in rows.iter().enumerate() {
        assert_eq!(s.test.name(i), name, "position {i}");
        assert_eq!(s.test.get(i).frames, *length, "{name}");
        assert_eq!(s.test.label(i) + 1, *label, "{name}");
    }
}

/// The archive read independently of the crate's reader: name → JSON `label`.
fn json_labels() -> HashMap<String, u64> {
    let file = std::fs::File::open(bundled_archive()).unwrap();
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut labels = HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        if path.extension().is_some_and(|e| e == "json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            labels.insert(stem, value["label"].as_u64().unwrap());
        }
    }
    labels
}

#[test]
fn labels_agree_with_the_json_label_key() {
    let s = splits();
    let json = json_labels();
    assert_eq!(json.len(), 1484);
    for set in [&s.train, &s.test] {
        for i in 0..set.len() {
            assert_eq!(
                u64::from(set.label(i)),
                json[set.name(i)] - 1,
                "{}",
                set.name(i)
            );
        }
    }
}

#[test]
fn a_directory_reads_like_the_archive() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nw-ucla");
    let s = UclaSplits::open(Some(&dir)).unwrap();
    assert_eq!(
        s.train.names(),
        [
            "a01_s01_e00_v01",
            "a01_s01_e00_v02",
            "a02_s09_e04_v02",
            "a04_s01_e00_v01"
        ]
    );
    // val_label order, not name order.
    let full = splits();
    let rank = |n: &str| full.test.names().iter().position(|m| m == n).unwrap();
    let ranks: Vec<usize> = s.test.names().iter().map(|n| rank(n)).collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    assert_eq!(s.test.len(), 4);
    // The same clip read from the directory and from the archive.
    let a = s.train.get(2);
    let b = full.train.get(
        full.train
            .names()
            .iter()
            .position(|n| n == "a02_s09_e04_v02")
            .unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(read_clips(&dir, || {}).unwrap().len(), 8);
}

#[test]
fn a_held_out_part_leaves_training_and_is_the_same_for_every_stream() {
    use sfhead::train::TrainConfig;
    let config = |stream: &str| {
        TrainConfig::preset("ctrgcn-ucla")
            .unwrap()
            .with_overrides(&["holdout=0.1".into(), format!("stream={stream}")])
            .unwrap()
    };
    let names = |set: &std::sync::Arc<dyn ClipSet>| -> BTreeSet<String> {
        (0..set.len()).map(|i| set.name(i).to_string()).collect()
    };
    let joint = sfhead::train::data::open(&config("joint")).unwrap();
    let (train, held) = (names(&joint.train), names(&joint.holdout));
    assert_eq!(train.len() + held.len(), 1020);
    assert!(train.is_disjoint(&held));
    assert!((60..150).contains(&held.len()), "{} held out", held.len());
    assert!(names(&joint.test).is_disjoint(&held));
    let bone = sfhead::train::data::open(&config("bone")).unwrap();
    assert_eq!(names(&bone.holdout), held);
    let none = sfhead::train::data::open(&TrainConfig::preset("ctrgcn-ucla").unwrap()).unwrap();
    assert_eq!(none.train.len(), 1020);
    assert!(none.holdout.is_empty());
}
