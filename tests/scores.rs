//! Score files: our pickles round-trip and load in Python as CTR-GCN's `ensemble.py` uses them,
//! numpy's own pickles (tests/fixtures/scores/, made by tests/reference/make_score_pickles.py)
//! read back to the values recorded beside them, bad pickles are refused with the file and the
//! byte offset, and work directories resolve to their score files.

use std::path::{Path, PathBuf};
use std::process::Command;

use sfhead::scores::{Scores, WORK_DIR_SCORES, read_part};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scores")
}

fn scores(names: &[&str], classes: usize, values: Vec<f32>) -> Scores {
    assert_eq!(names.len() * classes, values.len());
    Scores {
        names: names.iter().map(|s| s.to_string()).collect(),
        classes,
        values,
        labels: None,
        features: None,
    }
}

/// Five samples of three classes, with names CTR-GCN and NTU use and one beyond ASCII.
fn sample() -> Scores {
    let names = ["test_0", "test_1", "S001C001P001R001A060", "clip_é", "z"];
    let values = (0..15).map(|i| (i as f32 - 7.0) * 0.37 + 1e-3).collect();
    scores(&names, 3, values)
}

#[test]
fn pickle_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.pkl");
    let original = sample();
    original.write_pickle(&path).unwrap();
    assert_eq!(Scores::read_pickle(&path).unwrap(), original);
    assert_eq!(Scores::read(&path).unwrap(), original);
    // More samples than one SETITEMS batch, and rows wide enough for a 4-byte BININT.
    let names: Vec<String> = (0..2500).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let big = scores(&names, 300, (0..750_000).map(|i| i as f32).collect());
    big.write_pickle(&path).unwrap();
    assert_eq!(Scores::read_pickle(&path).unwrap(), big);
}

#[test]
fn labels_and_features_stay_in_the_safetensors_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut original = sample();
    original.labels = Some(vec![0, 2, 1, 1, 0]);
    let path = dir.path().join("s.safetensors");
    original.write_safetensors(&path).unwrap();
    assert_eq!(Scores::read(&path).unwrap(), original);
    let pickle = dir.path().join("s.pickle");
    original.write_pickle(&pickle).unwrap();
    let read = Scores::read(&pickle).unwrap();
    assert_eq!(read.labels, None, "pickles carry no labels");
    assert_eq!((read.names, read.values), (original.names, original.values));
}

#[test]
fn the_part_is_recorded_in_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.safetensors");
    sample()
        .write_safetensors_part(&path, Some("holdout"))
        .unwrap();
    assert_eq!(read_part(&path).unwrap().as_deref(), Some("holdout"));
    assert_eq!(Scores::read(&path).unwrap(), sample());
    sample().write_safetensors(&path).unwrap();
    assert_eq!(read_part(&path).unwrap(), None);
    let pickle = dir.path().join("s.pkl");
    sample().write_pickle(&pickle).unwrap();
    assert_eq!(read_part(&pickle).unwrap(), None, "pickles do not say");
    std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{").unwrap();
    let text = read_part(&path).unwrap_err().to_string();
    assert!(
        text.contains("s.safetensors") && text.contains("header"),
        "{text}"
    );
}

/// Runs `script` with `python3 -W error` (any warning fails); a missing python3 or numpy fails
/// the test with what to install.
fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .args(["-W", "error", "-c", script])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install python3 and python3-numpy"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'numpy'"),
        "python3 has no numpy: install python3-numpy (or `pip install numpy`)"
    );
    assert!(out.status.success(), "python3 failed:\n{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_pickle_loads_ours_as_ctrgcn_ensemble_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let ours = sample();
    let path = dir.path().join("scores.pkl");
    ours.write_pickle(&path).unwrap();
    // The expected names and values, independently of the pickle.
    let expected = dir.path().join("expected.json");
    let rows: Vec<&[f32]> = (0..ours.len()).map(|i| ours.row(i)).collect();
    let json = serde_json::json!({ "names": ours.names, "rows": rows });
    std::fs::write(&expected, json.to_string()).unwrap();
    let script = r#"
import json, pickle, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    loaded = pickle.load(f)
with open(sys.argv[2]) as f:
    expected = json.load(f)
assert type(loaded) is dict, type(loaded)
assert list(loaded) == expected["names"], list(loaded)
for name, row in zip(expected["names"], expected["rows"]):
    v = loaded[name]
    assert type(v) is np.ndarray, type(v)
    assert v.dtype == np.float32 and v.shape == (len(row),), (v.dtype, v.shape)
    assert np.array_equal(v, np.array(row, dtype=np.float32)), (name, v, row)
    assert v.flags.writeable
# CTR-GCN's ensemble.py: list(pickle.load(...).items()), then per sample a weighted sum and argmax.
r1 = list(loaded.items())
hits = []
for i in range(len(r1)):
    _, r11 = r1[i]
    r = r11 * 0.6 + r11 * 0.4
    hits.append(int(np.argmax(r)))
    r11 += 1.0  # the arrays are writable, as numpy's own
print(json.dumps(hits))
"#;
    let stdout = python(script, &[&path, &expected]);
    let argmax: Vec<usize> = serde_json::from_str(stdout.trim()).unwrap();
    let want: Vec<usize> = rows
        .iter()
        .map(|r| (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
        .collect();
    assert_eq!(argmax, want);
}

#[derive(serde::Deserialize)]
struct Recorded {
    names: Vec<String>,
    scores: Vec<Vec<f64>>,
}

#[test]
fn reads_numpy_pickles_to_the_recorded_values() {
    let text = std::fs::read_to_string(fixtures().join("values.json")).unwrap();
    let recorded: std::collections::BTreeMap<String, Recorded> =
        serde_json::from_str(&text).unwrap();
    // What each fixture must exercise, checked on its bytes so that a regenerated fixture
    // cannot silently lose it.
    let cases: [(&str, &[u8], &[u8]); 8] = [
        ("ctrgcn_p2_f32.pkl", b"\x80\x02", b"_codecs\nencode"),
        ("ctrgcn_p4_f32.pkl", b"\x80\x04", b"numpy._core.multiarray"),
        ("ctrgcn_p4_f64.pkl", b"\x80\x04", b"f8"),
        ("ctrgcn_p5_f32.pkl", b"\x80\x05", b"_frombuffer"),
        ("numpy1_p4.pkl", b"\x80\x04", b"\x15numpy.core.multiarray"),
        ("numpy1_p5.pkl", b"\x80\x05", b"\x12numpy.core.numeric"),
        ("big_endian_p2.pkl", b"\x80\x02", b"X\x01\x00\x00\x00>"),
        ("lists_p4.pkl", b"\x80\x04", b"G"),
    ];
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        {
            let mut names: Vec<_> = cases.iter().map(|c| c.0).collect();
            names.sort();
            names
        },
        "values.json and this test list the same pickles"
    );
    for (file, head, marker) in cases {
        let path = fixtures().join(file);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(head), "{file}: protocol");
        assert!(
            bytes.windows(marker.len()).any(|w| w == marker),
            "{file}: lacks {}",
            String::from_utf8_lossy(marker)
        );
        let read = Scores::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let want = &recorded[file];
        assert_eq!(read.names, want.names, "{file}");
        assert_eq!(read.classes, want.scores[0].len(), "{file}");
        let values: Vec<f32> = want.scores.iter().flatten().map(|&v| v as f32).collect();
        assert_eq!(read.values, values, "{file}");
        assert_eq!(read.labels, None, "{file}");
    }
}

/// Reads `bytes` as a pickle named `name` and returns the error message.
fn refused(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = Scores::read_pickle(&path).expect_err("a bad pickle must be refused");
    let text = err.to_string();
    assert!(text.contains(name), "the message names the file: {text}");
    text
}

#[test]
fn truncated_pickles_are_refused_at_every_length() {
    for file in [
        "ctrgcn_p2_f32.pkl",
        "ctrgcn_p4_f32.pkl",
        "ctrgcn_p5_f32.pkl",
    ] {
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        for len in 0..bytes.len() {
            let text = refused("cut.pkl", &bytes[..len]);
            assert!(text.contains("byte "), "{file} cut at {len}: {text}");
        }
    }
    // A string cut short: the PROTO, then BINUNICODE of 5 bytes with 2 present.
    let text = refused("short.pkl", b"\x80\x03X\x05\x00\x00\x00ab");
    assert!(text.contains("byte 2: BINUNICODE (0x58)"), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn unknown_and_unsupported_opcodes_name_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.pkl");
    sample().write_pickle(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // Byte 2 follows the two-byte PROTO.
    bytes[2] = 0xff;
    let text = refused("bad.pkl", &bytes);
    assert!(text.contains("byte 2: unknown opcode 0xff"), "{text}");
    bytes[2] = 0x81;
    let text = refused("bad.pkl", &bytes);
    assert!(text.contains("byte 2: NEWOBJ (0x81)"), "{text}");
    // Loading never calls what a pickle names, and refuses anything but numpy arrays.
    let text = refused("evil.pkl", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.");
    assert!(text.contains("byte 2: GLOBAL (0x63)"), "{text}");
    assert!(text.contains("`os.system`"), "{text}");
    let text = refused("proto.pkl", b"\x80\x01}.");
    assert!(text.contains("byte 0: PROTO (0x80): protocol 1"), "{text}");
    let text = refused("list.pkl", b"\x80\x04].");
    assert!(text.contains("holds a list"), "{text}");
}

#[test]
fn bad_rows_name_the_sample() {
    let ragged = std::fs::read(fixtures().join("ragged.pkl")).unwrap();
    let text = refused("ragged.pkl", &ragged);
    assert!(
        text.contains("sample `b` has 5 scores, the first sample `a` has 6"),
        "{text}"
    );
    // {"a": "x"}: a string where scores belong.
    let text = refused("str.pkl", b"\x80\x04}\x8c\x01a\x8c\x01xs.");
    assert!(text.contains("sample `a`: a str"), "{text}");
    // {"a": [1.0], "a": [2.0]}: the same name twice.
    let twice = b"\x80\x04}(\x8c\x01a]G?\xf0\x00\x00\x00\x00\x00\x00a\x8c\x01a]G@\x00\x00\x00\x00\x00\x00\x00au.";
    let text = refused("twice.pkl", twice);
    assert!(text.contains("sample `a` appears twice"), "{text}");
}

#[test]
fn corrupted_bytes_give_errors_not_panics() {
    let bytes = std::fs::read(fixtures().join("numpy1_p4.pkl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flipped.pkl");
    for i in 0..bytes.len() {
        for value in [0x00, 0x7f, 0xff, bytes[i] ^ 0x01] {
            let mut bad = bytes.clone();
            bad[i] = value;
            std::fs::write(&path, &bad).unwrap();
            // Either a clean error or, where the change lands in the data, a score set.
            if let Err(e) = Scores::read_pickle(&path) {
                assert!(e.to_string().contains("flipped.pkl"));
            }
        }
    }
}

#[test]
fn extensions_and_work_directories_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let text = Scores::read(&dir.path().join("scores.npy"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("scores.npy") && text.contains(".safetensors"),
        "{text}"
    );
    // A directory without scores names what it looked for.
    let text = Scores::read_dir_or_file(dir.path())
        .unwrap_err()
        .to_string();
    for name in WORK_DIR_SCORES {
        assert!(text.contains(name), "{text}");
    }
    let best = sample();
    best.write_safetensors(&dir.path().join("best_scores.safetensors"))
        .unwrap();
    assert_eq!(Scores::read_dir_or_file(dir.path()).unwrap(), best);
    // The last evaluation's scores come first.
    let mut evaluated = sample();
    evaluated.values.reverse();
    std::fs::create_dir(dir.path().join("eval")).unwrap();
    evaluated
        .write_safetensors(&dir.path().join("eval/scores.safetensors"))
        .unwrap();
    assert_eq!(Scores::read_dir_or_file(dir.path()).unwrap(), evaluated);
}
