use crate::data::{DataError, Place};
use std::path::Path;

/// Action ids of NW-UCLA in label order: `a01` is label 0, … `a12` is label 9 (a07 and a10 do not
/// exist in the skeleton set).
pub const ACTION_IDS: [u8; 10] = [1, 2, 3, 4, 5, 6, 8, 9, 11, 12];

/// The fields of a clip name `aAA_sSS_eEE_vVV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipName {
    pub action: u8,
    pub subject: u8,
    pub episode: u8,
    pub view: u8,
    /// The 0-based class label, the position of the action in [`ACTION_IDS`].
    pub label: u32,
}

impl ClipName {
    /// Parses `stem` (the file name without `.json`); `path` is only used for the error.
    pub fn parse(path: &Path, stem: &str) -> Result<Self, DataError> {
        let bad = |why: &str| {
            DataError::new(
                path,
                Place::File,
                format!("file name `{stem}` does not match aAA_sSS_eEE_vVV: {why}"),
            )
        };
        let fields: Vec<&str> = stem.split('_').collect();
        let [a, s, e, v] = fields[..] else {
            return Err(bad("expected four `_`-separated fields"));
        };
        let number = |field: &str, prefix: char| -> Result<u8, DataError> {
            let digits = field
                .strip_prefix(prefix)
                .filter(|d| d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad(&format!("field `{field}` is not `{prefix}` and two digits")))?;
            Ok(digits.parse().expect("two ASCII digits"))
        };
        let action = number(a, 'a')?;
        let label = ACTION_IDS
            .iter()
            .position(|&id| id == action)
            .ok_or_else(|| bad(&format!("action a{action:02} is not an NW-UCLA action")))?;
        let view = number(v, 'v')?;
        if !(1..=3).contains(&view) {
            return Err(bad(&format!("view v{view:02} is not 1, 2 or 3")));
        }
        Ok(ClipName {
            action,
            subject: number(s, 's')?,
            episode: number(e, 'e')?,
            view,
            label: label as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(stem: &str) -> Result<ClipName, DataError> {
        ClipName::parse(Path::new("x.json"), stem)
    }

    #[test]
    fn labels_follow_the_action_mapping() {
        let labels: Vec<u32> = ["a01", "a06", "a08", "a09", "a11", "a12"]
            .iter()
            .map(|a| parse(&format!("{a}_s01_e00_v01")).unwrap().label)
            .collect();
        assert_eq!(labels, [0, 5, 6, 7, 8, 9]);
        let n = parse("a02_s09_e04_v03").unwrap();
        assert_eq!((n.subject, n.episode, n.view), (9, 4, 3));
    }

    #[test]
    fn unknown_patterns_are_rejected_with_the_file_named() {
        for stem in [
            "a07_s01_e00_v01",
            "a01_s01_e00_v04",
            "a1_s01_e00_v01",
            "a01_s01_e00",
            "b01_s01_e00_v01",
            "a01_s01_e00_v01_x",
            "a01_s0x_e00_v01",
        ] {
            let e = parse(stem).unwrap_err();
            assert_eq!(e.place, Place::File, "{stem}");
            assert!(e.to_string().starts_with("x.json: file: "), "{e}");
            assert!(e.message.contains(stem), "{e}");
        }
    }
}
