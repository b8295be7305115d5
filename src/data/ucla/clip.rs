use super::JOINTS;
use super::name::ClipName;
use crate::data::{DataError, Place, Sequence};
use serde_json::Value;
use std::path::Path;

/// One NW-UCLA clip as read from its `all_sqe` JSON file.
#[derive(Debug, Clone, PartialEq)]
pub struct UclaClip {
    /// `aAA_sSS_eEE_vVV`.
    pub name: String,
    pub fields: ClipName,
    /// `(frames, 1, 20, 3)`, metres in Kinect v1 camera space.
    pub skeleton: Sequence,
}

/// Parses one clip file. `path` names the file in errors (for an archive member, the archive path
/// joined with the member path) and its stem must be the clip name.
///
/// Besides the shape of `skeletons` (frames × 20 joints × xyz, finite in f32, at least one frame),
/// the optional keys must agree with the name: `file_name` equal to it and `label` equal to the
/// name's label + 1. CTR-GCN ignores both keys; checking them catches renamed or mixed-up files.
pub fn parse_clip(path: &Path, bytes: &[u8]) -> Result<UclaClip, DataError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| DataError::new(path, Place::File, "file name is not valid UTF-8"))?;
    let fields = ClipName::parse(path, stem)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::new(path, Place::File, "empty file"));
    }
    let root: Value = serde_json::from_slice(bytes).map_err(|e| {
        DataError::new(
            path,
            Place::Line(e.line()),
            format!("invalid JSON at column {}: {e}", e.column()),
        )
    })?;
    let Value::Object(object) = root else {
        return Err(DataError::new(
            path,
            Place::File,
            "expected a JSON object at the top level",
        ));
    };
    if let Some(value) = object.get("file_name") {
        if value.as_str() != Some(stem) {
            return Err(DataError::new(
                path,
                Place::Key("file_name".into()),
                format!("is {value}, not the file's own name `{stem}`"),
            ));
        }
    }
    if let Some(value) = object.get("label") {
        let expected = u64::from(fields.label) + 1;
        if value.as_u64() != Some(expected) {
            return Err(DataError::new(
                path,
                Place::Key("label".into()),
                format!(
                    "is {value}, but action a{:02} has label {expected}",
                    fields.action
                ),
            ));
        }
    }
    let frames = object
        .get("skeletons")
        .ok_or_else(|| DataError::new(path, Place::Key("skeletons".into()), "key is missing"))?
        .as_array()
        .ok_or_else(|| {
            DataError::new(
                path,
                Place::Key("skeletons".into()),
                "expected a list of frames",
            )
        })?;
    if frames.is_empty() {
        return Err(DataError::new(
            path,
            Place::Key("skeletons".into()),
            "the clip has no frames",
        ));
    }
    let mut data = Vec::with_capacity(frames.len() * JOINTS * 3);
    for (t, frame) in frames.iter().enumerate() {
        read_frame(frame, &mut data).map_err(|message| {
            DataError::new(
                path,
                Place::Frame {
                    frame: t,
                    line: None,
                },
                message,
            )
        })?;
    }
    Ok(UclaClip {
        name: stem.to_string(),
        fields,
        skeleton: Sequence::new(frames.len(), 1, JOINTS, data),
    })
}

/// Appends one frame's 20 × 3 coordinates to `data`.
fn read_frame(frame: &Value, data: &mut Vec<f32>) -> Result<(), String> {
    let joints = frame.as_array().ok_or("expected a list of joints")?;
    if joints.len() != JOINTS {
        return Err(format!("expected {JOINTS} joints, found {}", joints.len()));
    }
    for (v, joint) in joints.iter().enumerate() {
        let xyz = joint
            .as_array()
            .filter(|xyz| xyz.len() == 3)
            .ok_or_else(|| format!("joint {v}: expected [x, y, z], found {joint}"))?;
        for value in xyz {
            let x = value
                .as_f64()
                .ok_or_else(|| format!("joint {v}: `{value}` is not a number"))?
                as f32;
            if !x.is_finite() {
                return Err(format!("joint {v}: {value} is not a finite f32"));
            }
            data.push(x);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "all_sqe/a02_s09_e04_v02.json";

    fn joints(n: usize) -> String {
        vec!["[0.5, -1.25, 3.0]"; n].join(", ")
    }

    fn clip_json(frames: &[String]) -> String {
        let frames: Vec<String> = frames.iter().map(|f| format!("[{f}]")).collect();
        format!(
            r#"{{"file_name": "a02_s09_e04_v02", "skeletons": [{}], "label": 2}}"#,
            frames.join(", ")
        )
    }

    fn parse(text: &str) -> Result<UclaClip, DataError> {
        parse_clip(Path::new(PATH), text.as_bytes())
    }

    #[test]
    fn reads_frames_joints_and_label() {
        let clip = parse(&clip_json(&[joints(20), joints(20)])).unwrap();
        assert_eq!(clip.name, "a02_s09_e04_v02");
        assert_eq!(clip.fields.label, 1);
        let s = &clip.skeleton;
        assert_eq!((s.frames, s.persons, s.joints), (2, 1, 20));
        assert_eq!(&s.frame(1)[57..60], &[0.5, -1.25, 3.0]);
    }

    #[test]
    fn missing_skeletons_key_is_named() {
        let e = parse(r#"{"file_name": "a02_s09_e04_v02", "label": 2}"#).unwrap_err();
        assert_eq!(e.place, Place::Key("skeletons".into()));
        assert!(e.to_string().starts_with(PATH), "{e}");
    }

    #[test]
    fn wrong_joint_count_names_the_frame() {
        let e = parse(&clip_json(&[joints(20), joints(19)])).unwrap_err();
        assert_eq!(
            e.place,
            Place::Frame {
                frame: 1,
                line: None
            }
        );
        assert!(e.message.contains("expected 20 joints, found 19"), "{e}");
    }

    #[test]
    fn short_joint_and_text_values_are_rejected() {
        let short = joints(19) + ", [1.0, 2.0]";
        let e = parse(&clip_json(&[short])).unwrap_err();
        assert!(e.message.starts_with("joint 19:"), "{e}");
        let text = joints(19) + r#", [1.0, "2", 3.0]"#;
        let e = parse(&clip_json(&[text])).unwrap_err();
        assert!(e.message.contains("is not a number"), "{e}");
    }

    #[test]
    fn nan_and_infinite_values_are_rejected_with_a_place() {
        // JSON has no NaN; Python's json module writes it anyway.
        let nan = clip_json(&[joints(20)]).replacen("0.5", "NaN", 1);
        let e = parse(&nan).unwrap_err();
        assert_eq!(e.place, Place::Line(1));
        // Finite in f64, infinite once stored as f32.
        let big = clip_json(&[joints(20)]).replacen("0.5", "1e39", 1);
        let e = parse(&big).unwrap_err();
        assert_eq!(
            e.place,
            Place::Frame {
                frame: 0,
                line: None
            }
        );
        assert!(e.message.contains("not a finite f32"), "{e}");
        let overflow = clip_json(&[joints(20)]).replacen("0.5", "1e999", 1);
        assert_eq!(parse(&overflow).unwrap_err().place, Place::Line(1));
    }

    #[test]
    fn empty_file_and_empty_clip_are_rejected() {
        assert_eq!(parse("").unwrap_err().place, Place::File);
        assert_eq!(parse(" \n").unwrap_err().message, "empty file");
        let e = parse(&clip_json(&[])).unwrap_err();
        assert_eq!(e.place, Place::Key("skeletons".into()));
    }

    #[test]
    fn unknown_file_name_pattern_is_rejected() {
        let e = parse_clip(
            Path::new("d/clip07.json"),
            clip_json(&[joints(20)]).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.place, Place::File);
        assert!(e.to_string().starts_with("d/clip07.json: file:"), "{e}");
    }

    #[test]
    fn keys_that_disagree_with_the_name_are_rejected() {
        let text = clip_json(&[joints(20)]);
        let e = parse(&text.replace(r#""label": 2"#, r#""label": 3"#)).unwrap_err();
        assert_eq!(e.place, Place::Key("label".into()));
        let e = parse(&text.replace("e04_v02\"", "e04_v03\"")).unwrap_err();
        assert_eq!(e.place, Place::Key("file_name".into()));
        let e = parse("[1, 2]").unwrap_err();
        assert_eq!(e.place, Place::File);
    }
}
