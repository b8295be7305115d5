use super::{JOINTS, PERSONS};
use crate::data::text::numbered_lines;
use crate::data::{DataError, Place, Sequence};
use std::path::Path;

const VALUES_PER_FRAME: usize = PERSONS * JOINTS * 3;

/// Parses a PKU-MMD skeleton file: one line per frame of 150 whitespace-separated numbers,
/// person 1's 25 joints as x y z, then person 2's (zeros when absent). Gives
/// `(frames, 2, 25, 3)`, whose layout is exactly the file's row.
pub fn parse_skeleton(path: &Path, bytes: &[u8]) -> Result<Sequence, DataError> {
    let mut data = Vec::new();
    for line in numbered_lines(path, bytes) {
        let (number, line) = line?;
        let at = |message: String| DataError::new(path, Place::Line(number), message);
        let mut found = 0;
        for token in line.split_ascii_whitespace() {
            found += 1;
            if found > VALUES_PER_FRAME {
                continue;
            }
            let value: f32 = token
                .parse()
                .map_err(|_| at(format!("value {found} `{token}` is not a number")))?;
            if !value.is_finite() {
                return Err(at(format!("value {found} `{token}` is not finite")));
            }
            data.push(value);
        }
        if found != VALUES_PER_FRAME {
            return Err(at(format!(
                "expected {VALUES_PER_FRAME} values (2 persons × 25 joints × xyz), found {found}"
            )));
        }
    }
    if data.is_empty() {
        return Err(DataError::new(path, Place::File, "empty file: no frames"));
    }
    let frames = data.len() / VALUES_PER_FRAME;
    Ok(Sequence::new(frames, PERSONS, JOINTS, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(first: f32) -> String {
        let mut values = vec!["0.000000".to_string(); 150];
        values[0] = format!("{first:.6}");
        values[149] = "-1.500000".into();
        values.join(" ")
    }

    fn parse(text: &str) -> Result<Sequence, DataError> {
        parse_skeleton(Path::new("0002-L.txt"), text.as_bytes())
    }

    #[test]
    fn reads_rows_as_frames_with_either_line_ending() {
        let lf = format!("{}\n{}\n", row(1.0), row(2.0));
        let crlf = lf.replace('\n', "\r\n");
        for text in [lf, crlf] {
            let s = parse(&text).unwrap();
            assert_eq!((s.frames, s.persons, s.joints), (2, 2, 25));
            assert_eq!(s.frame(1)[0], 2.0);
            assert_eq!(s.frame(0)[149], -1.5, "person 2, joint 25, z");
        }
    }

    #[test]
    fn a_truncated_row_names_its_line() {
        let short: String = row(1.0).split(' ').take(75).collect::<Vec<_>>().join(" ");
        let e = parse(&format!("{}\n{short}\n{}", row(1.0), row(2.0))).unwrap_err();
        assert_eq!(e.place, Place::Line(2));
        assert!(e.message.contains("found 75"), "{e}");
        let long = format!("{} 1.0", row(1.0));
        assert!(parse(&long).unwrap_err().message.contains("found 151"));
        assert_eq!(
            parse(&format!("{}\n\n{}", row(1.0), row(1.0)))
                .unwrap_err()
                .place,
            Place::Line(2)
        );
    }

    #[test]
    fn non_numeric_and_non_finite_tokens_name_line_and_value() {
        let text = format!(
            "{}\n{}",
            row(1.0),
            row(1.0).replacen("0.000000", "0.0x0", 1)
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.place, Place::Line(2));
        assert!(e.message.starts_with("value 2 `0.0x0`"), "{e}");
        for bad in ["nan", "inf", "-inf", "1e39"] {
            let e = parse(&row(1.0).replacen("0.000000", bad, 1)).unwrap_err();
            assert!(
                e.message.contains("not finite") && e.place == Place::Line(1),
                "{e}"
            );
        }
    }

    #[test]
    fn empty_and_non_utf8_files_are_rejected() {
        assert_eq!(parse("").unwrap_err().place, Place::File);
        assert_eq!(parse("\n\r\n").unwrap_err().place, Place::File);
        let e = parse_skeleton(Path::new("x.txt"), b"1 2\n\xff\xfe 3\n").unwrap_err();
        assert_eq!(
            e.place,
            Place::Line(1),
            "the first line is checked before the second"
        );
        let mut bytes = format!("{}\n", row(0.0)).into_bytes();
        bytes.extend_from_slice(b"\xff 1");
        let e = parse_skeleton(Path::new("x.txt"), &bytes).unwrap_err();
        assert_eq!(e.place, Place::Line(2));
    }
}
