//! NTU sample names: `SsssCcccPpppRrrrAaaa`, e.g. `S001C002P003R002A013`.

use std::fmt;
use std::str::FromStr;

/// The five ids encoded in an NTU sample name. All are 1-based, as in the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleName {
    pub setup: u16,
    pub camera: u16,
    pub performer: u16,
    pub replication: u16,
    pub action: u16,
}

/// The letters of the name's five fields with the range each id may take (NTU RGB+D 120).
const FIELDS: [(u8, u16, &str); 5] = [
    (b'S', 32, "setup"),
    (b'C', 3, "camera"),
    (b'P', 106, "performer"),
    (b'R', 2, "replication"),
    (b'A', 120, "action"),
];

impl SampleName {
    /// The 0-based class label: action − 1.
    pub fn label(&self) -> u32 {
        u32::from(self.action) - 1
    }

    /// True for the samples of NTU RGB+D 60: setups 1–17, performers 1–40, actions 1–60.
    pub fn in_ntu60(&self) -> bool {
        self.setup <= 17 && self.performer <= 40 && self.action <= 60
    }

    /// Parses the name of a `.skeleton` file: the stem must be a sample name.
    pub fn from_file_name(file_name: &str) -> Result<Self, String> {
        let stem = file_name.strip_suffix(".skeleton").ok_or_else(|| {
            format!(
                "unknown file name pattern `{file_name}`: expected SsssCcccPpppRrrrAaaa.skeleton"
            )
        })?;
        stem.parse()
    }
}

impl FromStr for SampleName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown sample name pattern `{s}`: expected SsssCcccPpppRrrrAaaa");
        let bytes = s.as_bytes();
        if bytes.len() != 20 {
            return Err(bad());
        }
        let mut ids = [0u16; 5];
        for (k, &(letter, max, what)) in FIELDS.iter().enumerate() {
            let field = &bytes[4 * k..4 * k + 4];
            if field[0] != letter || !field[1..].iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let id = field[1..]
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
            if id == 0 || id > max {
                return Err(format!("{what} {id} of `{s}` is outside 1–{max}"));
            }
            ids[k] = id;
        }
        let [setup, camera, performer, replication, action] = ids;
        Ok(Self {
            setup,
            camera,
            performer,
            replication,
            action,
        })
    }
}

impl fmt::Display for SampleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "S{:03}C{:03}P{:03}R{:03}A{:03}",
            self.setup, self.camera, self.performer, self.replication, self.action
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_label() {
        let n: SampleName = "S001C002P003R002A013".parse().unwrap();
        assert_eq!(
            (n.setup, n.camera, n.performer, n.replication, n.action),
            (1, 2, 3, 2, 13)
        );
        assert_eq!(n.label(), 12);
        assert_eq!(n.to_string(), "S001C002P003R002A013");
        assert!(n.in_ntu60());
    }

    #[test]
    fn ntu120_only_samples_are_not_ntu60() {
        let n: SampleName = "S018C001P041R001A061".parse().unwrap();
        assert!(!n.in_ntu60());
    }

    #[test]
    fn rejects_other_patterns() {
        for bad in [
            "",
            "S001C002P003R002A01",
            "S001C002P003R002A0133",
            "X001C002P003R002A013",
            "S001C002P003R002A01x",
            "S001C004P003R002A013",
            "S000C001P003R002A013",
            "S001C001P003R002A121",
        ] {
            assert!(bad.parse::<SampleName>().is_err(), "{bad:?} was accepted");
        }
        assert!(SampleName::from_file_name("S001C002P003R002A013.txt").is_err());
        assert!(SampleName::from_file_name("S001C002P003R002A013.skeleton").is_ok());
    }
}
