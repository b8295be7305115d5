use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Info => {
            sfhead::gpu::hello();
            Ok(())
        }
    }
}
