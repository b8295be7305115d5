//! Parser of the NTU RGB+D `.skeleton` text format.
//!
//! The file is read as whitespace-separated tokens grouped by line: a record (frame count,
//! body count, body line, joint count, joint line) is one line. Lines may end in LF or CRLF,
//! blank lines are skipped, and every token is checked (numbers, finite floats, field counts),
//! so a damaged file is reported at its first bad line instead of being read out of step.

use crate::data::{DataError, Place};
use std::path::Path;

/// Joints per body in every NTU file (Kinect v2).
pub const JOINTS: usize = 25;

/// One body as listed in one frame: its tracking id and the values the pipeline uses.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyFrame {
    /// Kinect tracking id; a u64 above 2^53, so it is never read through f64.
    pub id: u64,
    /// x, y, z camera-space metres per joint.
    pub joints: [[f32; 3]; JOINTS],
    /// colorX, colorY colour-image pixels per joint.
    pub colors: [[f32; 2]; JOINTS],
}

/// A parsed `.skeleton` file: one list of bodies per frame, in file order (0-body frames kept).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SkeletonFile {
    pub frames: Vec<Vec<BodyFrame>>,
}

const BODY_FIELDS: [&str; 10] = [
    "bodyID",
    "clippedEdges",
    "handLeftConfidence",
    "handLeftState",
    "handRightConfidence",
    "handRightState",
    "isRestricted",
    "leanX",
    "leanY",
    "trackingState",
];
/// Body-line fields that hold floats; the others are integers.
const BODY_FLOATS: [usize; 2] = [7, 8];

const JOINT_FIELDS: [&str; 12] = [
    "x",
    "y",
    "z",
    "depthX",
    "depthY",
    "colorX",
    "colorY",
    "orientationW",
    "orientationX",
    "orientationY",
    "orientationZ",
    "trackingState",
];

/// Most fields any record has; longer lines are counted but not stored.
const MAX_FIELDS: usize = 12;

/// Parses a whole `.skeleton` file held in memory; `path` only names it in errors.
pub fn parse_skeleton(bytes: &[u8], path: &Path) -> Result<SkeletonFile, DataError> {
    Parser {
        lines: Lines {
            bytes,
            pos: 0,
            line: 1,
        },
        path,
        frame: None,
    }
    .file()
}

/// A non-blank line split into tokens.
struct Line<'a> {
    number: usize,
    fields: [&'a [u8]; MAX_FIELDS],
    count: usize,
}

struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    /// The next line with at least one token, or `None` at the end of the input.
    fn next_line(&mut self) -> Option<Line<'a>> {
        while self.pos < self.bytes.len() {
            let rest = &self.bytes[self.pos..];
            let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let number = self.line;
            self.pos += len + 1;
            self.line += 1;
            let mut line = Line {
                number,
                fields: [&[]; MAX_FIELDS],
                count: 0,
            };
            for token in rest[..len]
                .split(u8::is_ascii_whitespace)
                .filter(|t| !t.is_empty())
            {
                if line.count < MAX_FIELDS {
                    line.fields[line.count] = token;
                }
                line.count += 1;
            }
            if line.count > 0 {
                return Some(line);
            }
        }
        None
    }
}

struct Parser<'a, 'p> {
    lines: Lines<'a>,
    path: &'p Path,
    /// The frame being read, for error places.
    frame: Option<usize>,
}

impl<'a> Parser<'a, '_> {
    fn file(mut self) -> Result<SkeletonFile, DataError> {
        let Some(first) = self.lines.next_line() else {
            return Err(DataError::new(self.path, Place::File, "empty file"));
        };
        let frame_count = self.count(&first, "frame count")?;
        // The declared count is untrusted: reserve for what the file could hold at most.
        let mut frames = Vec::with_capacity(frame_count.min(self.lines.bytes.len() / 2));
        for f in 0..frame_count {
            self.frame = Some(f);
            let line =
                self.expect_line(&format!("the body count of frame {f} of {frame_count}"))?;
            let bodies = self.count(&line, "body count")?;
            let mut frame = Vec::with_capacity(bodies.min(8));
            for b in 0..bodies {
                frame.push(self.body(b)?);
            }
            frames.push(frame);
        }
        self.frame = None;
        if let Some(extra) = self.lines.next_line() {
            return Err(self.error(
                extra.number,
                format!("unexpected data after the last of {frame_count} frames"),
            ));
        }
        Ok(SkeletonFile { frames })
    }

    fn body(&mut self, b: usize) -> Result<BodyFrame, DataError> {
        let line = self.expect_line(&format!("the line of body {b}"))?;
        self.check_fields(&line, &format!("body {b}"), BODY_FIELDS.len())?;
        let id = self.parse_u64(&line, 0, "bodyID")?;
        for (k, name) in BODY_FIELDS.iter().enumerate().skip(1) {
            if BODY_FLOATS.contains(&k) {
                self.parse_float(&line, k, name)?;
            } else {
                self.parse_int(&line, k, name)?;
            }
        }
        let count_line = self.expect_line(&format!("the joint count of body {b}"))?;
        let joints = self.count(&count_line, "joint count")?;
        if joints != JOINTS {
            return Err(self.error(
                count_line.number,
                format!("expected {JOINTS} joints, found {joints}"),
            ));
        }
        let mut body = BodyFrame {
            id,
            joints: [[0.0; 3]; JOINTS],
            colors: [[0.0; 2]; JOINTS],
        };
        for j in 0..JOINTS {
            let line = self.expect_line(&format!("joint {} of body {b}", j + 1))?;
            self.check_fields(&line, &format!("joint {}", j + 1), JOINT_FIELDS.len())?;
            let mut values = [0.0f32; 11];
            for (k, value) in values.iter_mut().enumerate() {
                *value = self.parse_float(&line, k, JOINT_FIELDS[k])?;
            }
            self.parse_int(&line, 11, JOINT_FIELDS[11])?;
            body.joints[j] = [values[0], values[1], values[2]];
            body.colors[j] = [values[5], values[6]];
        }
        Ok(body)
    }

    fn expect_line(&mut self, what: &str) -> Result<Line<'a>, DataError> {
        self.lines.next_line().ok_or_else(|| {
            let last = self.lines.line.saturating_sub(1).max(1);
            self.error(last, format!("file ends before {what}"))
        })
    }

    /// A line holding one non-negative integer.
    fn count(&self, line: &Line, what: &str) -> Result<usize, DataError> {
        self.check_fields(line, what, 1)?;
        std::str::from_utf8(line.fields[0])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| {
                self.error(
                    line.number,
                    format!("{what} `{}` is not a whole number", shown(line.fields[0])),
                )
            })
    }

    fn check_fields(&self, line: &Line, what: &str, expected: usize) -> Result<(), DataError> {
        if line.count == expected {
            Ok(())
        } else {
            Err(self.error(
                line.number,
                format!(
                    "{what}: expected {expected} field{}, found {}",
                    if expected == 1 { "" } else { "s" },
                    line.count
                ),
            ))
        }
    }

    fn parse_u64(&self, line: &Line, k: usize, name: &str) -> Result<u64, DataError> {
        let token = line.fields[k];
        std::str::from_utf8(token)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| self.bad_token(line, token, name, "an unsigned 64-bit integer"))
    }

    fn parse_int(&self, line: &Line, k: usize, name: &str) -> Result<i64, DataError> {
        let token = line.fields[k];
        std::str::from_utf8(token)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| self.bad_token(line, token, name, "an integer"))
    }

    /// A finite float, rounded the way numpy converts text to float32: to the nearest f64
    /// first, then to f32.
    fn parse_float(&self, line: &Line, k: usize, name: &str) -> Result<f32, DataError> {
        let token = line.fields[k];
        let value = std::str::from_utf8(token)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| self.bad_token(line, token, name, "a number"))?;
        let single = value as f32;
        if single.is_finite() {
            Ok(single)
        } else {
            Err(self.error(
                line.number,
                format!("{name} is `{}`, not a finite float32", shown(token)),
            ))
        }
    }

    fn bad_token(&self, line: &Line, token: &[u8], name: &str, expected: &str) -> DataError {
        self.error(
            line.number,
            format!("{name} `{}` is not {expected}", shown(token)),
        )
    }

    fn error(&self, line: usize, message: String) -> DataError {
        let place = match self.frame {
            Some(frame) => Place::Frame {
                frame,
                line: Some(line),
            },
            None => Place::Line(line),
        };
        DataError::new(self.path, place, message)
    }
}

/// A token as text for messages, cut short if long.
fn shown(token: &[u8]) -> String {
    let text = String::from_utf8_lossy(token);
    match text.char_indices().nth(32) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint_line(x: f32) -> String {
        format!("{x} 0.1 3.5 250.1 200.2 1000.5 500.25 0.5 0.1 0.2 0.3 2\n")
    }

    fn one_body_file(frames: usize, newline: &str) -> String {
        let mut s = format!("{frames}\n");
        for f in 0..frames {
            s += "1\n72057594037931101 0 1 1 1 1 0 0.02764709 0.05745083 2\n25\n";
            for j in 0..JOINTS {
                s += &joint_line((f * 100 + j) as f32 * 0.01);
            }
        }
        s.replace('\n', newline)
    }

    #[test]
    fn reads_frames_ids_joints_and_colors() {
        let file = parse_skeleton(one_body_file(2, "\n").as_bytes(), Path::new("t")).unwrap();
        assert_eq!(file.frames.len(), 2);
        let body = &file.frames[1][0];
        assert_eq!(body.id, 72057594037931101);
        assert_eq!(body.joints[3], [103.0f32 * 0.01, 0.1, 3.5]);
        assert_eq!(body.colors[3], [1000.5, 500.25]);
    }

    #[test]
    fn crlf_and_lf_give_the_same_file() {
        let lf = parse_skeleton(one_body_file(3, "\n").as_bytes(), Path::new("t")).unwrap();
        let crlf = parse_skeleton(one_body_file(3, "\r\n").as_bytes(), Path::new("t")).unwrap();
        assert_eq!(lf, crlf);
    }

    #[test]
    fn zero_body_frames_are_kept_as_empty() {
        let text = one_body_file(1, "\n").replacen("1\n1\n", "3\n0\n0\n1\n", 1);
        let file = parse_skeleton(text.as_bytes(), Path::new("t")).unwrap();
        assert_eq!(
            file.frames.iter().map(Vec::len).collect::<Vec<_>>(),
            [0, 0, 1]
        );
    }

    #[test]
    fn body_ids_above_2_pow_53_keep_every_digit() {
        let text = one_body_file(1, "\n").replace("72057594037931101", "18446744073709551615");
        let file = parse_skeleton(text.as_bytes(), Path::new("t")).unwrap();
        assert_eq!(file.frames[0][0].id, u64::MAX);
    }

    #[test]
    fn floats_round_through_f64_like_numpy() {
        // Halfway between two f32 neighbours after rounding to f64, but just above it in
        // decimal: direct rounding to f32 goes up, rounding through f64 ties to even (down).
        let text = "1.00000005960464477539062500000000000000001";
        let direct: f32 = text.parse().unwrap();
        let through_f64 = text.parse::<f64>().unwrap() as f32;
        assert_ne!(direct, through_f64);
        let file = one_body_file(1, "\n").replacen("0 0.1 3.5", &format!("{text} 0.1 3.5"), 1);
        let parsed = parse_skeleton(file.as_bytes(), Path::new("t")).unwrap();
        assert_eq!(parsed.frames[0][0].joints[0][0], through_f64);
    }
}
