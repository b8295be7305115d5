use super::npz::{Element, NpzWriter, write_f32, write_f64};
use super::{Outcome, io_error};
use crate::atomic::write_atomic;
use crate::data::pku::{CLASSES, Cut, cut_instances, parse_labels, parse_skeleton, parse_split};
use crate::data::{DataError, Place};
use indicatif::ProgressBar;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Instances are cut or zero-padded to this many frames, as MAMP's converter does.
pub const FRAMES: usize = 300;
const ROW: usize = 150;

/// The inputs and the output folder of `prepare pku`.
#[derive(Debug, Clone)]
pub struct PkuPaths {
    /// Skeleton files `VIDEO.txt`.
    pub raw: PathBuf,
    /// Label files `VIDEO.txt`.
    pub labels: PathBuf,
    /// `cross-subject.txt` or `cross-view.txt`.
    pub split: PathBuf,
    pub out: PathBuf,
}

/// Cuts every labelled instance of the split's videos and writes, atomically,
/// `PKUv1_<split>.npz` in CTR-GCN's layout (`x_train` (N, 300, 150) f32, `y_train` (N, 51) f64
/// one-hot, the same for test) and `PKUv1_<split>.json` (counts and the instance names in row
/// order). Train = the split's training videos; test = its validation videos, then any other
/// video of `raw` (everything not on the training list is test). A video whose files are missing
/// or bad is left out and reported.
///
/// Videos are read twice (counting, then writing), so that memory holds one video at a time.
pub fn prepare_pku(paths: &PkuPaths, progress: &ProgressBar) -> Result<Outcome, DataError> {
    let split_bytes = std::fs::read(&paths.split).map_err(|e| io_error(&paths.split, e))?;
    let lists = parse_split(&paths.split, &split_bytes)?;
    let train = dedup(lists.train, &HashSet::new());
    let listed: HashSet<String> = train.iter().chain(&lists.validation).cloned().collect();
    let mut test = dedup(lists.validation, &train.iter().cloned().collect());
    test.extend(unlisted_videos(&paths.raw, &listed)?);
    std::fs::create_dir_all(&paths.out).map_err(|e| io_error(&paths.out, e))?;
    progress.set_length(2 * (train.len() + test.len()) as u64);

    let mut outcome = Outcome::default();
    let mut skipped = Vec::new();
    let mut count = |videos: Vec<String>| -> (Vec<String>, Vec<String>) {
        let (mut good, mut names) = (Vec::new(), Vec::new());
        for video in videos {
            progress.inc(1);
            match cut_video(paths, &video) {
                Ok(cut) => {
                    names.extend(cut.instances.into_iter().map(|i| i.name));
                    skipped.extend(cut.skipped);
                    good.push(video);
                }
                Err(e) => outcome.failures.push(e),
            }
        }
        (good, names)
    };
    let (train, train_names) = count(train);
    let (test, test_names) = count(test);

    let stem = output_stem(&paths.split);
    let npz_path = paths.out.join(format!("{stem}.npz"));
    write_atomic(&npz_path, |file| {
        let mut npz = NpzWriter::new(file);
        for (part, videos, n) in [
            ("train", &train, train_names.len()),
            ("test", &test, test_names.len()),
        ] {
            let w = npz.start(
                &format!("x_{part}"),
                Element::F32,
                &[n as u64, FRAMES as u64, ROW as u64],
            )?;
            let mut labels = Vec::with_capacity(n);
            for video in videos {
                progress.inc(1);
                // Read and checked in the first pass; a failure now means the file changed.
                let cut = cut_video(paths, video).map_err(std::io::Error::other)?;
                for instance in cut.instances {
                    let kept = instance.clip.frames.min(FRAMES) * ROW;
                    write_f32(w, &instance.clip.data[..kept])?;
                    write_f32(w, &vec![0.0; FRAMES * ROW - kept])?;
                    labels.push(instance.label);
                }
            }
            if labels.len() != n {
                return Err(std::io::Error::other(format!(
                    "the {part} videos changed while being read"
                )));
            }
            let w = npz.start(
                &format!("y_{part}"),
                Element::F64,
                &[n as u64, CLASSES as u64],
            )?;
            for label in labels {
                let mut one_hot = [0.0; CLASSES];
                one_hot[label as usize] = 1.0;
                write_f64(w, &one_hot)?;
            }
        }
        npz.finish().map(drop)
    })
    .map_err(|e| io_error(&npz_path, e))?;
    outcome.written.push(npz_path);

    let summary = serde_json::json!({
        "dataset": "PKU-MMD",
        "split_file": paths.split.display().to_string(),
        "frames": FRAMES,
        "classes": CLASSES,
        "translation": "subtract person 1's joint 2 in its first present frame (NTU seq_translation)",
        "train": { "videos": train, "instances": train_names.len(), "names": train_names },
        "test": { "videos": test, "instances": test_names.len(), "names": test_names },
        "skipped_all_zero_instances": skipped,
        "failed_videos": outcome.failures.len(),
    });
    let json_path = paths.out.join(format!("{stem}.json"));
    write_atomic(&json_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &summary)?;
        writeln!(w)
    })
    .map_err(|e| io_error(&json_path, e))?;
    outcome.written.push(json_path);
    Ok(outcome)
}

/// Reads one video's skeleton and label files and cuts its instances.
fn cut_video(paths: &PkuPaths, video: &str) -> Result<Cut, DataError> {
    let read = |dir: &Path, what: &str| {
        let path = dir.join(format!("{video}.txt"));
        std::fs::read(&path)
            .map_err(|e| {
                DataError::new(
                    &path,
                    Place::File,
                    format!("cannot read the {what} file: {e}"),
                )
            })
            .map(|bytes| (path, bytes))
    };
    let (skeleton_path, skeleton) = read(&paths.raw, "skeleton")?;
    let skeleton = parse_skeleton(&skeleton_path, &skeleton)?;
    let (labels_path, labels) = read(&paths.labels, "label")?;
    let rows = parse_labels(&labels_path, &labels)?;
    Ok(cut_instances(video, &skeleton, &rows))
}

fn dedup(names: Vec<String>, excluded: &HashSet<String>) -> Vec<String> {
    let mut seen = excluded.clone();
    names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

/// Skeleton files of `raw` on neither list, in name order.
fn unlisted_videos(raw: &Path, listed: &HashSet<String>) -> Result<Vec<String>, DataError> {
    let entries = std::fs::read_dir(raw).map_err(|e| io_error(raw, e))?;
    let mut videos = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error(raw, e))?.path();
        let stem = path.file_stem().and_then(|s| s.to_str());
        if let (Some(stem), Some("txt")) = (stem, path.extension().and_then(|e| e.to_str())) {
            if !listed.contains(stem) {
                videos.push(stem.to_string());
            }
        }
    }
    videos.sort();
    Ok(videos)
}

/// `PKUv1_XSub` / `PKUv1_XView` for the official split files (MAMP's names), else
/// `PKUv1_<file stem>`.
fn output_stem(split: &Path) -> String {
    let stem = split
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("split");
    match stem {
        "cross-subject" => "PKUv1_XSub".into(),
        "cross-view" => "PKUv1_XView".into(),
        other => format!("PKUv1_{other}"),
    }
}
