use crate::data::text::numbered_lines;
use crate::data::{DataError, Place};
use std::path::Path;

/// A PKU-MMD split file (`cross-subject.txt`, `cross-view.txt`): the training videos and the
/// list the file calls validation, which the community uses as the test set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitLists {
    pub train: Vec<String>,
    pub validation: Vec<String>,
}

const TRAIN_HEADER: &str = "Training videos:";
/// The official files spell it so.
const VALIDATION_HEADERS: [&str; 2] = ["Validataion videos:", "Validation videos:"];

/// Parses `Training videos:`, a line of `, `-separated names, `Validataion videos:` (sic), and a
/// line of names. Blank lines are ignored, trailing commas and spaces allowed.
pub fn parse_split(path: &Path, bytes: &[u8]) -> Result<SplitLists, DataError> {
    let mut lines = Vec::new();
    for line in numbered_lines(path, bytes) {
        let (number, text) = line?;
        if !text.trim().is_empty() {
            lines.push((number, text.trim()));
        }
    }
    let place = |i: usize| {
        lines
            .get(i)
            .map_or(Place::File, |&(number, _)| Place::Line(number))
    };
    let header = |i: usize, expected: &[&str]| match lines.get(i) {
        Some((_, text)) if expected.contains(text) => Ok(()),
        found => Err(DataError::new(
            path,
            place(i),
            format!(
                "expected `{}`, found {}",
                expected[0],
                found.map_or("the end of the file".into(), |(_, t)| format!("`{t}`"))
            ),
        )),
    };
    let names = |i: usize| -> Result<Vec<String>, DataError> {
        let Some(&(number, text)) = lines.get(i) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(DataError::new(
                    path,
                    Place::Line(number),
                    format!("`{name}` is not a video name like 0002-L"),
                ));
            }
            names.push(name.to_string());
        }
        Ok(names)
    };
    header(0, &[TRAIN_HEADER])?;
    let train_only = lines.len() > 1 && VALIDATION_HEADERS.contains(&lines[1].1);
    let (train, next) = if train_only {
        (Vec::new(), 1)
    } else {
        (names(1)?, 2)
    };
    header(next, &VALIDATION_HEADERS)?;
    let validation = names(next + 1)?;
    if lines.len() > next + 2 {
        return Err(DataError::new(
            path,
            place(next + 2),
            "unexpected line after the validation list",
        ));
    }
    Ok(SplitLists { train, validation })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SplitLists, DataError> {
        parse_split(Path::new("cross-subject.txt"), text.as_bytes())
    }

    #[test]
    fn reads_the_official_layout() {
        let s = parse(
            "Training videos: \n0002-L, 0002-M, 0002-R, \nValidataion videos: \n0291-L, 0291-M\n",
        )
        .unwrap();
        assert_eq!(s.train, ["0002-L", "0002-M", "0002-R"]);
        assert_eq!(s.validation, ["0291-L", "0291-M"]);
        let s = parse("Training videos:\r\n0002-L\r\nValidation videos:\r\n").unwrap();
        assert_eq!((s.train.len(), s.validation.len()), (1, 0));
    }

    #[test]
    fn wrong_headers_and_names_name_the_line() {
        let e = parse("Train videos:\n0002-L\nValidataion videos:\n0291-L").unwrap_err();
        assert_eq!(e.place, Place::Line(1));
        let e = parse("Training videos:\n0002-L\nTest videos:\n0291-L").unwrap_err();
        assert_eq!(e.place, Place::Line(3));
        assert!(e.message.contains("Validataion videos:"), "{e}");
        let e = parse("Training videos:\n0002-L, ../etc\nValidataion videos:\n").unwrap_err();
        assert_eq!(e.place, Place::Line(2));
        assert_eq!(parse("").unwrap_err().place, Place::File);
        let e = parse("Training videos:\na\nValidataion videos:\nb\nc").unwrap_err();
        assert_eq!(e.place, Place::Line(5));
    }
}
