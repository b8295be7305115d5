use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sfhead::data::ntu::prepare::{self, NtuArgs};

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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Info => {
            sfhead::gpu::hello();
            Ok(())
        }
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
