use crate::data::text::numbered_lines;
use crate::data::{DataError, Place, Sequence};
use std::path::Path;

/// UTD-MHAD's Kinect v1 skeletons have 20 joints, in the dataset's own order (1 head,
/// 2 shoulder centre, 3 spine, 4 hip centre, then left and right arms and legs).
pub const UTD_JOINTS: usize = 20;

/// A UTD-MHAD sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct UtdClip {
    /// `aA_sS_tT`.
    pub name: String,
    /// 0-based (action − 1).
    pub label: u32,
    /// `(frames, 1, 20, 3)`.
    pub skeleton: Sequence,
}

/// Parses the CSV export of a `aA_sS_tT_skeleton.mat` file's `d_skel` (20 × 3 × T): one line per
/// joint, each holding the joint's x, y, z for frame 0, then frame 1, and so on.
pub fn parse_utd_csv(path: &Path, bytes: &[u8]) -> Result<UtdClip, DataError> {
    let (name, label) = parse_name(path)?;
    let mut joints: Vec<Vec<f32>> = Vec::with_capacity(UTD_JOINTS);
    for line in numbered_lines(path, bytes) {
        let (number, text) = line?;
        let at = |message: String| DataError::new(path, Place::Line(number), message);
        if joints.len() == UTD_JOINTS {
            return Err(at(format!("expected {UTD_JOINTS} joint lines, found more")));
        }
        let mut values = Vec::new();
        for (i, token) in text.split(',').enumerate() {
            let value = token
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    at(format!(
                        "value {} `{}` is not a finite number",
                        i + 1,
                        token.trim()
                    ))
                })?;
            values.push(value);
        }
        if values.len() % 3 != 0 {
            return Err(at(format!(
                "{} values is not a whole number of x, y, z frames",
                values.len()
            )));
        }
        if let Some(first) = joints.first().filter(|f| f.len() != values.len()) {
            return Err(at(format!(
                "{} values, but the first joint line has {}",
                values.len(),
                first.len()
            )));
        }
        joints.push(values);
    }
    if joints.len() != UTD_JOINTS {
        return Err(DataError::new(
            path,
            Place::File,
            format!("expected {UTD_JOINTS} joint lines, found {}", joints.len()),
        ));
    }
    let frames = joints[0].len() / 3;
    let mut data = Vec::with_capacity(frames * UTD_JOINTS * 3);
    for t in 0..frames {
        for joint in &joints {
            data.extend_from_slice(&joint[3 * t..3 * t + 3]);
        }
    }
    Ok(UtdClip {
        name,
        label,
        skeleton: Sequence::new(frames, 1, UTD_JOINTS, data),
    })
}

/// `aA_sS_tT_skeleton.csv` → (`aA_sS_tT`, A − 1).
fn parse_name(path: &Path) -> Result<(String, u32), DataError> {
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let parsed = file.strip_suffix("_skeleton.csv").and_then(|stem| {
        let number = |field: &str, prefix: char| {
            field
                .strip_prefix(prefix)
                .filter(|d| !d.is_empty() && d.len() <= 2)
                .and_then(|d| d.parse::<u32>().ok())
        };
        match stem.split('_').collect::<Vec<_>>()[..] {
            [a, s, t] => match (number(a, 'a'), number(s, 's'), number(t, 't')) {
                (Some(action), Some(_), Some(_)) if action >= 1 => {
                    Some((stem.to_string(), action - 1))
                }
                _ => None,
            },
            _ => None,
        }
    });
    parsed.ok_or_else(|| {
        DataError::new(
            path,
            Place::File,
            format!("file name `{file}` does not match aA_sS_tT_skeleton.csv"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 joint lines of `frames` frames; joint j of frame t at (j, t, −1).
    fn file(frames: usize) -> String {
        (0..UTD_JOINTS)
            .map(|j| {
                let values: Vec<String> = (0..frames).map(|t| format!("{j},{t},-1")).collect();
                values.join(",") + "\n"
            })
            .collect()
    }

    fn parse(text: &str) -> Result<UtdClip, DataError> {
        parse_utd_csv(Path::new("a27_s8_t4_skeleton.csv"), text.as_bytes())
    }

    #[test]
    fn transposes_joint_lines_into_frames() {
        let clip = parse(&file(2)).unwrap();
        assert_eq!((clip.name.as_str(), clip.label), ("a27_s8_t4", 26));
        let s = &clip.skeleton;
        assert_eq!((s.frames, s.persons, s.joints), (2, 1, 20));
        assert_eq!(&s.frame(1)[..6], &[0.0, 1.0, -1.0, 1.0, 1.0, -1.0]);
        assert_eq!(&s.frame(0)[57..], &[19.0, 0.0, -1.0]);
    }

    #[test]
    fn bad_input_names_the_line() {
        let text = file(2);
        let short: String = text.lines().take(19).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(&short).unwrap_err().place, Place::File);
        let e = parse(&(text.clone() + "1,2,3\n")).unwrap_err();
        assert_eq!(e.place, Place::Line(21));
        let e = parse(&text.replacen("3,0,-1", "3,0,-1,4", 1)).unwrap_err();
        assert_eq!(e.place, Place::Line(4));
        let e = parse(&text.replacen("5,0,-1,5,1,-1", "5,0,-1", 1)).unwrap_err();
        assert!(e.message.contains("the first joint line has 6"), "{e}");
        let e = parse(&text.replacen("7,1", "7,NaN", 1)).unwrap_err();
        assert_eq!(
            (e.place, e.message.starts_with("value 5 `NaN`")),
            (Place::Line(8), true)
        );
        assert_eq!(parse("").unwrap_err().place, Place::File);
        let e = parse_utd_csv(Path::new("skeleton.csv"), text.as_bytes()).unwrap_err();
        assert!(e.message.contains("does not match"), "{e}");
    }
}
