//! Sample-name lists: CTR-GCN's `skes_available_name.txt` (shipped) or one of the user's.

use super::{Edition, SampleName};
use crate::data::{DataError, Place};
use flate2::read::GzDecoder;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// CTR-GCN's lists: every sample of the dataset except those with missing skeletons.
static NTU60_NAMES: &[u8] = include_bytes!("../../../assets/ntu/skes_available_name_ntu60.txt.gz");
static NTU120_NAMES: &[u8] =
    include_bytes!("../../../assets/ntu/skes_available_name_ntu120.txt.gz");

/// CTR-GCN's name list of an edition (56,578 or 113,945 names), in its order.
pub fn shipped_names(edition: Edition) -> Vec<SampleName> {
    let (gz, file) = match edition {
        Edition::Ntu60 => (NTU60_NAMES, "assets/ntu/skes_available_name_ntu60.txt.gz"),
        Edition::Ntu120 => (NTU120_NAMES, "assets/ntu/skes_available_name_ntu120.txt.gz"),
    };
    let mut text = String::new();
    GzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("the shipped name list is valid gzip text");
    parse_name_list(&text, Path::new(file), edition).expect("the shipped name list is valid")
}

/// Reads a name list: one sample name per line (blank lines are skipped), no name twice, every
/// name a sample of `edition`.
pub fn read_name_list(path: &Path, edition: Edition) -> Result<Vec<SampleName>, DataError> {
    let bytes = std::fs::read(path)
        .map_err(|e| DataError::new(path, Place::File, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| DataError::new(path, Place::File, format!("not UTF-8 text: {e}")))?;
    parse_name_list(text, path, edition)
}

fn parse_name_list(
    text: &str,
    path: &Path,
    edition: Edition,
) -> Result<Vec<SampleName>, DataError> {
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    for (k, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let name: SampleName = line
            .parse()
            .map_err(|message| DataError::new(path, Place::Line(k + 1), message))?;
        if !edition.contains(&name) {
            return Err(DataError::new(
                path,
                Place::Line(k + 1),
                format!(
                    "{name} is not a sample of {} (setups 1–17, performers 1–40, actions 1–60); NTU RGB+D 120 needs --ntu120",
                    edition.title()
                ),
            ));
        }
        if !seen.insert(name) {
            return Err(DataError::new(
                path,
                Place::Line(k + 1),
                format!("{name} is listed twice"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_one_per_line_and_checked() {
        let l = Path::new("l");
        let list = parse_name_list(
            "S001C001P001R001A001\r\n\nS001C001P001R001A002",
            l,
            Edition::Ntu60,
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        let bad = parse_name_list("S001C001P001R001A001\nnonsense\n", l, Edition::Ntu60);
        assert_eq!(bad.unwrap_err().place, Place::Line(2));
        let twice = "S001C001P001R001A001\nS001C001P001R001A001";
        let twice = parse_name_list(twice, l, Edition::Ntu60).unwrap_err();
        assert!(twice.message.contains("twice"), "{twice}");
    }

    #[test]
    fn ntu120_samples_need_the_ntu120_edition() {
        let l = Path::new("l");
        let text = "S001C001P001R001A001\n\nS018C001P044R001A061";
        let err = parse_name_list(text, l, Edition::Ntu60).unwrap_err();
        assert_eq!(err.place, Place::Line(3));
        assert_eq!(parse_name_list(text, l, Edition::Ntu120).unwrap().len(), 2);
    }
}
