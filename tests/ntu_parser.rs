//! The `.skeleton` parser on all 18 real files.

mod common;

use common::raw_files;
use sfhead::data::ntu::{SampleName, parse_skeleton};
use std::path::Path;

/// `shared/data/ntu-rgbd/README.md`: frames and bodies per frame of each raw file.
const TABLE: [(&str, usize, usize); 18] = [
    ("S001C001P001R001A001", 103, 1),
    ("S001C001P001R001A002", 158, 1),
    ("S001C001P001R001A003", 104, 1),
    ("S001C001P001R001A004", 99, 1),
    ("S001C001P001R001A005", 54, 1),
    ("S001C001P001R001A011", 82, 1),
    ("S001C001P001R001A050", 74, 2),
    ("S001C001P003R002A005", 68, 2),
    ("S001C001P004R001A017", 97, 1),
    ("S001C003P008R002A058", 70, 2),
    ("S002C001P003R001A003", 100, 1),
    ("S003C001P015R001A034", 71, 1),
    ("S004C002P003R001A017", 124, 1),
    ("S017C003P020R002A054", 42, 2),
    ("S017C003P020R002A055", 66, 2),
    ("S017C003P020R002A056", 80, 2),
    ("S017C003P020R002A057", 76, 2),
    ("S017C003P020R002A058", 65, 2),
];

#[test]
fn every_raw_file_parses_with_the_documented_frames_and_bodies() {
    let files = raw_files();
    assert_eq!(files.len(), TABLE.len());
    for ((file, bytes), (name, frames, bodies)) in files.iter().zip(TABLE) {
        assert_eq!(file, &format!("{name}.skeleton"));
        assert!(SampleName::from_file_name(file).is_ok());
        let parsed = parse_skeleton(bytes, Path::new(file)).unwrap();
        assert_eq!(parsed.frames.len(), frames, "{name}: frames");
        let most = parsed.frames.iter().map(Vec::len).max().unwrap();
        let fewest = parsed.frames.iter().map(Vec::len).min().unwrap();
        assert!(fewest >= 1, "{name}: no frame without a body");
        assert_eq!(most, bodies, "{name}: bodies per frame");
    }
}

#[test]
fn both_line_endings_occur_and_parse_alike() {
    let files = raw_files();
    let crlf = files
        .iter()
        .filter(|(_, b)| b.windows(2).any(|w| w == b"\r\n"))
        .count();
    // The data README says 9 and 9; the files themselves have 7 CRLF and 11 LF.
    assert_eq!((crlf, files.len() - crlf), (7, 11), "CRLF and LF files");
    for (file, bytes) in &files {
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lf = text.replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");
        let path = Path::new(file);
        let original = parse_skeleton(bytes, path).unwrap();
        assert_eq!(
            parse_skeleton(lf.as_bytes(), path).unwrap(),
            original,
            "{file}"
        );
        assert_eq!(
            parse_skeleton(crlf.as_bytes(), path).unwrap(),
            original,
            "{file}"
        );
    }
}

#[test]
fn body_ids_are_the_17_digit_tracking_ids() {
    for (file, bytes) in raw_files() {
        let parsed = parse_skeleton(&bytes, Path::new(&file)).unwrap();
        for body in parsed.frames.iter().flatten() {
            assert!(
                (72057594037000000..72057594038000000).contains(&body.id),
                "{file}: id {}",
                body.id
            );
        }
    }
}
