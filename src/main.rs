use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sfhead::data::ntu::prepare::{self, NtuArgs};
use sfhead::data::prepare::{Outcome, PkuPaths, prepare_pku, prepare_ucla};
use sfhead::gpu::Gpu;

/// Skeleton-based action recognition on any GPU: CTR-GCN backbones and the SF-Head module.
#[derive(Parser)]
#[command(name = "sfhead", version, about)]
struct Cli {
    /// Use the adapter whose name or backend contains this text.
    #[arg(long, global = true, env = sfhead::gpu::ADAPTER_ENV)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters found, their limits, and the one that would be used.
    Info,
    /// Measure kernels on the chosen adapter.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check or convert a dataset's raw files into training files.
    Prepare {
        #[command(subcommand)]
        dataset: PrepareDataset,
    },
}

#[derive(Subcommand)]
enum PrepareDataset {
    /// NTU RGB+D 60 or 120 `.skeleton` files, through CTR-GCN's preprocessing, one file per
    /// benchmark.
    Ntu(NtuArgs),
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

#[derive(Subcommand)]
enum BenchCommand {
    /// GFLOP/s of the GEMM at CTR-GCN's 1×1-convolution shapes (forward, data and weight
    /// gradient layouts).
    Kernels {
        /// Person-streams per batch (N·M; 128 is CTR-GCN's 64 samples × 2 persons).
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Timed repetitions per kernel, after two warm-up runs.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Print one JSON object per kernel instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let adapter = cli.adapter.as_deref();
    match cli.command {
        Command::Info => info(adapter).map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchCommand::Kernels {
            batch,
            repeats,
            json,
        }) => bench_kernels(adapter, batch, repeats, json).map(|()| ExitCode::SUCCESS),
        Command::Prepare { dataset } => prepare_dataset(dataset),
    }
}

/// A progress display on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress(template: &str) -> ProgressBar {
    ProgressBar::no_length()
        .with_style(ProgressStyle::with_template(template).expect("a valid progress template"))
}

/// Runs `prepare`: it goes on past bad files, lists every failure at the end, and exits
/// non-zero if any file failed.
fn prepare_dataset(dataset: PrepareDataset) -> anyhow::Result<ExitCode> {
    let outcome = match dataset {
        PrepareDataset::Ntu(args) => {
            let bar = progress("{bar:40} {pos}/{len} files {per_sec} eta {eta}");
            let summary = prepare::run(&args, &bar)?;
            print!("{summary}");
            return Ok(if summary.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        PrepareDataset::Ucla(a) => {
            let bar = progress("{spinner} {pos} clips read {elapsed}");
            let outcome = prepare_ucla(&a.raw, &a.out, &bar)?;
            bar.finish_and_clear();
            outcome
        }
        PrepareDataset::Pku(a) => {
            // Each video is read twice: counting, then writing.
            let bar = progress("{spinner} {pos}/{len} video passes {wide_bar} {elapsed}");
            let paths = PkuPaths {
                raw: a.raw,
                labels: a.labels,
                split: a.split,
                out: a.out,
            };
            let outcome = prepare_pku(&paths, &bar)?;
            bar.finish_and_clear();
            outcome
        }
    };
    Ok(report(&outcome))
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

fn info(selector: Option<&str>) -> anyhow::Result<()> {
    let (reports, chosen) = sfhead::gpu::describe_adapters(selector);
    if reports.is_empty() {
        anyhow::bail!(sfhead::gpu::GpuError::NoAdapter);
    }
    for (i, report) in reports.iter().enumerate() {
        let mark = if Some(i) == chosen { "*" } else { " " };
        println!("{mark} [{i}] {}", report.summary());
        for line in report.limit_lines().lines() {
            println!("      {line}");
        }
    }
    match chosen {
        Some(i) => println!("using [{i}] {}", reports[i].info.name),
        None => anyhow::bail!("no adapter matches `{}`", selector.unwrap_or_default()),
    }
    Ok(())
}

fn bench_kernels(
    selector: Option<&str>,
    batch: usize,
    repeats: usize,
    json: bool,
) -> anyhow::Result<()> {
    let gpu = Arc::new(Gpu::new(selector)?);
    sfhead::bench::report_kernels(&gpu, batch, repeats, json, &mut std::io::stdout())
}
