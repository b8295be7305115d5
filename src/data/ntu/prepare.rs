//! `sfhead prepare ntu`: a folder of raw `.skeleton` files → one file per benchmark.
//!
//! Every file of the name list found in `--raw` goes through the three stages once, in
//! parallel; the results are spilled to a temporary file in `--out`, then each benchmark's
//! file is written from it in that benchmark's order. A file that fails is reported and left
//! out; the run goes on, and every output appears only once it is complete.

use super::npz::{NpzClip, write_ctrgcn_npz};
use super::{
    Edition, FRAME_WIDTH, JOINTS, PERSONS, Processed, SampleName, process_file, read_name_list,
    shipped_names,
};
use crate::data::io::Bytes;
use crate::data::packed::packed_path;
use crate::data::{DataError, PackedMeta, PackedWriter, Part, Place};
use anyhow::{Context, bail};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::collections::HashSet;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Files read and processed in parallel before their results are spilled in list order.
const BATCH: usize = 256;

/// Options of `sfhead prepare ntu`.
#[derive(Debug, Clone, clap::Args)]
pub struct NtuArgs {
    /// Folder holding the `.skeleton` files (e.g. `nturgb+d_skeletons/`).
    #[arg(long, value_name = "DIR")]
    pub raw: PathBuf,
    /// Folder for the output files; created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// NTU RGB+D 120: its name list, the X-Sub and X-Set benchmarks, 120 classes, and
    /// one-actor clips duplicated into the second person (CTR-GCN's NTU120 script).
    #[arg(long)]
    pub ntu120: bool,
    /// Sample names to process, one per line [default: CTR-GCN's list, shipped with sfhead].
    #[arg(long, value_name = "FILE")]
    pub names: Option<PathBuf>,
    /// Output format: our packed `.sfpk`, or CTR-GCN's `.npz` layout.
    #[arg(long, value_enum, default_value_t = Format::Packed)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Packed,
    Npz,
}

/// A file written by `prepare`.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub path: PathBuf,
    pub train: usize,
    pub test: usize,
}

/// What `prepare` did.
#[derive(Debug)]
pub struct Summary {
    pub edition: Edition,
    /// Names on the list.
    pub listed: usize,
    /// Names on the list with no file in `--raw`.
    pub missing: usize,
    /// `.skeleton` files in `--raw` that are not on the list (skipped).
    pub unlisted: usize,
    pub processed: usize,
    /// Frames with no body, dropped by stage 1, over all processed files.
    pub dropped_frames: usize,
    pub failures: Vec<DataError>,
    pub outputs: Vec<Output>,
    /// Time spent reading and processing the files.
    pub processing_seconds: f64,
}

impl Summary {
    pub fn files_per_second(&self) -> f64 {
        (self.processed + self.failures.len()) as f64 / self.processing_seconds.max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempted = self.processed + self.failures.len();
        writeln!(
            f,
            "{}: {attempted} of {} listed samples found ({} missing); {} other .skeleton files skipped",
            self.edition.title(),
            self.listed,
            self.missing,
            self.unlisted
        )?;
        writeln!(
            f,
            "processed {} files, {} failed, {} empty frames dropped, {:.1} files/s",
            self.processed,
            self.failures.len(),
            self.dropped_frames,
            self.files_per_second()
        )?;
        for output in &self.outputs {
            writeln!(
                f,
                "wrote {} ({} train, {} test)",
                output.path.display(),
                output.train,
                output.test
            )?;
        }
        if !self.failures.is_empty() {
            writeln!(f, "failed files:")?;
            for failure in &self.failures {
                writeln!(f, "  {failure}")?;
            }
        }
        Ok(())
    }
}

/// A processed clip in the spill file.
struct Spilled {
    name: SampleName,
    /// First frame in the spill.
    start: usize,
    frames: usize,
}

pub fn run(args: &NtuArgs, progress: &ProgressBar) -> anyhow::Result<Summary> {
    let edition = if args.ntu120 {
        Edition::Ntu120
    } else {
        Edition::Ntu60
    };
    let names = match &args.names {
        Some(path) => read_name_list(path, edition)?,
        None => shipped_names(edition),
    };
    let present = skeleton_files(&args.raw)?;
    let listed: HashSet<String> = names.iter().map(|n| format!("{n}.skeleton")).collect();
    let todo: Vec<SampleName> = names
        .iter()
        .copied()
        .filter(|n| present.contains(&format!("{n}.skeleton")))
        .collect();
    if todo.is_empty() {
        bail!(
            "none of the {} listed samples has a .skeleton file in {}",
            names.len(),
            args.raw.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let started = Instant::now();
    let spill_file = tempfile::Builder::new()
        .prefix(".prepare-ntu.")
        .suffix(".tmp")
        .tempfile_in(&args.out)
        .with_context(|| format!("cannot create a temporary file in {}", args.out.display()))?;
    let mut spill = BufWriter::new(spill_file.as_file());
    let mut spilled: Vec<Spilled> = Vec::with_capacity(todo.len());
    let mut failures = Vec::new();
    let mut dropped_frames = 0;
    let mut frames_written = 0;
    progress.set_length(todo.len() as u64);
    for batch in todo.chunks(BATCH) {
        let results: Vec<Result<Processed, DataError>> = batch
            .par_iter()
            .map(|name| {
                let path = args.raw.join(format!("{name}.skeleton"));
                let bytes = std::fs::read(&path)
                    .map_err(|e| DataError::new(&path, Place::File, format!("cannot read: {e}")))?;
                process_file(&bytes, &path, edition.single_actor())
            })
            .collect();
        for result in results {
            match result {
                Ok(done) => {
                    // The spill never leaves this machine: native byte order, read back in place.
                    spill
                        .write_all(bytemuck::cast_slice(&done.sequence.data))
                        .context("cannot write the temporary file")?;
                    spilled.push(Spilled {
                        name: done.name,
                        start: frames_written,
                        frames: done.sequence.frames,
                    });
                    frames_written += done.sequence.frames;
                    dropped_frames += done.dropped_frames;
                }
                Err(failure) => failures.push(failure),
            }
        }
        progress.inc(batch.len() as u64);
    }
    spill.flush().context("cannot write the temporary file")?;
    drop(spill);
    let processing_seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let outputs = if spilled.is_empty() {
        Vec::new()
    } else {
        let spill = Bytes::map(spill_file.path())?;
        let values: &[f32] = bytemuck::try_cast_slice(&spill)
            .map_err(|e| anyhow::anyhow!("cannot read back the temporary file: {e}"))?;
        write_outputs(args, edition, &spilled, values)?
    };
    Ok(Summary {
        edition,
        listed: names.len(),
        missing: names.len() - todo.len(),
        unlisted: present.iter().filter(|f| !listed.contains(*f)).count(),
        processed: spilled.len(),
        dropped_frames,
        failures,
        outputs,
        processing_seconds,
    })
}

/// The names of the `.skeleton` files in `dir`.
fn skeleton_files(dir: &Path) -> anyhow::Result<HashSet<String>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut names = HashSet::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        match name.to_str() {
            Some(name) if name.ends_with(".skeleton") => {
                names.insert(name.to_string());
            }
            _ => {}
        }
    }
    Ok(names)
}

fn write_outputs(
    args: &NtuArgs,
    edition: Edition,
    spilled: &[Spilled],
    spill: &[f32],
) -> anyhow::Result<Vec<Output>> {
    let values = |clip: &Spilled| &spill[clip.start * FRAME_WIDTH..][..clip.frames * FRAME_WIDTH];
    let names: Vec<SampleName> = spilled.iter().map(|s| s.name).collect();
    let name_strings: Vec<String> = names.iter().map(SampleName::to_string).collect();
    let mut outputs = Vec::new();
    for benchmark in edition.benchmarks() {
        let split = benchmark.split(&names);
        let path = match args.format {
            Format::Packed => {
                let path = packed_path(&args.out, benchmark.stem());
                let meta = PackedMeta {
                    benchmark: benchmark.title().to_string(),
                    persons: PERSONS,
                    joints: JOINTS,
                    classes: edition.classes(),
                };
                let mut writer = PackedWriter::create(&path, meta)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                for (part, side) in [(Part::Train, &split.train), (Part::Test, &split.test)] {
                    for &i in side {
                        writer
                            .push(
                                part,
                                &name_strings[i],
                                names[i].label(),
                                values(&spilled[i]),
                            )
                            .with_context(|| format!("cannot write {}", path.display()))?;
                    }
                }
                writer
                    .finish()
                    .with_context(|| format!("cannot write {}", path.display()))?;
                path
            }
            Format::Npz => {
                let path = args.out.join(benchmark.npz_file_name());
                let clips = |side: &[usize]| -> Vec<NpzClip> {
                    side.iter()
                        .map(|&i| NpzClip {
                            name: &name_strings[i],
                            label: names[i].label(),
                            values: values(&spilled[i]),
                        })
                        .collect()
                };
                let padded = spilled.iter().map(|s| s.frames).max().unwrap_or(0);
                write_ctrgcn_npz(
                    &path,
                    edition.classes(),
                    padded,
                    &clips(&split.train),
                    &clips(&split.test),
                )
                .with_context(|| format!("cannot write {}", path.display()))?;
                path
            }
        };
        outputs.push(Output {
            path,
            train: split.train.len(),
            test: split.test.len(),
        });
    }
    Ok(outputs)
}
