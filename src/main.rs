use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sfhead::data::ntu::prepare::{self, NtuArgs};
use sfhead::data::prepare::{Outcome, PkuPaths, prepare_pku, prepare_ucla};
use sfhead::gpu::Gpu;
use sfhead::model::ctrgcn::{
    Backbone, CtrGcnConfig, Dataset, Placement, SfHeadOptions, parse_blocks,
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
        /// sfhead-pku-xsub, sfhead-pku-xview, the plain ctrgcn-* ones, the other backbones'
        /// stgcn-*, aagcn-*, agcn-*, infogcn-*, blockgcn-*, hdgcn-*, protogcn-* and
        /// sfhead-<model>-*, or smoke (the whole loop in about a minute on a CPU driver).
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
    /// Evaluate a checkpoint: top-1, top-5 and per-class accuracy, with per-sample scores saved
    /// by sample name (safetensors, and the pickle CTR-GCN's ensemble.py reads).
    Eval(EvalArgs),
    /// Fuse per-sample scores of several streams, joined by sample name (docs/ensemble.md).
    Ensemble(EnsembleArgs),
    /// Pictures and tables of one run, or of two side by side: curves, confusion matrix,
    /// per-class accuracy, the paper's ambiguous groups (NTU), t-SNE of the features.
    Report {
        /// A work directory of `sfhead train`; with a second one, the two are compared
        /// (e.g. the backbone, then the backbone + SF-Head).
        #[arg(required = true, num_args = 1..=2)]
        runs: Vec<PathBuf>,
        /// Where the files go (default: `report/` in the first work directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a checkpoint's model as a plain PyTorch state dict (safetensors) that the official
    /// PyTorch model of its backbone loads with `strict=True`.
    Export {
        checkpoint: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Read a PyTorch state dict (safetensors) into an sfhead checkpoint for `eval` or
    /// fine-tuning; the model is the one a preset or configuration builds.
    Import {
        state_dict: PathBuf,
        #[arg(long, conflicts_with = "config", required_unless_present = "config")]
        preset: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one configuration key, as in `train`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        out: PathBuf,
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

#[derive(Args)]
struct EvalArgs {
    /// A checkpoint of `sfhead train` (`best.safetensors`, `last.safetensors`) or of
    /// `sfhead import`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Read the data from here instead of the path in the checkpoint's config.
    #[arg(long)]
    data: Option<String>,
    /// The samples to score: the test split, or the part of the training set the run held out.
    #[arg(long, value_enum, default_value = "test")]
    part: sfhead::eval::EvalPart,
    /// Samples per batch (default: the config's test batch size).
    #[arg(long)]
    batch: Option<usize>,
    /// Score only the first this many samples (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Where the scores and accuracies go (default: `eval/` beside the checkpoint, or
    /// `eval-holdout/` for the held-out part).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct EnsembleArgs {
    /// Score files (.safetensors, .pkl) or work directories, one per stream.
    #[arg(required = true)]
    scores: Vec<PathBuf>,
    /// One weight per stream, e.g. 0.6,0.6,0.4,0.4.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["preset", "search"])]
    weights: Option<Vec<f32>>,
    /// Named weights: ctrgcn4 (joint, bone, joint motion, bone motion) or infogcn6.
    #[arg(long, value_enum, conflicts_with = "search")]
    preset: Option<sfhead::ensemble::Preset>,
    /// Fit the weights on these held-out score files or work directories, one per input, in
    /// order (never on the test scores).
    #[arg(long, num_args = 1..)]
    search: Option<Vec<PathBuf>>,
    /// Write the fused scores here (safetensors, and a .pkl beside it).
    #[arg(long)]
    out: Option<PathBuf>,
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
    /// A pyskl annotation pickle (`ntu120_3danno.pkl`): two of its splits into a packed file,
    /// through PreNormalize3D.
    Pyskl(PysklArgs),
}

#[derive(Args)]
struct PysklArgs {
    /// The annotation pickle.
    #[arg(long)]
    pickle: PathBuf,
    /// The split of the training side.
    #[arg(long, default_value = "xsub_train")]
    train: String,
    /// The split of the test side.
    #[arg(long, default_value = "xsub_val")]
    test: String,
    /// The packed file to write (`.sfpk`).
    #[arg(long)]
    out: PathBuf,
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

#[derive(Args)]
struct ModelArgs {
    /// The backbone.
    #[arg(long, value_enum, default_value = "ctrgcn")]
    model: Backbone,
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
        let config = self.dataset.config().with_backbone(self.model);
        if !(self.sfhead || self.sfhead_inline) {
            return Ok(config);
        }
        let options = SfHeadOptions {
            placement: if self.sfhead_inline {
                Placement::Inline
            } else {
                Placement::Tap
            },
            blocks: parse_blocks(&self.sfhead_blocks, self.model.block_widths().len())
                .map_err(anyhow::Error::msg)?,
            ..SfHeadOptions::default()
        };
        options.check(self.model).map_err(anyhow::Error::msg)?;
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
                    "{} {} (SF-Head {}) batch {} × {} frames: {:.1} ms per step, {:.1} samples/s, {} dispatches",
                    t.model,
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
                for k in &t.kernels {
                    println!(
                        "  {:>10.2} ms  {:>5} dispatches  {}",
                        k.milliseconds, k.dispatches, k.kernel
                    );
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
        Command::Ensemble(args) => {
            use sfhead::ensemble::Weights;
            let weights = match (args.weights, args.preset, args.search) {
                (Some(w), _, _) => Weights::Explicit(w),
                (_, Some(p), _) => Weights::Preset(p),
                (_, _, Some(holdout)) => Weights::Search { holdout },
                _ => Weights::Equal,
            };
            print!(
                "{}",
                sfhead::ensemble::run(&args.scores, weights, args.out.as_deref())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { runs, out } => {
            let out = out.unwrap_or_else(|| runs[0].join("report"));
            print!("{}", sfhead::report::report(&runs, &out)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { checkpoint, out } => {
            let report = sfhead::interop::export(&checkpoint, &out)?;
            println!("wrote {}: {report}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            state_dict,
            preset,
            config,
            set,
            out,
        } => {
            let source = sfhead::train::ConfigSource {
                preset: preset.as_deref(),
                config: config.as_deref(),
                resume: None,
                work_dir: None,
            };
            let (config, _) = source.resolve(&set)?;
            let report = sfhead::interop::import(&state_dict, &config, &out)?;
            println!("wrote {}: {report}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            let gpu = Arc::new(Gpu::new(adapter)?);
            eprintln!("{}", gpu.report().summary());
            let request = sfhead::eval::EvalRequest {
                checkpoint: args.checkpoint,
                data: args.data,
                part: args.part,
                batch_size: args.batch,
                limit: args.limit,
            };
            let out = args.out.unwrap_or_else(|| {
                sfhead::eval::default_out_dir(&request.checkpoint, request.part)
            });
            let report = sfhead::eval::evaluate(&gpu, &request)?;
            print!("{report}");
            for file in sfhead::eval::write_outputs(&report, &out)? {
                println!("wrote {}", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            preset,
            config,
            set,
            work_dir,
            resume,
        } => {
            let source = sfhead::train::ConfigSource {
                preset: preset.as_deref(),
                config: config.as_deref(),
                resume: resume.as_deref(),
                work_dir,
            };
            let (config, work_dir) = source.resolve(&set)?;
            let gpu = Arc::new(Gpu::new(adapter)?);
            eprintln!("{}", gpu.report().summary());
            let summary =
                sfhead::train::train(&gpu, &config, &work_dir, resume.is_some(), |log| {
                    println!("{}", log.line(config.epochs));
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
        PrepareDataset::Pyskl(a) => {
            let done = sfhead::data::pyskl::prepare_pyskl(&a.pickle, &a.train, &a.test, &a.out)?;
            println!(
                "wrote {} ({} train, {} test, {} classes)",
                done.path.display(),
                done.train,
                done.test,
                done.classes
            );
            return Ok(ExitCode::SUCCESS);
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
    let name = format!("{:?}", args.dataset).to_lowercase();
    print!(
        "{}",
        sfhead::model::summary::describe(args.config()?, &name)
    );
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
