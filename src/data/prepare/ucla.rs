use super::{Outcome, io_error};
use crate::atomic::write_atomic;
use crate::data::ucla::{CLASSES, UclaSplits, read_clips};
use crate::data::{ClipSet, DataError, InMemoryClips};
use indicatif::ProgressBar;
use std::io::Write;
use std::path::Path;

/// Checks every clip of an NW-UCLA source (directory or `all_sqe.tar.gz`) and writes to `out`:
/// `train.tsv` and `test.tsv`, the split lists in their order in CTR-GCN's `val_label` format
/// (`file_name<TAB>length<TAB>label`, label 1–10), and `summary.json` with the counts.
pub fn prepare_ucla(raw: &Path, out: &Path, progress: &ProgressBar) -> Result<Outcome, DataError> {
    std::fs::create_dir_all(out).map_err(|e| io_error(out, e))?;
    let mut outcome = Outcome::default();
    let mut clips = Vec::new();
    for result in read_clips(raw, || progress.inc(1))? {
        match result {
            Ok(clip) => clips.push(clip),
            Err(e) => outcome.failures.push(e),
        }
    }
    let splits = UclaSplits::from_clips(clips)?;
    for (file, set) in [("train.tsv", &splits.train), ("test.tsv", &splits.test)] {
        let path = out.join(file);
        write_atomic(&path, |w| write_list(w, set)).map_err(|e| io_error(&path, e))?;
        outcome.written.push(path);
    }
    let summary = serde_json::json!({
        "dataset": "NW-UCLA",
        "source": raw.display().to_string(),
        "split": "cross-view: train = views 1 and 2, test = view 3",
        "classes": CLASSES,
        "train": splits.train.len(),
        "test": splits.test.len(),
        "train_per_class": per_class(&splits.train),
        "test_per_class": per_class(&splits.test),
        "failed_files": outcome.failures.len(),
    });
    let path = out.join("summary.json");
    write_atomic(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, &summary)?;
        writeln!(w)
    })
    .map_err(|e| io_error(&path, e))?;
    outcome.written.push(path);
    Ok(outcome)
}

fn write_list(w: &mut impl Write, set: &InMemoryClips) -> std::io::Result<()> {
    writeln!(w, "file_name\tlength\tlabel")?;
    for i in 0..set.len() {
        writeln!(
            w,
            "{}\t{}\t{}",
            set.name(i),
            set.get(i).frames,
            set.label(i) + 1
        )?;
    }
    Ok(())
}

fn per_class(set: &InMemoryClips) -> Vec<usize> {
    let mut counts = vec![0; CLASSES];
    for &label in set.labels() {
        counts[label as usize] += 1;
    }
    counts
}
