//! The error of every reader of an input file (datasets, skeleton topologies): which file, where
//! in it, and what was wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a file a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole (empty, unreadable, unknown name pattern).
    File,
    /// A 1-based line number of a text file.
    Line(usize),
    /// A 0-based frame index, optionally with the 1-based line it starts on.
    Frame { frame: usize, line: Option<usize> },
    /// A key of a structured file (JSON key, `.npz` member, safetensors tensor).
    Key(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File => write!(f, "file"),
            Place::Line(line) => write!(f, "line {line}"),
            Place::Frame {
                frame,
                line: Some(line),
            } => write!(f, "frame {frame} (line {line})"),
            Place::Frame { frame, line: None } => write!(f, "frame {frame}"),
            Place::Key(key) => write!(f, "key `{key}`"),
        }
    }
}

/// A reader's complaint about its input: which file, where in it, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub path: PathBuf,
    pub place: Place,
    pub message: String,
}

impl DataError {
    pub fn new(path: impl AsRef<Path>, place: Place, message: impl Into<String>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            place,
            message: message.into(),
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.path.display(),
            self.place,
            self.message
        )
    }
}

impl std::error::Error for DataError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_file_and_place() {
        let e = DataError::new(
            "a/S001C001P001R001A001.skeleton",
            Place::Frame {
                frame: 3,
                line: Some(57),
            },
            "expected 25 joints, found 24",
        );
        assert_eq!(
            e.to_string(),
            "a/S001C001P001R001A001.skeleton: frame 3 (line 57): expected 25 joints, found 24"
        );
    }
}
