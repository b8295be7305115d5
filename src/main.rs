use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sfhead::data::ntu::prepare::{self, NtuArgs};
use sfhead::data::prepare::{Outcome, PkuPaths, prepare_pku, prepare_ucla};
use sfhead::gpu::Gpu;
use sfhead::model::ctrgcn::{
    CtrGcn, CtrGcnConfig, Dataset, Placement, SfHeadOptions, parse_blocks,
};

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
    /// List the GPU adapters found, their limits, and the one that would be used; or describe a
    /// model.
    Info {
        #[command(subcommand)]
        what: Option<InfoCommand>,
    },
    /// Measure kernels on the chosen adapter.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Train a model: by default CTR-GCN + SF-Head on the bundled NW-UCLA set with the SF-Head
    /// paper's recipe.
    Train {
        /// A named recipe: sfhead-ucla (the default), sfhead-ntu60, sfhead-ntu120,
        /// sfhead-pku-xsub, sfhead-pku-xview, the plain ctrgcn-* ones, or smoke (the whole loop in
        /// about a minute on a CPU driver).
        #[arg(long, conflicts_with_all = ["config", "resume"])]
        preset: Option<String>,
        /// A TOML file with every key of a configuration (the `config.toml` of a work directory
        /// is one).
        #[arg(long, conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// Override one key, e.g. `--set epochs=10 --set lr_steps=[5,8]`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Where the configuration, the log, the checkpoints and the best scores are written
        /// (default: work_dirs/<preset>).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Continue the run in this work directory from its last checkpoint.
        #[arg(long, value_name = "WORK_DIR")]
        resume: Option<PathBuf>,
    },
    /// Inspect a model's numerics for comparison with an outside reference.
    #[command(subcommand)]
    Debug(DebugCommand),
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

/// The networks sfhead builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ModelKind {
    Ctrgcn,
}

#[derive(Args)]
struct ModelArgs {
    #[arg(long, value_enum, default_value = "ctrgcn")]
    model: ModelKind,
    /// The benchmark the model is configured for (joints, persons, classes).
    #[arg(long, value_enum, default_value = "ntu60")]
    dataset: Dataset,
    /// Attach SF-Head as a training-only tap.
    #[arg(long)]
    sfhead: bool,
    /// Attach SF-Head in-line: the TCN consumes its output.
    #[arg(long, conflicts_with = "sfhead")]
    sfhead_inline: bool,
    /// The blocks SF-Head attaches to: all, frhead (1, 5, 8, 10) or a list such as 1,5,8,10.
    #[arg(long, default_value = "all")]
    sfhead_blocks: String,
}

impl ModelArgs {
    fn config(&self) -> anyhow::Result<CtrGcnConfig> {
        let ModelKind::Ctrgcn = self.model;
        let config = self.dataset.config();
        if !(self.sfhead || self.sfhead_inline) {
            return Ok(config);
        }
        let options = SfHeadOptions {
            placement: if self.sfhead_inline {
                Placement::Inline
            } else {
                Placement::Tap
            },
            blocks: parse_blocks(&self.sfhead_blocks).map_err(anyhow::Error::msg)?,
            ..SfHeadOptions::default()
        };
        options.check().map_err(anyhow::Error::msg)?;
        Ok(config.with_sf_head(options))
    }
}

#[derive(Subcommand)]
enum InfoCommand {
    /// Parameter counts of a model, in total and per block.
    Model(ModelArgs),
}

#[derive(Subcommand)]
enum DebugCommand {
    /// One training-mode forward and backward on given weights and batch: writes `logits`,
    /// `loss` and `grad.<key>` for every parameter (PyTorch state-dict keys).
    Grads {
        #[command(flatten)]
        model: ModelArgs,
        /// Weights by PyTorch key (safetensors); every parameter must be present.
        #[arg(long)]
        weights: PathBuf,
        /// The batch (safetensors): `x` (N, 3, T, V, M) f32 and `y` (N) integer labels.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the results (safetensors).
        #[arg(long)]
        out: PathBuf,
    },
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
    /// Milliseconds per training step (forward, loss, backward, SGD), samples/s and the
    /// planner's memory.
    Step {
        #[command(flatten)]
        model: ModelArgs,
        /// Samples per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Frames per sample.
        #[arg(long, default_value_t = 64)]
        frames: usize,
        /// Timed steps, after two warm-up steps.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Also run one step dispatch by dispatch and list the time per kernel.
        #[arg(long)]
        profile: bool,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let adapter = cli.adapter.as_deref();
    match cli.command {
        Command::Info { what: None } => info(adapter).map(|()| ExitCode::SUCCESS),
        Command::Info {
            what: Some(InfoCommand::Model(args)),
        } => {
            info_model(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Debug(DebugCommand::Grads {
            model,
            weights,
            input,
            out,
        }) => {
            let gpu = Arc::new(Gpu::new(adapter)?);
            let config = model.config()?;
            let report =
                sfhead::train::debug_grads(&gpu, model.dataset, config, &weights, &input, &out)?;
            println!(
                "loss {}; wrote logits, loss and {} gradients to {}",
                report.loss,
                report.gradients,
                out.display()
            );
            if !report.unexpected.is_empty() {
                println!(
                    "ignored {} keys the model does not have, first `{}`",
                    report.unexpected.len(),
                    report.unexpected[0]
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Step {
            model,
            batch,
            frames,
            steps,
            profile,
            json,
        }) => {
            let gpu = Arc::new(Gpu::new(adapter)?);
            let config = model.config()?;
            let t = sfhead::bench::time_step(
                &gpu,
                model.dataset,
                config,
                batch,
                frames,
                steps,
                profile,
            )?;
            if json {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                let mib = |b: u64| b as f64 / f64::from(1 << 20);
                println!("{}", t.adapter);
                println!(
                    "CTR-GCN {} (SF-Head {}) batch {} × {} frames: {:.1} ms per step, {:.1} samples/s, {} dispatches",
                    t.dataset,
                    t.sfhead,
                    t.batch,
                    t.frames,
                    t.milliseconds_per_step,
                    t.samples_per_second,
                    t.dispatches
                );
                println!(
                    "evaluation: {:.1} ms per batch, {} dispatches",
                    t.eval_milliseconds_per_step, t.eval_dispatches
                );
                println!(
                    "memory: activations {:.1} MiB (unshared {:.1} MiB), parameters and state {:.1} MiB, scratch {:.1} MiB",
                    mib(t.activation_bytes),
                    mib(t.unshared_activation_bytes),
                    mib(t.persistent_bytes),
                    mib(t.scratch_bytes)
                );
                for (kernel, ms) in &t.kernels {
                    println!("  {ms:>10.2} ms  {kernel}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Kernels {
            batch,
            repeats,
            json,
        }) => bench_kernels(adapter, batch, repeats, json).map(|()| ExitCode::SUCCESS),
        Command::Prepare { dataset } => prepare_dataset(dataset),
        Command::Train {
            preset,
            config,
            set,
            work_dir,
            resume,
        } => {
            use sfhead::train::{TrainConfig, saved_config, train};
            let preset = preset.as_deref().unwrap_or(sfhead::train::DEFAULT_PRESET);
            let default_dir = || PathBuf::from("work_dirs").join(preset);
            let (base, work_dir) = match (&resume, &config) {
                (Some(dir), _) => (saved_config(dir)?, dir.clone()),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    let config = TrainConfig::from_toml(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    (config, work_dir.unwrap_or_else(default_dir))
                }
                (None, None) => (
                    TrainConfig::preset(preset)?,
                    work_dir.unwrap_or_else(default_dir),
                ),
            };
            let config = base.with_overrides(&set)?;
            let gpu = Arc::new(Gpu::new(adapter)?);
            eprintln!("{}", gpu.report().summary());
            let summary = train(&gpu, &config, &work_dir, resume.is_some(), |log| {
                let terms: Vec<String> = log
                    .loss_terms
                    .iter()
                    .map(|(name, value)| format!("{name} {value:.4}"))
                    .collect();
                println!(
                    "epoch {:>3}/{}  lr {:.5}  loss {:.4} ({})  top-1 {:.2} %  top-5 {:.2} %  {:.1} s",
                    log.epoch + 1,
                    config.epochs,
                    log.lr,
                    log.train_loss,
                    terms.join(", "),
                    100.0 * log.top1,
                    100.0 * log.top5,
                    log.seconds
                );
            })?;
            println!(
                "best top-1 {:.2} % at epoch {}; checkpoints and scores in {}",
                100.0 * summary.best_top1,
                summary.best_epoch + 1,
                work_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
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

fn info_model(args: &ModelArgs) -> anyhow::Result<()> {
    use sfhead::model::summary::{buffer_values, parameter_counts, sf_head_counts};
    let mut g = sfhead::engine::Graph::new();
    let config = args.config()?;
    let (joints, persons, classes) = (config.joints(), config.persons, config.classes);
    let heads = config.sf_head.clone();
    CtrGcn::new(&mut g, config, 0);
    let counts = parameter_counts(&g);
    let total: usize = counts.iter().map(|c| c.parameters).sum();
    let with = match &heads {
        None => String::new(),
        Some(o) if o.placement == Placement::Tap => " + SF-Head (tap)".into(),
        Some(_) => " + SF-Head (in-line)".into(),
    };
    println!(
        "CTR-GCN{with} for {} (V = {joints}, M = {persons}, K = {classes}): {total} parameters, {} buffer values",
        format!("{:?}", args.dataset).to_lowercase(),
        buffer_values(&g)
    );
    for part in counts.iter().filter(|p| p.name != "sf_heads") {
        let detail: Vec<String> = part.parts.iter().map(|(n, c)| format!("{n} {c}")).collect();
        println!(
            "  {:<8} {:>9}   {}",
            part.name,
            part.parameters,
            detail.join(", ")
        );
    }
    if let Some(options) = &heads {
        let rows = sf_head_counts(&g, &options.blocks, options.groups);
        let sum: usize = rows.iter().map(|r| r.parameters).sum();
        println!("  SF-Head: {} heads, {sum} parameters", rows.len());
        for r in &rows {
            println!(
                "    {:<12} on l{:<2} C = {:<3} q = {}: {:>4} parameters ({} used by the forward)",
                r.prefix, r.block, r.channels, r.chunk, r.parameters, r.used
            );
        }
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
