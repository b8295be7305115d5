use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sfhead::data::ntu::prepare::{self, NtuArgs};
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
    /// Turn a raw dataset into training files, one per benchmark.
    Prepare {
        #[command(subcommand)]
        dataset: PrepareDataset,
    },
}

#[derive(Subcommand)]
enum PrepareDataset {
    /// NTU RGB+D 60 or 120 `.skeleton` files, through CTR-GCN's preprocessing.
    Ntu(NtuArgs),
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let adapter = cli.adapter.as_deref();
    match cli.command {
        Command::Info => info(adapter),
        Command::Bench(BenchCommand::Kernels {
            batch,
            repeats,
            json,
        }) => bench_kernels(adapter, batch, repeats, json),
        Command::Prepare {
            dataset: PrepareDataset::Ntu(args),
        } => {
            let summary = prepare::run(&args, &progress_bar())?;
            print!("{summary}");
            if summary.failures.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("{} files failed", summary.failures.len())
            }
        }
    }
}

/// A bar on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress_bar() -> ProgressBar {
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {per_sec} eta {eta}")
            .expect("a valid progress template"),
    )
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
