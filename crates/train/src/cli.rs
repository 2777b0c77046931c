//! The `clearair train`, `clearair eval` and `clearair degrade` command lines: clap argument
//! structs and blocking entry functions for the `clearair` binary to wire in.

use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand};

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
    ///
    /// A later occurrence of an option overrides an earlier one, so a script's recipe can
    /// be varied from its command line (`cpu_train.sh -- --lr 2e-4`).
    #[command(args_override_self = true)]
    Restorer(Box<RestorerArgs>),
    /// Time forward passes and training steps of the restorers on a device.
    Benchmark(BenchmarkArgs),
    /// Draw runs' progress evaluations as learning curves, a panel per row with its goal and
    /// an optional baseline, and print where each run stands and how fast it still moves.
    Curves(CurvesArgs),
    /// Read the degradation encoder's probability of one kind on training photos degraded
    /// with each kind and undegraded, and print the share of each at or above thresholds:
    /// what a refiner gate (`--gate KIND:LOW:HIGH`) would let through. Choose the gate on
    /// training photos, never on the evaluation's.
    Gate(GateArgs),
}

/// `clearair train gate`.
#[derive(Args, Debug, Clone)]
pub struct GateArgs {
    /// The kind the gate is for.
    #[arg(long, default_value = "blur")]
    pub kind: String,
    /// The photos (the training split by default).
    #[arg(long, default_value = "data/photos/train")]
    pub photos: PathBuf,
    /// Read every N-th photo (by name).
    #[arg(long, default_value_t = 4)]
    pub every: usize,
    /// Fit each photo to this long side first, as the evaluation's photos are.
    #[arg(long, default_value_t = 512)]
    pub max_side: u32,
    /// Degradations drawn per photo and kind (the evaluation's ranges).
    #[arg(long, default_value_t = 2)]
    pub repeats: u64,
    /// The degradation encoder's weights (manifest beside them).
    #[arg(long, default_value = "models/degradation-encoder.safetensors")]
    pub encoder: PathBuf,
    /// The restorer whose manifest names the encoder view the mesh serves it.
    #[arg(long, default_value = "models/clearair-compact.safetensors")]
    pub restorer: PathBuf,
    /// Read the probabilities as a gate would in this view (`served`, `centre` or `tiles`:
    /// each kind's least over the image's own-scale tiles), to see how it separates the kind.
    /// Default: the view the restorer's manifest serves.
    #[arg(long)]
    pub view: Option<String>,
    /// Thresholds to count the shares at.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    )]
    pub thresholds: Vec<f32>,
    /// `cpu` or `cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// libtorch threads.
    #[arg(long)]
    pub threads: Option<i32>,
}

/// `clearair train curves`.
#[derive(Args, Debug, Clone)]
pub struct CurvesArgs {
    /// The runs: their folders (or their checkpoint folders, or `eval-history.csv` files).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Legend names of the runs, comma-separated, one per run in order (default: their
    /// folders' names).
    #[arg(long, value_delimiter = ',')]
    pub names: Vec<String>,
    /// An `eval.json` of `clearair eval` drawn as the baseline (evaluate it with the runs'
    /// `--eval-crop` for a like-for-like line), named after its folder.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Progress evaluations the trend (dB per 1000 steps) is fitted over.
    #[arg(long, default_value_t = 3)]
    pub trend_over: usize,
    /// Where the picture goes.
    #[arg(long, default_value = "out/curves.png")]
    pub out: PathBuf,
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
    /// A learning-rate range test instead of training to a schedule: `FROM:TO`, the rate
    /// rising exponentially over `--iterations`; writes `lr-range.csv` and `lr-range.png`
    /// into the checkpoint folder.
    #[arg(long)]
    pub lr_range_test: Option<String>,
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
    /// Relative weight of each kind (noise, haze, rain, blur, low_light); default equal. A
    /// fine-tune that weights up the kinds the encoder misreads shows it more of them.
    #[arg(long, value_delimiter = ',', action = ArgAction::Set)]
    pub kind_weights: Vec<f64>,
    /// Degradations per kind and held-out photo for the final accuracy (0: skip).
    #[arg(long, default_value_t = 4)]
    pub accuracy_repeats: u64,
    /// Hold the embeddings near this frozen encoder's (F_c on every image, F_d on the degraded
    /// ones; clean images move freely), e.g. the served encoder when fine-tuning it, so the
    /// restorer trained on its embeddings keeps working.
    #[arg(long)]
    pub anchor: Option<PathBuf>,
    /// Weight of the anchor term (1 − cosine similarity, see `--anchor`).
    #[arg(long, default_value_t = 1.0, requires = "anchor")]
    pub anchor_weight: f64,
    /// Keep the starting weights' batch-norm statistics (normalise with them in training too),
    /// so a fine-tune cannot shift every embedding through the statistics; with `--init`.
    #[arg(long, requires = "init")]
    pub freeze_norm: bool,
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
    /// Refinement blocks at full resolution instead of the configuration's (1 in `compact`,
    /// 4 in `full`): a network grown by `deploy/scripts/grow_refinement.py` trains with the
    /// count its manifest names, given again when the run resumes.
    #[arg(long)]
    pub refinement_blocks: Option<usize>,
    /// Feature channels of the four levels instead of the configuration's (`16,32,48,64` in
    /// `compact`), e.g. a wider stage trained apart from the restorer; each a multiple of
    /// its level's attention heads (1, 2, 4, 8). The manifest records them, and the mesh
    /// builds the network from it.
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<i64>>,
    /// Where to write the weights (the manifest goes beside them, `.json`).
    #[arg(long, default_value = "models/clearair-compact.safetensors")]
    pub output: PathBuf,
    /// The trained degradation encoder that provides F_c and F_d.
    #[arg(long, default_value = "models/degradation-encoder.safetensors")]
    pub encoder: PathBuf,
    /// BRISQUE parameters (`make setup` writes them).
    #[arg(long, default_value = "data/brisque/brisque_svr.json")]
    pub brisque_params: PathBuf,
    /// Crops per batch (4 × 128² was the fastest in pixels/s on two cores; see
    /// `clearair train benchmark`).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Side of the training crops.
    #[arg(long, default_value_t = 128)]
    pub crop: u32,
    /// Progressive crops, `STEP:CROPxBATCH,…` (e.g. `0:64x32,4000:128x8`); overrides
    /// `--crop` and `--batch`.
    #[arg(long)]
    pub crop_schedule: Option<String>,
    /// Smallest side of the degraded windows the priors are computed on (the "uploads").
    #[arg(long, default_value_t = 256)]
    pub window_min: u32,
    /// Largest window side (photos smaller than this give windows of their short side).
    #[arg(long, default_value_t = 512)]
    pub window_max: u32,
    /// Windows in the priors cache's pool that each step draws its crops from.
    #[arg(long, default_value_t = 64)]
    pub pool: u64,
    /// New windows made per step (each window serves about `batch / this` crops).
    #[arg(long, default_value_t = 0.5)]
    pub windows_per_step: f64,
    /// Threads the batch is split across, each with one libtorch thread (default 1: on two
    /// cores libtorch's own two threads were faster; `clearair train benchmark` measures it).
    #[arg(long)]
    pub shards: Option<usize>,
    /// How a new network starts: `identity-output`, `identity-branches` or `random`.
    #[arg(long, default_value = "identity-output")]
    pub start: String,
    /// Pixel loss: `psnr` (per-image), `psnr-capped` (per-image, saturating at 40 dB so nearly
    /// clean images stop outweighing hard ones), `l1`, or `psnr-l1` (the sum of psnr and l1).
    #[arg(long, default_value = "psnr")]
    pub pixel_loss: String,
    /// Ceiling of `--pixel-loss psnr-capped` in dB: an image restored past it stops pulling
    /// harder. Lower it to let training trade some of the clean row's surplus for the hard
    /// degradations (blur, whose fix costs nearly clean images a little).
    #[arg(long, default_value_t = clearair_model::PSNR_LOSS_CEILING_DB)]
    pub psnr_ceiling: f64,
    /// Weight of the frequency loss added to the pixel loss: the mean absolute difference of
    /// the restored and clean images' orthonormal spectra, which pulls on the faint
    /// high-frequency errors blur leaves as hard as on large ones (0, the default: none).
    #[arg(long, default_value_t = 0.0)]
    pub frequency_weight: f64,
    /// Weight of the keep loss: per image, the dB of PSNR the output loses below its input
    /// (capped at 60 dB), 0.01 per dB as the PSNR losses. For a refiner (`--after`), whose
    /// input is the restorer's output, it asks that no window come out worse than the
    /// restorer left it (0, the default: none).
    #[arg(long, default_value_t = 0.0)]
    pub keep_weight: f64,
    /// Where the keep loss stops telling images apart, in dB (20–60; 60, the default). At the
    /// PSNR loss's ceiling (40) a restorer's clean windows above it pull only faintly towards
    /// the exact identity (an output at 45 dB pays 1.2 dB instead of 15), while a window it
    /// makes worse than its input still costs about each decibel lost.
    #[arg(long, default_value_t = clearair_model::KEEP_LOSS_CEILING_DB)]
    pub keep_ceiling: f64,
    /// Multipliers of the keep loss for windows of each kind (noise, haze, rain, blur,
    /// low_light; the largest of a mixture's kinds, 1 for clean windows): e.g. `1,0,1,1,1`
    /// spares haze, whose fallback the loss makes dehaze less. Needs `--keep-weight`.
    /// Default: 1 for every kind.
    #[arg(long, value_delimiter = ',', action = ArgAction::Set)]
    pub keep_kinds: Vec<f64>,
    /// Multipliers of the frequency loss for windows of each kind, as `--keep-kinds`:
    /// e.g. `0,0,0,1,0` keeps it for blurred windows (and clean ones) alone, so it deblurs
    /// without sharpening what rain or noise leave. Needs `--frequency-weight`. Default: 1
    /// for every kind.
    #[arg(long, value_delimiter = ',', action = ArgAction::Set)]
    pub frequency_kinds: Vec<f64>,
    /// Turn the ICRM consistency term off (ablation).
    #[arg(long)]
    pub no_icrm: bool,
    /// Side of the ICRM sub-crop.
    #[arg(long, default_value_t = 64)]
    pub icrm_crop: i64,
    /// Add the ICRM term only every this many steps.
    #[arg(long, default_value_t = 1)]
    pub icrm_every: u64,
    /// Probability that each prior is replaced by the orchestrator's neutral fallback.
    #[arg(long, default_value_t = 0.15)]
    pub prior_dropout: f64,
    /// Probability that all three priors are neutral at once.
    #[arg(long, default_value_t = 0.05)]
    pub all_neutral: f64,
    /// Multipliers of `--all-neutral` for windows of each kind (noise, haze, rain, blur,
    /// low_light; the largest of a mixture's kinds): e.g. `1,3,1,1,3` trains the fallback of
    /// haze and low light three times as often. Default: 1 for every kind.
    #[arg(long, value_delimiter = ',', action = ArgAction::Set)]
    pub all_neutral_kinds: Vec<f64>,
    /// Multiplier of the all-neutral probability for windows whose clean target is dark
    /// (mean below 0.15: night skies, darkened photos) and carry neither noise nor haze, which
    /// without priors look like under-exposed photos the fallback must brighten (e.g. 0; 1:
    /// no difference).
    #[arg(long, default_value_t = 1.0)]
    pub all_neutral_dark: f64,
    /// Extra probability that F_c/F_d alone are neutral (the degradation service down), on
    /// top of `--prior-dropout`: trains the restorer not to depend on the embeddings.
    #[arg(long, default_value_t = 0.0)]
    pub embedding_dropout: f64,
    /// Probability that a crop whose embeddings are kept carries another training window's
    /// F_d (the degradation encoder misreading the photo, as it reads some hazy photos as
    /// clean or rainy), meant to teach the restorer to restore what it sees when F_d is wrong;
    /// at 0.15 it made the restorer dehaze less (cycle 17 in models/README.md).
    #[arg(long, default_value_t = 0.0)]
    pub embedding_misread: f64,
    /// Probability of a clean training window (identity).
    #[arg(long, default_value_t = 0.1)]
    pub clean_probability: f64,
    /// Probability of a two-kind mixture.
    #[arg(long, default_value_t = 0.15)]
    pub mixture_probability: f64,
    /// Share of windows whose clean photo is darkened in its mid-tones first (dark photos
    /// are targets too, not only under-exposed inputs).
    #[arg(long, default_value_t = 0.15)]
    pub dark_share: f64,
    /// The darkened targets' γ is drawn from 1.5 to this (x ↦ x^γ; 3 dims a scene, 6 makes
    /// it as dark as a night sky around its stars). At least 1.5.
    #[arg(long, default_value_t = 3.0)]
    pub dark_gamma_max: f64,
    /// What of a window the degradation encoder sees for F_c/F_d, as the degradation
    /// service's `view` setting: `whole` (shrunk to 256), `centre` (the centred 256 square at
    /// the window's own scale) or `split` (F_c from the whole, F_d from the square). The
    /// manifest's degradation backend names it, so the
    /// weights are served only by a service with the same view.
    #[arg(long, default_value = "whole")]
    pub encoder_view: String,
    /// Train a refiner: every window first goes through this trained restorer (weights with
    /// their manifest beside), as the mesh runs it, and the network learns to take its output
    /// to the clean photo, reading the priors `--after-priors` names, as the mesh's `refiner`
    /// runs.
    #[arg(long)]
    pub after: Option<PathBuf>,
    /// With `--after`: the priors the refiner reads behind the first restorer: `neutral`
    /// (pixels only; needs `--all-neutral 1`) or `served` (the upload's priors, as the
    /// restorer reads them, dropped as `--prior-dropout`/`--all-neutral` say). The manifest
    /// records it, and the mesh runs the refiner that way.
    #[arg(long, default_value = "neutral")]
    pub after_priors: String,
    /// With `--after`: share of windows the first restorer restores with every prior neutral
    /// (as when every prior service is down) instead of the window's served priors.
    #[arg(long, default_value_t = 0.25)]
    pub after_neutral: f64,
    /// With `--after`: the refiner reads the upload too, six channels (the first restorer's
    /// output, then the window as it was sent), and its keep loss (`--keep-weight`) measures
    /// its output against the better of the two for each window: where the first restorer
    /// took away what was there, the upload still holds it. For the fallback stage
    /// (`fallback_refiner`), whose goal is never to be worse than what was sent. It starts as a
    /// new network (`--start`), from weights trained so (`--init`), or from a stage of the same
    /// widths that read the restorer's output alone (`--init` a refiner, e.g. the blur stage):
    /// its kernels on the upload then start at zero, so it starts as that stage.
    #[arg(long)]
    pub sees_upload: bool,
    /// With `--after`: kinds the stage is taught to leave as the first network left them
    /// (e.g. `rain`): a window degraded by these kinds alone has the first network's output
    /// as its target instead of the clean photo; mixtures with another kind keep the clean
    /// one. Default: none.
    #[arg(long, value_delimiter = ',', action = ArgAction::Set)]
    pub hold_kinds: Vec<String>,
    /// With `--after`: the gate the manifest gives the refiner, `KIND:LOW:HIGH` (the mesh
    /// keeps none of its change where the encoder's probability of KIND is at or below LOW,
    /// all at or above HIGH, linear between, and none without probabilities, on the
    /// fallback). For a refiner trained on one kind (`--kinds blur`). Training is unchanged.
    /// A fourth field, `:centre` or `:tiles`, has the gate read the degradation service's
    /// second reading in that view (`clearair train gate --view` picks LOW and HIGH there).
    #[arg(long, value_name = "KIND:LOW:HIGH[:VIEW]")]
    pub gate: Option<String>,
    /// Kinds to train on (default: all five).
    #[arg(long, value_delimiter = ',', action = ArgAction::Set)]
    pub kinds: Vec<String>,
    /// Relative weight of each kind (same order as `--kinds` or the five kinds: noise, haze,
    /// rain, blur, low_light); default equal.
    #[arg(long, value_delimiter = ',', action = ArgAction::Set)]
    pub kind_weights: Vec<f64>,
    /// Degradation parameters: `training` (wide ranges), `evaluation` (the eval's ranges) or
    /// `mixed:P` (each degradation from the eval's ranges with probability P, else the wide
    /// ones).
    #[arg(long, default_value = "training")]
    pub ranges: String,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip_grad_norm: f64,
    /// Decay of the exponential moving average of the weights that the run evaluates,
    /// checkpoints (`average.safetensors`) and writes to `--output` (0: no average; the
    /// last step's weights are written). 0.999 averages over about the last 1,000 steps.
    #[arg(long, default_value_t = 0.999)]
    pub ema_decay: f64,
    /// Evaluate every this many steps while training (0: never): every row on centred crops
    /// of the held-out photos, appended to the checkpoint folder's `eval-history.csv`.
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Side of the progress evaluation's centred crops.
    #[arg(long, default_value_t = 128)]
    pub eval_crop: u32,
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
    /// libtorch CPU threads of the configs part (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Configurations to time (forward, training step, latency); `none` skips that part.
    #[arg(long, value_delimiter = ',', default_value = "compact,full")]
    pub configs: Vec<String>,
    /// Images per batch of the configs part.
    #[arg(long, default_value_t = 4)]
    pub batch: i64,
    /// Side of the configs part's batch images.
    #[arg(long, default_value_t = 256)]
    pub size: i64,
    /// Side of the single-image latency timing.
    #[arg(long, default_value_t = 512)]
    pub inference_size: i64,
    /// Thread layouts of the settings part, `INTRAxSHARDS` (libtorch intra-op threads ×
    /// threads the batch is split across); empty skips that part.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1x1,2x1,1x2")]
    pub layouts: Vec<String>,
    /// Crop sizes of the settings part, `CROPxBATCH`.
    #[arg(long, value_delimiter = ',', default_value = "64x16,96x8,128x4,192x2")]
    pub crops: Vec<String>,
    /// Time the making of cached training windows of these sides (needs the photos, BRISQUE
    /// parameters and the encoder's weights); empty skips that part.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "256,512")]
    pub window_sides: Vec<u32>,
    /// Windows timed per side.
    #[arg(long, default_value_t = 8)]
    pub windows: u64,
    /// Training photos, for the window timing.
    #[arg(long, default_value = "data/photos/train")]
    pub train_photos: PathBuf,
    /// BRISQUE parameters, for the window timing.
    #[arg(long, default_value = "data/brisque/brisque_svr.json")]
    pub brisque_params: PathBuf,
    /// The degradation encoder, for the window timing.
    #[arg(long, default_value = "models/degradation-encoder.safetensors")]
    pub encoder: PathBuf,
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
    /// A second restorer run on the first one's output, tile by tile, with the priors its
    /// manifest's `refiner_priors` names (neutral when absent; manifest beside its weights).
    #[arg(long)]
    pub refiner: Option<PathBuf>,
    /// Keep of the refiner's change only the share a gate gives each image from the
    /// encoder's probability of one kind: `KIND:LOW:HIGH` (none at or below LOW, all at or
    /// above HIGH, linear between; none on the fallback rows), read in VIEW when a fourth
    /// field names one (`centre`, `tiles`). Overrides the refiner's manifest's `refiner_gate`.
    #[arg(long, value_name = "KIND:LOW:HIGH[:VIEW]")]
    pub refiner_gate: Option<String>,
    /// Run the refiner on this many flips and transposes of each tile (1, 2, 4 or 8) and
    /// average the outputs turned back, as the restoration service's `refiner_ensemble`.
    #[arg(long, default_value_t = 1)]
    pub refiner_ensemble: u8,
    /// The fallback stage: a network trained on the restorer's output with every prior
    /// neutral (`clearair train restorer --after <restorer> --after-neutral 1 --all-neutral
    /// 1`, on every kind), run on the fallback rows in place of the refiner, as the
    /// restoration service's `fallback_refiner` runs on a request that carries no prior.
    #[arg(long)]
    pub fallback_refiner: Option<PathBuf>,
    /// Run the fallback stage on this many flips and transposes of each tile (1, 2, 4 or 8),
    /// as the restoration service's `fallback_refiner_ensemble`.
    #[arg(long, default_value_t = 1)]
    pub fallback_refiner_ensemble: u8,
    /// Keep of the fallback stage's change only the share a gate gives each upload from its
    /// blur effect, read on its pixels: `LOW:HIGH` (none at or below LOW, all at or above
    /// HIGH, linear between), or `none` for the whole change. Overrides the stage's
    /// manifest's `blur_gate`.
    #[arg(long, value_name = "LOW:HIGH|none")]
    pub fallback_blur_gate: Option<String>,
    /// Run the restorer on this many flips and transposes of each tile (1, 2, 4 or 8, the
    /// masks turned alike) and average the outputs turned back, as the restoration
    /// service's `restorer_ensemble`.
    #[arg(long, default_value_t = 1)]
    pub restorer_ensemble: u8,
    /// Where the gate reads the encoder's probabilities: `served` (the restorer's view),
    /// `centre` (the centred square at the image's own scale) or `tiles` (each kind's least
    /// over own-scale tiles covering the image), as the degradation service's `gate_view`
    /// does. The priors the networks read are unchanged.
    #[arg(long)]
    pub gate_view: Option<String>,
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
    /// Run the restorer in bfloat16, as the service's `model.precision = "bf16"` does.
    #[arg(long)]
    pub bf16: bool,
    /// Evaluate centred crops of this side instead of the whole photos.
    #[arg(long)]
    pub crop: Option<u32>,
    /// Only these rows (keys: noise15, noise25, noise50, haze, rain, blur, low_light, clean,
    /// and each served degradation's fallback row: fallback_noise15 … fallback_low_light).
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
    /// Photos per row in the picture sheets.
    #[arg(long, default_value_t = 3)]
    pub sheet_photos: usize,
    /// Degradations per kind and photo for the encoder's accuracy (0: skip).
    #[arg(long, default_value_t = 4)]
    pub encoder_repeats: u64,
    /// Write the figures into the restorer's and the encoder's manifests; with `--refiner`,
    /// the pair's figures (and the ensembles they were read with) into the refiner's
    /// manifest instead, the restorer's keeping its own.
    #[arg(long, conflicts_with_all = ["neutral"])]
    pub update_manifest: bool,
    /// Put these priors on their neutral fallback in the served rows too (`quality`,
    /// `masks`, `embeddings`): what each prior contributes, row by row.
    #[arg(long, value_delimiter = ',', value_parser = ["quality", "masks", "embeddings"])]
    pub neutral: Vec<String>,
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

/// `clearair profile`
#[derive(Args, Debug, Clone)]
pub struct ProfileArgs {
    /// The restorer's weights (manifest beside them).
    #[arg(long, default_value = "models/clearair-compact.safetensors")]
    pub restorer: PathBuf,
    /// The degradation encoder's weights (manifest beside them).
    #[arg(long, default_value = "models/degradation-encoder.safetensors")]
    pub encoder: PathBuf,
    /// BRISQUE parameters (`make setup` writes them).
    #[arg(long, default_value = "data/brisque/brisque_svr.json")]
    pub brisque_params: PathBuf,
    /// The photo, centre-cropped and resized to each size.
    #[arg(long, default_value = "tests/fixtures/samples/noisy-coffee.png")]
    pub image: PathBuf,
    /// Sides of the square images profiled.
    #[arg(long, value_delimiter = ',', default_value = "512")]
    pub sizes: Vec<u32>,
    /// Recorded passes per size, after one warm-up pass.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Tile side of the restore (the restoration service's `tile_size`).
    #[arg(long, default_value_t = 512)]
    pub tile_size: u32,
    /// Tile overlap (the service's `tile_overlap`).
    #[arg(long, default_value_t = 32)]
    pub tile_overlap: u32,
    /// Run the network in bfloat16 (to measure reduced precision on CPUs with AVX-512 BF16).
    #[arg(long)]
    pub bf16: bool,
    /// libtorch intra-op threads (default: libtorch's choice, the machine's cores).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Also write the profiles as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `clearair profile` (blocking).
pub fn profile(args: ProfileArgs) -> anyhow::Result<()> {
    crate::commands::profile_command(&args)
}

/// Runs `clearair train …` (blocking).
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    match args.command {
        TrainCommand::Encoder(args) => crate::commands::train_encoder_command(&args),
        TrainCommand::Restorer(args) => crate::commands::train_restorer_command(&args),
        TrainCommand::Benchmark(args) => crate::commands::benchmark_command(&args),
        TrainCommand::Gate(args) => crate::commands::gate_command(&args),
        TrainCommand::Curves(args) => {
            let table = crate::curves::write_curves(
                &args.runs,
                &args.names,
                args.baseline.as_deref(),
                args.trend_over,
                &args.out,
            )?;
            print!("{table}");
            println!("curves: {}", args.out.display());
            Ok(())
        }
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
        Profile(ProfileArgs),
    }

    /// `clearair train restorer ARGS`, parsed.
    fn restorer_args(args: &[&str]) -> Box<RestorerArgs> {
        let line = ["clearair", "train", "restorer"]
            .iter()
            .chain(args)
            .copied();
        let parsed = Clearair::try_parse_from(line).unwrap();
        let Clearair::Train(TrainArgs {
            command: TrainCommand::Restorer(args),
        }) = parsed
        else {
            panic!("not a restorer command: {parsed:?}");
        };
        args
    }

    #[test]
    fn command_lines_parse_with_their_defaults() {
        Clearair::command().debug_assert();
        let args = restorer_args(&["--no-icrm", "--kinds", "noise,haze", "--time-budget", "60"]);
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
        // A pair's figures go into the refiner's manifest; with a prior held neutral they
        // are nobody's.
        let pair = [
            "clearair",
            "eval",
            "--refiner",
            "r.safetensors",
            "--update-manifest",
        ];
        let Clearair::Eval(args) = Clearair::try_parse_from(pair).unwrap() else {
            panic!("not eval");
        };
        assert!(args.update_manifest && args.refiner.is_some());
        let neutral = [
            "clearair",
            "eval",
            "--neutral",
            "masks",
            "--update-manifest",
        ];
        assert!(Clearair::try_parse_from(neutral).is_err());
    }

    #[test]
    fn the_encoder_takes_one_weight_per_kind() {
        let parsed = Clearair::try_parse_from([
            "clearair",
            "train",
            "encoder",
            "--kind-weights",
            "1,3,1,2,1",
        ])
        .unwrap();
        let Clearair::Train(TrainArgs {
            command: TrainCommand::Encoder(args),
        }) = parsed
        else {
            panic!("not an encoder command: {parsed:?}");
        };
        assert_eq!(args.kind_weights, [1.0, 3.0, 1.0, 2.0, 1.0]);
        assert!(
            Clearair::try_parse_from(["clearair", "train", "encoder", "--kind-weights", "1,x"])
                .is_err()
        );
    }

    #[test]
    fn a_later_restorer_option_overrides_the_recipe_before_it() {
        let args = restorer_args(&[
            "--lr",
            "4e-4",
            "--ranges",
            "mixed:0.5",
            "--lr",
            "2e-4",
            "--ranges",
            "mixed:0.75",
            "--kind-weights",
            "1,1,1,1,1",
            "--kind-weights",
            "1.25,3,2,1.5,2",
        ]);
        assert_eq!(args.run.lr, Some(2e-4));
        assert_eq!(args.ranges, "mixed:0.75");
        // A list is replaced as a whole, not appended to.
        assert_eq!(args.kind_weights, [1.25, 3.0, 2.0, 1.5, 2.0]);
        // Other commands keep clap's default: a repeated option is an error.
        assert!(
            Clearair::try_parse_from(["clearair", "eval", "--crop", "64", "--crop", "128"])
                .is_err()
        );
    }
}
