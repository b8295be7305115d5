//! `sfhead prepare ucla|pku` as a command: outputs, failure lists, exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sfhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfhead"))
        .args(args)
        .output()
        .unwrap()
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn ucla_on_the_bundled_archive_reproduces_val_label_and_the_counts() {
    let out = tempfile::tempdir().unwrap();
    let archive = root().join("assets/all_sqe.tar.gz");
    let run = sfhead(&[
        "prepare",
        "ucla",
        "--raw",
        archive.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        text(&out.path().join("test.tsv")),
        text(&root().join("assets/nw-ucla-val_label.tsv"))
    );
    let train = text(&out.path().join("train.tsv"));
    assert_eq!(train.lines().count(), 1 + 1020);
    assert!(
        train
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("a01_s01_e00_v01\t")
    );
    let summary: serde_json::Value =
        serde_json::from_str(&text(&out.path().join("summary.json"))).unwrap();
    assert_eq!(
        (summary["train"].as_u64(), summary["test"].as_u64()),
        (Some(1020), Some(464))
    );
    let per_class: u64 = summary["test_per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(per_class, 464);
    assert_eq!(summary["failed_files"], 0);
}

#[test]
fn ucla_lists_every_bad_clip_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("all_sqe");
    std::fs::create_dir(&raw).unwrap();
    for entry in std::fs::read_dir(root().join("tests/data/nw-ucla")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, raw.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(raw.join("a05_s01_e00_v01.json"), "").unwrap();
    std::fs::write(raw.join("a05_s02_e00_v01.json"), r#"{"label": 5}"#).unwrap();
    std::fs::write(raw.join("clip.json"), "{}").unwrap();
    let out = dir.path().join("out");
    let run = sfhead(&[
        "prepare",
        "ucla",
        "--raw",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("3 input file(s) failed"), "{stderr}");
    assert!(
        stderr.contains("a05_s01_e00_v01.json: file: empty file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a05_s02_e00_v01.json: key `skeletons`: key is missing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("clip.json: file: file name `clip` does not match"),
        "{stderr}"
    );
    // The good clips are still listed.
    assert_eq!(text(&out.join("train.tsv")).lines().count(), 1 + 4);
    assert_eq!(text(&out.join("test.tsv")).lines().count(), 1 + 4);
}

#[test]
fn pku_writes_the_npz_and_a_missing_split_file_is_an_error() {
    let data = root().join("tests/data/pku-mmd");
    let out = tempfile::tempdir().unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let args = |split: &Path| {
        vec![
            "prepare".to_string(),
            "pku".into(),
            "--raw".into(),
            arg(&data.join("skeletons")),
            "--labels".into(),
            arg(&data.join("labels")),
            "--split".into(),
            arg(split),
            "--out".into(),
            arg(out.path()),
        ]
    };
    let run = Command::new(env!("CARGO_BIN_EXE_sfhead"))
        .args(args(&data.join("cross-subject.txt")))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("PKUv1_XSub.npz"));
    assert!(out.path().join("PKUv1_XSub.npz").is_file());
    let leftovers = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(leftovers, 2, "no temporary file stays behind");

    let run = Command::new(env!("CARGO_BIN_EXE_sfhead"))
        .args(args(&data.join("missing.txt")))
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("missing.txt"));
}
