use crate::data::text::numbered_lines;
use crate::data::{DataError, Place, Sequence};
use std::path::Path;

/// Kinect v1 skeletons have 20 joints; the SDK tracks at most 4 skeletons with joints.
const JOINTS: usize = 20;
const MAX_SKELETONS: usize = 4;

/// An MSR Daily Activity 3D (or MSR Action3D `*_skeleton.txt`) sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct MsrClip {
    /// `aAA_sSS_eEE`.
    pub name: String,
    /// 0-based (action − 1).
    pub label: u32,
    /// `(frames, persons, joints, 3)` real-world x, y, z; persons is the most skeletons of any
    /// frame (at least 1), and frames with fewer are zero there.
    pub skeleton: Sequence,
}

/// Parses `aAA_sSS_eEE_skeleton.txt`: a header `frames joints`, then per frame a row count R
/// (2 rows per joint per skeleton: `x y z confidence`, then `u v depth confidence`) and R rows.
pub fn parse_msr(path: &Path, bytes: &[u8]) -> Result<MsrClip, DataError> {
    let (name, label) = parse_name(path)?;
    let mut lines = numbered_lines(path, bytes);
    let mut next_line = |what: &str| -> Result<(usize, Vec<&str>), DataError> {
        match lines.next() {
            Some(line) => line.map(|(n, text)| (n, text.split_ascii_whitespace().collect())),
            None => Err(DataError::new(
                path,
                Place::File,
                format!("the file ends before {what}"),
            )),
        }
    };
    let (number, header) = next_line("the header")?;
    let [frames, joints] = header[..] else {
        return Err(DataError::new(
            path,
            Place::Line(number),
            "expected the header `frames joints`",
        ));
    };
    let count = |token: &str, what: &str| {
        token
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0 && n <= 100_000)
            .ok_or_else(|| {
                DataError::new(
                    path,
                    Place::Line(number),
                    format!("{what} `{token}` is not a count"),
                )
            })
    };
    let (frames, joints) = (count(frames, "frames")?, count(joints, "joints")?);
    if joints != JOINTS {
        return Err(DataError::new(
            path,
            Place::Line(number),
            format!("expected {JOINTS} joints (Kinect v1), the header says {joints}"),
        ));
    }
    let mut per_frame: Vec<Vec<f32>> = Vec::with_capacity(frames);
    for frame in 0..frames {
        let (row_line, rows) = next_line(&format!("frame {frame}"))?;
        let at = |line: usize, message: String| {
            DataError::new(
                path,
                Place::Frame {
                    frame,
                    line: Some(line),
                },
                message,
            )
        };
        let rows = match rows[..] {
            [r] => r.parse::<usize>().ok(),
            _ => None,
        }
        .filter(|r| r % (2 * joints) == 0 && *r <= 2 * joints * MAX_SKELETONS)
        .ok_or_else(|| {
            at(
                row_line,
                format!("expected a row count that is a multiple of {}", 2 * joints),
            )
        })?;
        let mut xyz = Vec::with_capacity(rows / 2 * 3);
        for row in 0..rows {
            let (line, values) = next_line(&format!("row {row} of frame {frame}"))?;
            if values.len() != 4 {
                return Err(at(
                    line,
                    format!("expected 4 values, found {}", values.len()),
                ));
            }
            let numbers = values
                .iter()
                .map(|t| t.parse::<f32>().ok().filter(|x| x.is_finite()))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| at(line, "a value is not a finite number".into()))?;
            // Even rows are x y z confidence; odd rows are the screen projection.
            if row % 2 == 0 {
                xyz.extend_from_slice(&numbers[..3]);
            }
        }
        per_frame.push(xyz);
    }
    if let Some(extra) = lines.next() {
        let (line, _) = extra?;
        return Err(DataError::new(
            path,
            Place::Line(line),
            format!("unexpected content after {frames} frames"),
        ));
    }
    let persons = per_frame
        .iter()
        .map(|f| f.len() / (3 * joints))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut data = vec![0.0; frames * persons * joints * 3];
    for (t, xyz) in per_frame.iter().enumerate() {
        data[t * persons * joints * 3..][..xyz.len()].copy_from_slice(xyz);
    }
    Ok(MsrClip {
        name,
        label,
        skeleton: Sequence::new(frames, persons, joints, data),
    })
}

/// `aAA_sSS_eEE_skeleton.txt` → (`aAA_sSS_eEE`, AA − 1).
fn parse_name(path: &Path) -> Result<(String, u32), DataError> {
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let parsed = file.strip_suffix("_skeleton.txt").and_then(|stem| {
        let fields: Vec<&str> = stem.split('_').collect();
        let number = |field: &str, prefix: char| {
            field
                .strip_prefix(prefix)
                .filter(|d| d.len() == 2)
                .and_then(|d| d.parse::<u32>().ok())
        };
        match fields[..] {
            [a, s, e] => match (number(a, 'a'), number(s, 's'), number(e, 'e')) {
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
            format!("file name `{file}` does not match aAA_sSS_eEE_skeleton.txt"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "a07_s02_e01_skeleton.txt";

    /// One skeleton per frame; joint v of frame t at (t, v, 1).
    fn frame(t: usize) -> String {
        let rows: String = (0..20)
            .map(|v| format!("{t} {v} 1 1\n0.5 0.5 1800 0\n"))
            .collect();
        format!("40\n{rows}")
    }

    fn file(frames: usize) -> String {
        format!("{frames} 20\n") + &(0..frames).map(frame).collect::<String>()
    }

    fn parse(text: &str) -> Result<MsrClip, DataError> {
        parse_msr(Path::new(PATH), text.as_bytes())
    }

    #[test]
    fn reads_frames_and_skips_the_screen_rows() {
        let clip = parse(&file(3)).unwrap();
        assert_eq!((clip.name.as_str(), clip.label), ("a07_s02_e01", 6));
        let s = &clip.skeleton;
        assert_eq!((s.frames, s.persons, s.joints), (3, 1, 20));
        assert_eq!(&s.frame(2)[..6], &[2.0, 0.0, 1.0, 2.0, 1.0, 1.0]);
        assert_eq!(&s.frame(1)[57..], &[1.0, 19.0, 1.0]);
    }

    #[test]
    fn frames_without_a_skeleton_are_zero_and_two_skeletons_widen_the_clip() {
        let second: String = (0..20).map(|v| format!("-1 {v} 1 1\n0 0 0 0\n")).collect();
        let two = frame(1).replacen("40\n", "80\n", 1) + &second;
        let text = format!("3 20\n0\n{two}{}", frame(2));
        let s = parse(&text).unwrap().skeleton;
        assert_eq!((s.frames, s.persons), (3, 2));
        assert!(s.frame(0).iter().all(|&x| x == 0.0));
        assert_eq!(&s.frame(1)[..3], &[1.0, 0.0, 1.0]);
        assert_eq!(&s.frame(1)[60..63], &[-1.0, 0.0, 1.0], "second skeleton");
        assert_eq!(&s.frame(2)[..3], &[2.0, 0.0, 1.0]);
        assert!(s.frame(2)[60..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn bad_input_names_the_frame_and_line() {
        let text = file(3);
        let lines: Vec<&str> = text.lines().collect();
        let e = parse(&lines[..lines.len() - 2].join("\n")).unwrap_err();
        assert_eq!(e.place, Place::File);
        assert!(e.message.contains("before row 38 of frame 2"), "{e}");
        let e = parse(&text[..text.len() - 20]).unwrap_err();
        assert_eq!(
            e.place,
            Place::Frame {
                frame: 2,
                line: Some(123)
            },
            "a cut row"
        );
        let e = parse(&text.replace("\n40\n1 0 1 1", "\n41\n1 0 1 1")).unwrap_err();
        assert_eq!(
            e.place,
            Place::Frame {
                frame: 1,
                line: Some(43)
            }
        );
        let e = parse(&text.replace("1 1 1 1", "1 x 1 1")).unwrap_err();
        assert_eq!(
            e.place,
            Place::Frame {
                frame: 1,
                line: Some(46)
            }
        );
        let e = parse(&text.replace("1 1 1 1", "1 1 1")).unwrap_err();
        assert!(e.message.contains("expected 4 values, found 3"), "{e}");
        let e = parse(&text.replace("1 1 1 1", "1 inf 1 1")).unwrap_err();
        assert!(e.message.contains("finite"), "{e}");
        let e = parse(&(text.clone() + "4\n")).unwrap_err();
        assert_eq!(e.place, Place::Line(125));
        assert_eq!(parse("").unwrap_err().place, Place::File);
        assert_eq!(parse("3\n").unwrap_err().place, Place::Line(1));
        assert_eq!(parse("0 20\n").unwrap_err().place, Place::Line(1));
        let e = parse("100000 100000\n0\n").unwrap_err();
        assert!(e.message.contains("expected 20 joints"), "{e}");
        let e = parse_msr(Path::new("a03_s01_skeleton.txt"), text.as_bytes()).unwrap_err();
        assert!(e.message.contains("does not match"), "{e}");
    }
}
