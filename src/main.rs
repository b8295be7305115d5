use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info => info(cli.adapter.as_deref()),
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
