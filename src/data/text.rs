use crate::data::{DataError, Place};
use std::path::Path;

/// The lines of a text file with their 1-based numbers, `\r\n` or `\n` endings, trailing blank
/// lines dropped. A line that is not UTF-8 is an error naming it.
pub(crate) fn numbered_lines<'a>(
    path: &'a Path,
    bytes: &'a [u8],
) -> impl Iterator<Item = Result<(usize, &'a str), DataError>> + 'a {
    let text = bytes.trim_ascii_end();
    let lines = if text.is_empty() {
        None
    } else {
        Some(text.split(|&b| b == b'\n'))
    };
    lines
        .into_iter()
        .flatten()
        .enumerate()
        .map(move |(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            std::str::from_utf8(line)
                .map(|s| (i + 1, s))
                .map_err(|_| DataError::new(path, Place::Line(i + 1), "the line is not UTF-8 text"))
        })
}
