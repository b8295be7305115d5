use super::CLASSES;
use crate::data::text::numbered_lines;
use crate::data::{DataError, Place};
use std::path::Path;

/// One line of a PKU-MMD label file: an action instance of a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelRow {
    /// 1–51 as in the file.
    pub action: u32,
    /// The instance is the skeleton rows `start..end` (0-based, end exclusive, as MAMP cuts
    /// them); a line with start > end is read with the two swapped.
    pub start: usize,
    pub end: usize,
    /// 1 (slight) or 2 (strong) in the dataset; kept, not used.
    pub confidence: u32,
    /// The 1-based line in the label file, to name the instance.
    pub line: usize,
}

/// Parses `action_id,start_frame,end_frame,confidence` lines.
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<LabelRow>, DataError> {
    let mut rows = Vec::new();
    for line in numbered_lines(path, bytes) {
        let (number, line) = line?;
        let at = |message: String| DataError::new(path, Place::Line(number), message);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [action, start, end, confidence] = fields[..] else {
            return Err(at(format!(
                "expected 4 comma-separated fields (action,start,end,confidence), found {}",
                fields.len()
            )));
        };
        let integer = |name: &str, field: &str| {
            field
                .parse::<u32>()
                .map_err(|_| at(format!("{name} `{field}` is not a non-negative integer")))
        };
        let action = integer("action", action)?;
        if !(1..=CLASSES as u32).contains(&action) {
            return Err(at(format!("action {action} is not in 1–{CLASSES}")));
        }
        let (a, b) = (
            integer("start", start)? as usize,
            integer("end", end)? as usize,
        );
        rows.push(LabelRow {
            action,
            start: a.min(b),
            end: a.max(b),
            confidence: integer("confidence", confidence)?,
            line: number,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<LabelRow>, DataError> {
        parse_labels(Path::new("labels/0002-L.txt"), text.as_bytes())
    }

    #[test]
    fn reads_rows_and_swaps_reversed_intervals() {
        let rows = parse("41,67,129,1\r\n3, 300 ,200,2\n\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].action, rows[0].start, rows[0].end), (41, 67, 129));
        assert_eq!(
            (rows[1].start, rows[1].end, rows[1].confidence, rows[1].line),
            (200, 300, 2, 2)
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        for bad in ["1,2,3", "1,2,3,4,5", "1 2 3 4", "1,2,3,4,"] {
            let e = parse(&format!("41,67,129,1\n{bad}")).unwrap_err();
            assert_eq!(e.place, Place::Line(2), "{bad}");
            assert!(
                e.message.starts_with("expected 4 comma-separated fields"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_numbers_and_actions_are_rejected() {
        assert!(parse("x,1,2,1").unwrap_err().message.contains("action `x`"));
        assert!(
            parse("1,-1,2,1")
                .unwrap_err()
                .message
                .contains("start `-1`")
        );
        assert!(
            parse("1,1,2.5,1")
                .unwrap_err()
                .message
                .contains("end `2.5`")
        );
        assert!(
            parse("52,1,2,1")
                .unwrap_err()
                .message
                .contains("not in 1–51")
        );
        assert!(parse("0,1,2,1").is_err());
    }
}
