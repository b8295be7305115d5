use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sfhead::data::prepare::{Outcome, PkuPaths, prepare_pku, prepare_ucla};
use std::path::PathBuf;
use std::process::ExitCode;

/// Skeleton-based action recognition on any GPU: CTR-GCN backbones and the SF-Head module.
#[derive(Parser)]
#[command(name = "sfhead", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters found and the one that would be used.
    Info,
    /// Check or convert a dataset's raw files.
    Prepare {
        #[command(subcommand)]
        dataset: PrepareDataset,
    },
}

#[derive(Subcommand)]
enum PrepareDataset {
    /// NW-UCLA: check every clip and write the split lists and a summary.
    Ucla(UclaArgs),
    /// PKU-MMD: cut the labelled instances into a CTR-GCN-layout .npz.
    Pku(PkuArgs),
}

#[derive(Args)]
struct UclaArgs {
    /// An `all_sqe` directory of JSON clips, or `all_sqe.tar.gz`.
    #[arg(long)]
    raw: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct PkuArgs {
    /// Directory of skeleton files `VIDEO.txt`.
    #[arg(long)]
    raw: PathBuf,
    /// Directory of label files `VIDEO.txt`.
    #[arg(long)]
    labels: PathBuf,
    /// Split file (`cross-subject.txt` or `cross-view.txt`).
    #[arg(long)]
    split: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Info => {
            sfhead::gpu::hello();
            Ok(ExitCode::SUCCESS)
        }
        Command::Prepare { dataset } => {
            let progress = |template: &str| {
                ProgressBar::no_length()
                    .with_style(ProgressStyle::with_template(template).expect("a valid template"))
            };
            let (outcome, progress) = match dataset {
                PrepareDataset::Ucla(a) => {
                    let progress = progress("{spinner} {pos} clips read {elapsed}");
                    (prepare_ucla(&a.raw, &a.out, &progress)?, progress)
                }
                PrepareDataset::Pku(a) => {
                    // Each video is read twice: counting, then writing.
                    let progress =
                        progress("{spinner} {pos}/{len} video passes {wide_bar} {elapsed}");
                    let paths = PkuPaths {
                        raw: a.raw,
                        labels: a.labels,
                        split: a.split,
                        out: a.out,
                    };
                    (prepare_pku(&paths, &progress)?, progress)
                }
            };
            progress.finish_and_clear();
            Ok(report(&outcome))
        }
    }
}

/// Lists what was written and every failure; the exit status is non-zero if anything failed.
fn report(outcome: &Outcome) -> ExitCode {
    for path in &outcome.written {
        println!("wrote {}", path.display());
    }
    if outcome.failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("{} input file(s) failed:", outcome.failures.len());
    for failure in &outcome.failures {
        eprintln!("  {failure}");
    }
    ExitCode::FAILURE
}
