use super::clip::{UclaClip, parse_clip};
use crate::data::{DataError, Place};
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Reads every `*.json` clip of an `all_sqe` directory (or of its parent, holding `all_sqe/`) or of
/// an `all_sqe.tar.gz` archive, in name order (the archive's own order for a tar.gz).
///
/// The outer error is for a source that cannot be read at all; each clip has its own result, so
/// that a caller can go on past a bad file. `on_clip` is told about each clip as it is read.
pub fn read_clips(
    source: &Path,
    mut on_clip: impl FnMut(),
) -> Result<Vec<Result<UclaClip, DataError>>, DataError> {
    let mut clips = Vec::new();
    let mut take = |path: &Path, bytes: Result<Vec<u8>, String>| {
        on_clip();
        clips.push(match bytes {
            Ok(bytes) => parse_clip(path, &bytes),
            Err(message) => Err(DataError::new(path, Place::File, message)),
        });
    };
    if source.is_dir() {
        for path in json_files(source)? {
            take(&path, std::fs::read(&path).map_err(|e| e.to_string()));
        }
    } else {
        read_archive(source, &mut take)?;
    }
    Ok(clips)
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let nested = dir.join("all_sqe");
    let dir = if nested.is_dir() { &nested } else { dir };
    let unreadable = |e: std::io::Error| DataError::new(dir, Place::File, e.to_string());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_archive(
    archive_path: &Path,
    take: &mut impl FnMut(&Path, Result<Vec<u8>, String>),
) -> Result<(), DataError> {
    let broken = |e: std::io::Error| {
        DataError::new(
            archive_path,
            Place::File,
            format!("cannot read the tar.gz archive: {e}"),
        )
    };
    let file = File::open(archive_path).map_err(broken)?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry.path().map_err(broken)?.into_owned();
        if member.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let mut bytes = Vec::new();
        let read = entry.read_to_end(&mut bytes).map(|_| bytes);
        take(&archive_path.join(member), read.map_err(|e| e.to_string()));
    }
    Ok(())
}
