//! The `clearair train`, `clearair eval` and `clearair degrade` command lines: clap argument
//! structs and blocking entry functions for the `clearair` binary to wire in.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `clearair train …`
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// What to train.
    #[command(subcommand)]
    pub command: TrainCommand,
}

/// The `train` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum TrainCommand {
    /// Train the degradation encoder (F_c, F_d, kind probabilities) on synthetic degradations.
    Encoder(EncoderArgs),
    /// Train the ClearAIR restorer with the priors of the embedded backends.
    Restorer(RestorerArgs),
    /// Time forward passes and training steps of the restorers on a device.
    Benchmark(BenchmarkArgs),
}

/// Settings shared by both trainings.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Training photos (the fixed split's `train` side).
    #[arg(long, default_value = "data/photos/train")]
    pub train_photos: PathBuf,
    /// Held-out photos, for the figures written into the manifest at the end.
    #[arg(long, default_value = "data/photos/eval")]
    pub eval_photos: PathBuf,
    /// Optimiser steps.
    #[arg(long)]
    pub iterations: Option<u64>,
    /// Stop cleanly after this many seconds of training (in total, across resumes) and write
    /// everything; the cosine schedule then decays over the budget.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// End this invocation after this step, keeping the schedule of `--iterations` (continue
    /// later with `--resume`).
    #[arg(long)]
    pub stop_at: Option<u64>,
    /// Seed of initialisation, data and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch CPU threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Data worker threads (degradation synthesis and CPU priors); default: available cores.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Batches prepared ahead of the training loop.
    #[arg(long, default_value_t = 4)]
    pub prefetch: usize,
    /// Peak learning rate (default: 2e-4 for the restorer, 1e-3 for the encoder).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-6)]
    pub min_lr: f64,
    /// Steps of linear warm-up.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Checkpoint folder (default: `out/checkpoints/<output file stem>`).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint (weights, optimiser moments, step; the seed and step
    /// determine every random draw, so nothing else is needed).
    #[arg(long)]
    pub resume: bool,
    /// Start from these weights (same configuration) with a fresh optimiser and schedule,
    /// e.g. to fine-tune the CPU-trained defaults on a GPU. Ignored with `--resume`.
    #[arg(long)]
    pub init: Option<PathBuf>,
}

/// `clearair train encoder`
#[derive(Args, Debug, Clone)]
pub struct EncoderArgs {
    /// Shared settings.
    #[command(flatten)]
    pub run: RunArgs,
    /// Where to write the weights (the manifest goes beside them, `.json`).
    #[arg(long, default_value = "models/degradation-encoder.safetensors")]
    pub output: PathBuf,
    /// Window pairs per batch (each window appears under two degradations).
    #[arg(long, default_value_t = 8)]
    pub pairs: usize,
    /// Side of the training images for all but the last `--final-steps` steps.
    #[arg(long, default_value_t = 128)]
    pub size: u32,
    /// Side of the training images for the last `--final-steps` steps: the degradation
    /// service's input size, so the batch-norm statistics settle there.
    #[arg(long, default_value_t = 256)]
    pub final_size: u32,
    /// Steps at `--final-size` at the end of `--iterations`.
    #[arg(long, default_value_t = 150)]
    pub final_steps: u64,
    /// Largest photo window per image side, as a multiple of the side (degraded, then scaled
    /// down, as the service scales large uploads; 2 matches the 512-pixel evaluation photos).
    #[arg(long, default_value_t = 2.0)]
    pub max_scale: f64,
    /// Probability of a clean training image.
    #[arg(long, default_value_t = 0.1)]
    pub clean_probability: f64,
    /// Probability of a two-kind mixture.
    #[arg(long, default_value_t = 0.2)]
    pub mixture_probability: f64,
    /// Degradations per kind and held-out photo for the final accuracy (0: skip).
    #[arg(long, default_value_t = 4)]
    pub accuracy_repeats: u64,
}

/// `clearair train restorer`
#[derive(Args, Debug, Clone)]
pub struct RestorerArgs {
    /// Shared settings.
    #[command(flatten)]
    pub run: RunArgs,
    /// Network configuration: `compact` (the embedded default) or `full` (the paper's).
    #[arg(long, default_value = "compact")]
    pub config: String,
    /// Where to write the weights (the manifest goes beside them, `.json`).
    #[arg(long, default_value = "models/clearair-compact.safetensors")]
    pub output: PathBuf,
    /// The trained degradation encoder that provides F_c and F_d.
    #[arg(long, default_value = "models/degradation-encoder.safetensors")]
    pub encoder: PathBuf,
    /// BRISQUE parameters (`make setup` writes them).
    #[arg(long, default_value = "data/brisque/brisque_svr.json")]
    pub brisque_params: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Side of the training crops.
    #[arg(long, default_value_t = 128)]
    pub crop: u32,
    /// Side of the degraded window the priors are computed on, at least the crop (default:
    /// 256, the size the degradation service scales images to, so the encoder sees what it
    /// sees in the mesh).
    #[arg(long)]
    pub context: Option<u32>,
    /// Turn the ICRM consistency term off (ablation): plain L1.
    #[arg(long)]
    pub no_icrm: bool,
    /// Side of the ICRM sub-crop.
    #[arg(long, default_value_t = 64)]
    pub icrm_crop: i64,
    /// Probability that each prior is replaced by the orchestrator's neutral fallback.
    #[arg(long, default_value_t = 0.1)]
    pub prior_dropout: f64,
    /// Probability of a clean training crop (identity).
    #[arg(long, default_value_t = 0.05)]
    pub clean_probability: f64,
    /// Probability of a two-kind mixture.
    #[arg(long, default_value_t = 0.15)]
    pub mixture_probability: f64,
    /// Kinds to train on (default: all five).
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip_grad_norm: f64,
    /// Held-out photos (centre crops) in the quick evaluation written into the manifest (0:
    /// skip it; `clearair eval --update-manifest` replaces it with the full evaluation).
    #[arg(long, default_value_t = 4)]
    pub quick_eval_photos: usize,
    /// Side of the quick evaluation's centre crops.
    #[arg(long, default_value_t = 256)]
    pub quick_eval_crop: u32,
}

/// `clearair train benchmark`
#[derive(Args, Debug, Clone)]
pub struct BenchmarkArgs {
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch CPU threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Configurations to time.
    #[arg(long, value_delimiter = ',', default_value = "compact,full")]
    pub configs: Vec<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 4)]
    pub batch: i64,
    /// Side of the batch images.
    #[arg(long, default_value_t = 256)]
    pub size: i64,
    /// Side of the single-image latency timing.
    #[arg(long, default_value_t = 512)]
    pub inference_size: i64,
    /// Timed repetitions (median reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `clearair eval`
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The restorer's weights (manifest beside them).
    #[arg(long, default_value = "models/clearair-compact.safetensors")]
    pub restorer: PathBuf,
    /// The degradation encoder's weights (manifest beside them).
    #[arg(long, default_value = "models/degradation-encoder.safetensors")]
    pub encoder: PathBuf,
    /// The held-out photos.
    #[arg(long, default_value = "data/photos/eval")]
    pub photos: PathBuf,
    /// BRISQUE parameters (`make setup` writes them).
    #[arg(long, default_value = "data/brisque/brisque_svr.json")]
    pub brisque_params: PathBuf,
    /// Folder for the table (`eval.md`), the JSON report (`eval.json`) and the sheets.
    #[arg(long, default_value = "out/eval")]
    pub out: PathBuf,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch CPU threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// The Python that runs the FFDNet reference (default: the project's `.venv/bin/python`
    /// when present, else `python3`).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The FFDNet reference script.
    #[arg(long, default_value = "deploy/scripts/ffdnet_reference.py")]
    pub ffdnet_script: PathBuf,
    /// Leave the FFDNet reference out (the table says "not run"); for machines without the
    /// Python environment.
    #[arg(long)]
    pub no_ffdnet: bool,
    /// Evaluate centred crops of this side instead of the whole photos.
    #[arg(long)]
    pub crop: Option<u32>,
    /// Only these rows (keys: noise15, noise25, noise50, haze, rain, blur, low_light).
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
    /// Photos per row in the picture sheets.
    #[arg(long, default_value_t = 3)]
    pub sheet_photos: usize,
    /// Degradations per kind and photo for the encoder's accuracy (0: skip).
    #[arg(long, default_value_t = 4)]
    pub encoder_repeats: u64,
    /// Write the figures into the restorer's and the encoder's manifests.
    #[arg(long)]
    pub update_manifest: bool,
}

/// `clearair degrade`
#[derive(Args, Debug, Clone)]
pub struct DegradeArgs {
    /// The clean photo.
    pub input: PathBuf,
    /// Where to write the degraded photo (PNG).
    pub output: PathBuf,
    /// Degradations: `noise:25`, `noise`, `haze`, `rain`, `blur`, `low_light`; several,
    /// comma-separated, make a mixture.
    #[arg(long, value_delimiter = ',', required = true)]
    pub kind: Vec<String>,
    /// Seed of the random parameters and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// First scale the photo down so its long side is at most this.
    #[arg(long)]
    pub max_side: Option<u32>,
    /// Then keep the centred square of this side.
    #[arg(long)]
    pub centre_crop: Option<u32>,
    /// Also write the clean photo, framed the same way (the reference to measure against).
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// Runs `clearair train …` (blocking).
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    match args.command {
        TrainCommand::Encoder(args) => crate::commands::train_encoder_command(&args),
        TrainCommand::Restorer(args) => crate::commands::train_restorer_command(&args),
        TrainCommand::Benchmark(args) => crate::commands::benchmark_command(&args),
    }
}

/// Runs `clearair eval` (blocking).
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    crate::commands::eval_command(&args)
}

/// Runs `clearair degrade` (blocking).
pub fn degrade(args: DegradeArgs) -> anyhow::Result<()> {
    crate::commands::degrade_command(&args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    enum Clearair {
        Train(TrainArgs),
        Eval(EvalArgs),
        Degrade(DegradeArgs),
    }

    #[test]
    fn command_lines_parse_with_their_defaults() {
        Clearair::command().debug_assert();
        let parsed = Clearair::try_parse_from([
            "clearair",
            "train",
            "restorer",
            "--no-icrm",
            "--kinds",
            "noise,haze",
            "--time-budget",
            "60",
        ])
        .unwrap();
        let Clearair::Train(TrainArgs {
            command: TrainCommand::Restorer(args),
        }) = parsed
        else {
            panic!("not a restorer command: {parsed:?}");
        };
        assert!(args.no_icrm);
        assert_eq!(args.kinds, ["noise", "haze"]);
        assert_eq!(
            (args.batch, args.crop, args.run.time_budget),
            (4, 128, Some(60.0))
        );
        assert_eq!(
            args.output,
            PathBuf::from("models/clearair-compact.safetensors")
        );

        let parsed = Clearair::try_parse_from([
            "clearair",
            "degrade",
            "in.png",
            "out.png",
            "--kind",
            "noise:25,haze",
        ])
        .unwrap();
        let Clearair::Degrade(args) = parsed else {
            panic!("not degrade: {parsed:?}");
        };
        assert_eq!(args.kind, ["noise:25", "haze"]);
        assert!(Clearair::try_parse_from(["clearair", "degrade", "in.png", "out.png"]).is_err());
        let Clearair::Eval(args) =
            Clearair::try_parse_from(["clearair", "eval", "--no-ffdnet"]).unwrap()
        else {
            panic!("not eval");
        };
        assert!(args.no_ffdnet && !args.update_manifest);
    }
}
