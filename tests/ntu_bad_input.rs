//! Damaged `.skeleton` files: each is an error naming the file and the place, never a panic.

mod common;

use sfhead::data::ntu::{SingleActor, parse_skeleton, process_file};
use sfhead::data::{DataError, Place};
use std::path::Path;

const NAME: &str = "S001C001P001R001A001.skeleton";

/// A001 as lines: 1 frame count, 2 body count, 3 body line, 4 joint count, 5–29 joints, …
fn lines() -> Vec<String> {
    String::from_utf8(common::raw_file("S001C001P001R001A001"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    (lines.join("\n") + "\n").into_bytes()
}

fn process(bytes: &[u8]) -> Result<(), DataError> {
    process_file(bytes, Path::new(NAME), SingleActor::Zeros).map(|_| ())
}

fn assert_error(bytes: &[u8], place: Place, words: &str) {
    let err = process(bytes).expect_err("an error");
    assert_eq!(err.place, place, "{err}");
    assert!(err.message.contains(words), "{err}");
    assert!(err.to_string().starts_with(NAME), "{err}");
}

fn frame(frame: usize, line: usize) -> Place {
    Place::Frame {
        frame,
        line: Some(line),
    }
}

/// Replaces field `k` of line `n` (1-based).
fn with_field(n: usize, k: usize, value: &str) -> Vec<u8> {
    let mut lines = lines();
    let mut fields: Vec<&str> = lines[n - 1].split_whitespace().collect();
    fields[k] = value;
    lines[n - 1] = fields.join(" ");
    join(&lines)
}

#[test]
fn the_untouched_file_is_fine() {
    process(&join(&lines())).unwrap();
}

#[test]
fn truncated_files_name_the_frame_they_end_in() {
    let all = lines();
    // Frame 2 starts at line 2 + 2 · 28 = 58; cut after its body count.
    assert_error(
        &join(&all[..58]),
        frame(2, 58),
        "file ends before the line of body 0",
    );
    assert_error(
        &join(&all[..1]),
        frame(0, 1),
        "file ends before the body count of frame 0",
    );
    // Cut in the middle of a joint line.
    let mut cut = join(&all[..40]);
    cut.truncate(cut.len() - 30);
    let err = process(&cut).expect_err("an error");
    assert_eq!(err.place, frame(1, 40), "{err}");
    assert!(err.message.contains("expected 12 fields"), "{err}");
}

#[test]
fn non_numeric_tokens_are_named() {
    assert_error(
        &with_field(5, 0, "0.2x18"),
        frame(0, 5),
        "x `0.2x18` is not a number",
    );
    assert_error(
        &with_field(3, 0, "7205759403793110a"),
        frame(0, 3),
        "bodyID",
    );
    assert_error(
        &with_field(1, 0, "many"),
        Place::Line(1),
        "frame count `many`",
    );
    assert_error(&with_field(61, 11, "2.5"), frame(2, 61), "trackingState");
}

#[test]
fn wrong_joint_counts_are_named() {
    assert_error(
        &with_field(4, 0, "24"),
        frame(0, 4),
        "expected 25 joints, found 24",
    );
    assert_error(
        &with_field(32, 0, "26"),
        frame(1, 32),
        "expected 25 joints, found 26",
    );
}

#[test]
fn nan_and_infinite_coordinates_are_named() {
    for token in ["nan", "NaN", "inf", "-infinity", "1e39"] {
        assert_error(
            &with_field(7, 1, token),
            frame(0, 7),
            "not a finite float32",
        );
    }
}

#[test]
fn wrong_field_counts_are_named() {
    let mut all = lines();
    all[9].push_str(" 7");
    assert_error(
        &join(&all),
        frame(0, 10),
        "joint 6: expected 12 fields, found 13",
    );
}

#[test]
fn empty_files_are_named() {
    for bytes in [&b""[..], b"\n\n", b" \r\n\t "] {
        assert_error(bytes, Place::File, "empty file");
    }
}

#[test]
fn unknown_file_name_patterns_are_named() {
    let bytes = join(&lines());
    for name in [
        "A001.skeleton",
        "S001C001P001R001A001.txt",
        "S001C001P001R001A999.skeleton",
    ] {
        let err = process_file(&bytes, Path::new(name), SingleActor::Zeros).expect_err(name);
        assert_eq!(err.place, Place::File, "{err}");
        assert!(err.to_string().starts_with(name), "{err}");
    }
}

#[test]
fn data_after_the_last_frame_is_named() {
    let mut all = lines();
    all.push("1".into());
    let n = all.len();
    assert_error(&join(&all), Place::Line(n), "after the last of 103 frames");
}

#[test]
fn files_with_no_body_at_all_are_rejected() {
    assert_error(b"3\n0\n0\n0\n", Place::File, "all 3 frames have 0 bodies");
    assert_error(b"0\n", Place::File, "no frames");
}

#[test]
fn a_body_listed_twice_in_one_frame_is_rejected() {
    // CTR-GCN's script crashes on this: the body has more rows than there are frames.
    let all = lines();
    let body = &all[2..29];
    let mut doubled = vec!["2".to_string(), "2".to_string()];
    doubled.extend_from_slice(body);
    doubled.extend_from_slice(body);
    doubled.push("1".to_string());
    doubled.extend_from_slice(body);
    let err = process(&join(&doubled)).expect_err("an error");
    assert!(err.message.contains("listed twice in one frame"), "{err}");
}

#[test]
fn parse_errors_do_not_depend_on_the_pipeline() {
    let err = parse_skeleton(&with_field(4, 0, "x"), Path::new(NAME)).unwrap_err();
    assert_eq!(err.place, frame(0, 4));
}

#[test]
fn short_bodies_only_leave_no_actor() {
    // Two ids, each in 5 frames: the length filter drops both (CTR-GCN's script crashes here).
    let all = lines();
    let other = with_field(3, 0, "72057594037931999");
    let other: Vec<String> = String::from_utf8(other)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut text = vec!["5".to_string()];
    for _ in 0..5 {
        text.push("2".to_string());
        text.extend_from_slice(&all[2..29]);
        text.extend_from_slice(&other[2..29]);
    }
    assert_error(&join(&text), Place::File, "no body is left after denoising");
}
