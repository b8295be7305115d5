use std::sync::Arc;

use clap::{Parser, Subcommand};
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
    }
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
