//! What the command-line entry points do: turn parsed arguments into loaded photos, backends
//! and jobs, run them, and report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clearair_backends::degradation::{EncoderView, GateView};
use clearair_backends::restoration::Refiner;
use clearair_model::{
    BlurGate, ClearAirConfig, DegradationKind, EncoderConfig, EncoderLossWeights, IcrmConfig,
    KEEP_LOSS_CEILING_DB, ModelManifest, NetworkConfig, PSNR_LOSS_CEILING_DB, PixelLoss,
    PixelObjective, RefinerGate, RefinerPriors, StartingPoint, parse_device,
};
use tch::Device;

use crate::benchmark::{BenchmarkSettings, DataBench, ThreadLayout, describe, run_benchmark};
use crate::checkpoint::Checkpoint;
use crate::cli::{
    BenchmarkArgs, DegradeArgs, EncoderArgs, EvalArgs, GateArgs, RestorerArgs, RunArgs,
};
use crate::data::{
    CropSchedule, EncoderSampler, EncoderSampling, RestorerSampler, RestorerSampling,
};
use crate::degrade::{Framing, KindSpec, degrade_image, frame};
use crate::encoder_eval::{accuracy_metrics, accuracy_table, encoder_accuracy};
use crate::encoder_training::{EncoderTraining, encoder_manifest, train_encoder};
use crate::eval::report::{markdown_table, metrics, to_json};
use crate::eval::sheets::{row_sheet, synthesis_sheet};
use crate::eval::{EvalSettings, FfdnetReference, evaluate};
use crate::history::write_range_test;
use crate::mesh::MeshRestorer;
use crate::mix::{DegradationMix, ParameterRanges};
use crate::networks::{
    load_encoder, load_first_restorer, load_restorer, restorer_config, trained_encoder_view,
};
use crate::optimizer::{AdamWConfig, LearningRateSchedule};
use crate::photos::{load_photos, read_photo, write_png};
use crate::priors::{CpuPriorBackends, PriorDropout};
use crate::protocol::ROWS;
use crate::restorer_training::{
    ProgressEval, RestorerTraining, RunLimits, restorer_manifest, train_restorer,
};
use crate::windows::{FirstStage, PoolSchedule, WindowCache, WindowMaker, WindowSettings};

/// Encoder steps when `--iterations` is not given.
const DEFAULT_ENCODER_ITERATIONS: u64 = 700;

/// The command line as typed, with the program called `clearair` whatever binary runs it.
fn command_line() -> String {
    let quoted = std::env::args().skip(1).map(|arg| {
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            format!("'{}'", arg.replace('\'', r"'\''"))
        } else {
            arg
        }
    });
    std::iter::once("clearair".to_owned())
        .chain(quoted)
        .collect::<Vec<_>>()
        .join(" ")
}

fn setup_device(spec: &str, threads: Option<i32>) -> anyhow::Result<Device> {
    if let Some(threads) = threads {
        tch::set_num_threads(threads);
    }
    let device = parse_device(spec)?;
    eprintln!(
        "device {device:?}, {} libtorch CPU threads",
        tch::get_num_threads()
    );
    Ok(device)
}

fn range_test(run: &RunArgs) -> anyhow::Result<Option<(f64, f64)>> {
    let Some(text) = &run.lr_range_test else {
        return Ok(None);
    };
    let parsed = text
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?)))
        .filter(|(a, b)| *a > 0.0 && b > a);
    parsed
        .map(Some)
        .with_context(|| format!("--lr-range-test `{text}` is not FROM:TO with 0 < FROM < TO"))
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn limits(run: &RunArgs, output: &Path, default_iterations: u64) -> RunLimits {
    // Beside the outputs, not in models/: checkpoints are never committed.
    let folder = run.checkpoint_dir.clone().unwrap_or_else(|| {
        PathBuf::from("out/checkpoints").join(output.file_stem().unwrap_or_default())
    });
    RunLimits {
        iterations: run.iterations.unwrap_or(default_iterations),
        stop_at: run.stop_at,
        time_budget: run.time_budget.map(Duration::from_secs_f64),
        checkpoint_every: run.checkpoint_every,
        checkpoint: Some(Checkpoint::new(folder)),
        resume: run.resume,
    }
}

fn data_description(photos: usize, folder: &Path, detail: &str) -> String {
    format!(
        "{photos} training photos from {} (fixed split in deploy/scripts/photo_split.txt; the \
         evaluation photos are never trained on); {detail}",
        folder.display()
    )
}

fn parse_kinds(names: &[String]) -> anyhow::Result<Vec<DegradationKind>> {
    if names.is_empty() {
        return Ok(DegradationKind::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            DegradationKind::from_name(&name.replace('-', "_"))
                .with_context(|| format!("unknown degradation kind `{name}`"))
        })
        .collect()
}

/// `clearair train encoder`.
pub(crate) fn train_encoder_command(args: &EncoderArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let device = setup_device(&run.device, run.threads)?;
    let kinds = DegradationKind::ALL.to_vec();
    check_kind_weights(&args.kind_weights, &kinds)?;
    let photos = Arc::new(load_photos(&run.train_photos)?);
    let mix = DegradationMix {
        clean: args.clean_probability,
        mixture: args.mixture_probability,
        kinds,
        weights: args.kind_weights.clone(),
        ..DegradationMix::default()
    };
    let iterations = run.iterations.unwrap_or(DEFAULT_ENCODER_ITERATIONS);
    let sampling = EncoderSampling {
        side: args.size,
        final_side: args.final_size,
        final_from: iterations.saturating_sub(args.final_steps),
        max_scale: args.max_scale,
        mix,
    };
    let start = match &run.init {
        Some(init) => format!("initialised from {}; ", init.display()),
        None => String::new(),
    };
    let sizes = if args.size == args.final_size || args.final_steps == 0 {
        format!(
            "{}²",
            if args.final_steps == 0 {
                args.size
            } else {
                args.final_size
            }
        )
    } else {
        format!(
            "{}², the last {} steps to {}²",
            args.size,
            args.final_steps.min(iterations),
            args.final_size
        )
    };
    let anchor = args.anchor.as_ref().map_or(String::new(), |path| {
        format!(
            "; embeddings held near {}'s (1 − cos of F_c, and of F_d on degraded images, weight {})",
            path.display(),
            args.anchor_weight
        )
    });
    let frozen = if args.freeze_norm {
        "; batch-norm statistics frozen at the starting weights'"
    } else {
        ""
    };
    let weights = if args.kind_weights.is_empty() {
        String::new()
    } else {
        format!(
            ", kinds weighted {}",
            args.kind_weights
                .iter()
                .map(f64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let detail = format!(
        "{start}batches of {} windows, each under two degradation recipes (clean {:.2}, two-kind \
         mixtures {:.2}{weights}), degraded at 1–{}× the image side and scaled down (area) to \
         {sizes}{anchor}{frozen}",
        args.pairs, args.clean_probability, args.mixture_probability, args.max_scale,
    );
    let job = EncoderTraining {
        name: file_stem(&args.output),
        config: EncoderConfig::default(),
        sampler: EncoderSampler::new(photos.clone(), sampling, run.seed)?,
        init: run.init.clone(),
        anchor: args.anchor.clone().map(|path| (path, args.anchor_weight)),
        frozen_norm: args.freeze_norm,
        pairs: args.pairs,
        loss_weights: EncoderLossWeights::default(),
        schedule: LearningRateSchedule {
            peak: run.lr.unwrap_or(1e-3),
            floor: run.min_lr,
            warmup_steps: run.warmup,
            range_test: range_test(run)?,
        },
        adamw: AdamWConfig::default(),
        seed: run.seed,
        device,
        workers: run.workers.unwrap_or_else(default_workers),
        prefetch: run.prefetch,
        limits: limits(run, &args.output, DEFAULT_ENCODER_ITERATIONS),
        output: args.output.clone(),
        data_description: data_description(photos.len(), &run.train_photos, &detail),
        command: command_line(),
    };
    let (_store, encoder, outcome) = train_encoder(&job)?;
    eprintln!(
        "encoder: {} steps in {:.0} s, smoothed loss {:.4}, {} parameters; weights {}",
        outcome.steps,
        outcome.elapsed_seconds,
        outcome.smoothed_loss,
        outcome.parameters,
        args.output.display()
    );
    if args.accuracy_repeats > 0 && run.eval_photos.is_dir() {
        let eval_photos = load_photos(&run.eval_photos)?;
        let results = encoder_accuracy(
            &encoder,
            &eval_photos,
            device,
            // As the degradation service runs it by default.
            clearair_backends::degradation::DegradationBackendConfig::default().view,
            args.accuracy_repeats,
        )?;
        println!("{}", accuracy_table(&results));
        encoder_manifest(&job, &outcome, accuracy_metrics(&results))
            .write(&ModelManifest::path_for_weights(&args.output))?;
    }
    Ok(())
}

/// Refuses `--kind-weights` that the weighted draw cannot use: one weight per kind of `kinds`,
/// each finite and ≥ 0, at least one above 0 (empty: equal weights, always accepted).
fn check_kind_weights(weights: &[f64], kinds: &[DegradationKind]) -> anyhow::Result<()> {
    if weights.is_empty() {
        return Ok(());
    }
    let names = kinds
        .iter()
        .map(|kind| kind.name())
        .collect::<Vec<_>>()
        .join(", ");
    anyhow::ensure!(
        weights.len() == kinds.len(),
        "--kind-weights has {} weights for {} kinds ({names})",
        weights.len(),
        kinds.len()
    );
    anyhow::ensure!(
        weights
            .iter()
            .all(|weight| weight.is_finite() && *weight >= 0.0)
            && weights.iter().any(|weight| *weight > 0.0),
        "--kind-weights must be finite and ≥ 0, at least one above 0 ({names}), got {weights:?}"
    );
    Ok(())
}

/// The refinement blocks to train: `--refinement-blocks` (1–16) or the configuration's
/// `preset`, which must match the count in the manifest beside `--init`'s weights when it has
/// one, so a grown network started without the flag is refused with the flag to give rather
/// than with the loader's list of unexpected tensors.
fn refinement_blocks(
    requested: Option<usize>,
    preset: usize,
    init: Option<&Path>,
) -> anyhow::Result<usize> {
    let blocks = requested.unwrap_or(preset);
    anyhow::ensure!(
        (1..=16).contains(&blocks),
        "--refinement-blocks {blocks} is outside 1–16"
    );
    let Some(init) = init else {
        return Ok(blocks);
    };
    let manifest = ModelManifest::path_for_weights(init);
    // Weights without a (readable) manifest are left to the loader, which names what differs.
    if let Ok(ModelManifest {
        network: NetworkConfig::ClearAir(trained),
        ..
    }) = ModelManifest::read(&manifest)
    {
        anyhow::ensure!(
            trained.refinement_blocks == blocks,
            "{} has {} refinement blocks ({}) and this network {blocks}: give \
             --refinement-blocks {}",
            init.display(),
            trained.refinement_blocks,
            manifest.display(),
            trained.refinement_blocks
        );
    }
    Ok(blocks)
}

/// `--channels`: the network with these four levels' widths, checked as the mesh checks a
/// manifest's configuration (each level splits evenly into its heads, and so on).
fn with_channels(mut config: ClearAirConfig, channels: &[i64]) -> anyhow::Result<ClearAirConfig> {
    config.channels = channels.try_into().map_err(|_| {
        anyhow::anyhow!(
            "--channels takes four widths, one per level (e.g. 16,32,48,64), got {}",
            channels.len()
        )
    })?;
    config
        .validate()
        .map_err(|error| anyhow::anyhow!("--channels {channels:?}: {error}"))?;
    Ok(config)
}

/// The trained restorer `--after` names, checked against the run: a refiner served with every
/// prior neutral must train that way, and the first restorer must read F_c/F_d in the view
/// this run computes them in. `holds` are the kinds its windows keep at its output.
fn first_stage(
    weights: &Path,
    args: &RestorerArgs,
    device: Device,
    view: EncoderView,
    holds: Vec<DegradationKind>,
) -> anyhow::Result<FirstStage> {
    let priors = parse_keyword::<RefinerPriors>("--after-priors", &args.after_priors)?;
    check_refiner_sampling(
        priors,
        args.all_neutral,
        &args.all_neutral_kinds,
        args.all_neutral_dark,
        args.after_neutral,
    )?;
    let restorer = load_first_restorer(weights, device)
        .with_context(|| format!("--after: loading the first restorer {}", weights.display()))?;
    let trained = trained_encoder_view(&restorer.manifest)?;
    anyhow::ensure!(
        trained == view,
        "{} reads F_c/F_d in the {trained:?} view and this run computes them in the {view:?} \
         view: give --encoder-view to match",
        weights.display()
    );
    Ok(FirstStage {
        network: restorer.network,
        name: weights.display().to_string(),
        neutral_share: args.after_neutral,
        priors,
        keeps_upload: args.sees_upload,
        holds,
    })
}

/// The kinds of `--hold-kinds` (none given: none held), which only a stage behind a first
/// network (`after`: `--after` given) can hold.
fn held_kinds(names: &[String], after: bool) -> anyhow::Result<Vec<DegradationKind>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    anyhow::ensure!(
        after,
        "--hold-kinds holds kinds at the first network's output: give --after as well"
    );
    parse_kinds(names).context("--hold-kinds")
}

/// `config` as a stage that sees the upload when `sees_upload` (`--sees-upload`), which only
/// a stage behind a restorer (`after`: `--after` given) can be.
fn seeing_the_upload(
    config: ClearAirConfig,
    sees_upload: bool,
    after: bool,
) -> anyhow::Result<ClearAirConfig> {
    anyhow::ensure!(
        !sees_upload || after,
        "--sees-upload is for a stage behind a restorer: it needs --after"
    );
    Ok(ClearAirConfig {
        sees_upload,
        ..config
    })
}

/// A refiner trains as the mesh runs it: on neutral priors, `--all-neutral` times each
/// multiplier (per kind, dark targets) must reach 1. `after_neutral` is a probability.
fn check_refiner_sampling(
    priors: RefinerPriors,
    all_neutral: f64,
    kind_multipliers: &[f64],
    dark_multiplier: f64,
    after_neutral: f64,
) -> anyhow::Result<()> {
    let neutral = |multiplier: f64| all_neutral * multiplier >= 1.0;
    anyhow::ensure!(
        priors == RefinerPriors::Served
            || neutral(1.0)
                && kind_multipliers.iter().all(|m| neutral(*m))
                && neutral(dark_multiplier),
        "--after trains a refiner, which with --after-priors neutral the mesh runs with every \
         prior neutral: give --all-neutral 1 (and no --all-neutral-kinds or --all-neutral-dark \
         below 1), or --after-priors served"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&after_neutral),
        "--after-neutral is a probability in [0, 1], got {after_neutral}"
    );
    Ok(())
}

/// `clearair train restorer`.
pub(crate) fn train_restorer_command(args: &RestorerArgs) -> anyhow::Result<()> {
    let run = &args.run;
    // The recipe's kinds are checked before photos, priors and the encoder are loaded.
    let kinds = parse_kinds(&args.kinds)?;
    check_kind_weights(&args.kind_weights, &kinds)?;
    let refiner_gate = match (&args.gate, &args.after) {
        (Some(_), None) => anyhow::bail!("--gate is for a refiner: it needs --after"),
        (Some(text), Some(_)) => Some(RefinerGate::parse(text)?),
        (None, _) => None,
    };
    let shards = args.shards.unwrap_or(1).max(1);
    // Each shard runs its passes on one libtorch thread (see `crate::step`).
    let threads = run.threads.or((shards > 1).then_some(1));
    let device = setup_device(&run.device, threads)?;
    let photos = Arc::new(load_photos(&run.train_photos)?);
    let priors = Arc::new(CpuPriorBackends::load(&args.brisque_params)?);
    let encoder = load_encoder(&args.encoder, device).with_context(|| {
        format!(
            "loading the encoder {} (train it first: `clearair train encoder`)",
            args.encoder.display()
        )
    })?;
    let mut config = restorer_config(&args.config, priors.quality_width() as i64)?;
    config.refinement_blocks = refinement_blocks(
        args.refinement_blocks,
        config.refinement_blocks,
        run.init.as_deref(),
    )?;
    if let Some(channels) = &args.channels {
        config = with_channels(config, channels)?;
    }
    let config = seeing_the_upload(config, args.sees_upload, args.after.is_some())?;
    let holds = held_kinds(&args.hold_kinds, args.after.is_some())?;
    // Also refuses NaN.
    if !(1.5..=20.0).contains(&args.dark_gamma_max) {
        anyhow::bail!(
            "--dark-gamma-max {} is outside 1.5–20 (the darkened targets' γ runs from 1.5 to it)",
            args.dark_gamma_max
        );
    }
    let ranges = ParameterRanges::parse(&args.ranges)?;
    let mix = DegradationMix {
        clean: args.clean_probability,
        mixture: args.mixture_probability,
        kinds,
        weights: args.kind_weights.clone(),
        ranges,
    };
    let crops = match &args.crop_schedule {
        Some(text) => CropSchedule::parse(text)?,
        None => CropSchedule::fixed(args.crop, args.batch),
    };
    let starting_point = parse_keyword::<StartingPoint>("--start", &args.start)?;
    let pixel_loss = with_keep_ceiling(
        pixel_objective(
            &args.pixel_loss,
            args.psnr_ceiling,
            args.frequency_weight,
            args.keep_weight,
        )?,
        args.keep_ceiling,
    )?;
    let view = parse_keyword::<EncoderView>("--encoder-view", &args.encoder_view)?;
    let windows = WindowSettings {
        min_side: args.window_min.max(crops.largest_crop()),
        max_side: args.window_max.max(args.window_min),
        mix,
        dark_share: args.dark_share,
        dark_gamma_max: args.dark_gamma_max,
    };
    let pool = PoolSchedule {
        size: args.pool,
        per_step: args.windows_per_step,
    };
    let detail = restorer_data_detail(args, run, pixel_loss, &crops, &windows, pool);
    let first_stage = match &args.after {
        Some(weights) => Some(first_stage(weights, args, device, view, holds)?),
        None => None,
    };
    let maker = WindowMaker::new(
        photos.clone(),
        priors.clone(),
        encoder.network,
        device,
        windows.clone(),
        run.seed,
    )?
    .with_encoder_view(view);
    let maker = match first_stage {
        Some(stage) => maker.with_first_stage(stage),
        None => maker,
    };
    let cache = Arc::new(WindowCache::start(Arc::new(maker), pool)?);
    let refiner_priors = cache
        .first_stage()
        .map_or(RefinerPriors::Neutral, |stage| stage.priors);
    let progress_eval = if args.eval_every > 0 && run.eval_photos.is_dir() {
        Some(ProgressEval {
            every: args.eval_every,
            photos: load_photos(&run.eval_photos)?,
            crop: args.eval_crop,
            priors: priors.clone(),
            encoder: load_encoder(&args.encoder, device)?.network,
            view,
            first_stage: args
                .after
                .as_ref()
                .map(|weights| load_first_restorer(weights, device))
                .transpose()?,
            refiner_priors,
        })
    } else {
        None
    };
    let all_neutral_kinds = kind_multipliers("--all-neutral-kinds", &args.all_neutral_kinds)?;
    let keep_kinds = term_multipliers("keep", &args.keep_kinds, args.keep_weight)?;
    let frequency_kinds =
        term_multipliers("frequency", &args.frequency_kinds, args.frequency_weight)?;
    anyhow::ensure!(
        args.all_neutral_dark.is_finite() && args.all_neutral_dark >= 0.0,
        "--all-neutral-dark is a multiplier ≥ 0, got {}",
        args.all_neutral_dark
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.embedding_dropout),
        "--embedding-dropout is a probability in [0, 1], got {}",
        args.embedding_dropout
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.embedding_misread),
        "--embedding-misread is a probability in [0, 1], got {}",
        args.embedding_misread
    );
    let sampling = RestorerSampling {
        crops,
        prior_dropout: args.prior_dropout,
        all_neutral: args.all_neutral,
        all_neutral_kinds,
        all_neutral_dark: args.all_neutral_dark,
        keep_kinds,
        frequency_kinds,
        embedding_dropout: args.embedding_dropout,
        misread: args.embedding_misread,
    };
    let never_with_priors = sampling.kinds_never_with_priors();
    if !never_with_priors.is_empty() && args.after.is_none() {
        let names: Vec<&str> = never_with_priors.iter().map(|kind| kind.name()).collect();
        eprintln!(
            "warning: every window of {} trains with all priors neutral (--all-neutral {} \
             times its --all-neutral-kinds multiplier reaches 1): the served path, priors \
             present, never meets that kind, and the restorer unlearns restoring it when the \
             priors name it",
            names.join(", "),
            args.all_neutral
        );
    }
    let job = RestorerTraining {
        name: file_stem(&args.output),
        config,
        sampler: RestorerSampler::new(cache, windows.min_side, sampling, run.seed)?,
        backends: priors.backends(view),
        starting_point,
        init: run.init.clone(),
        pixel_loss,
        icrm: IcrmConfig {
            enabled: !args.no_icrm,
            crop: Some(args.icrm_crop),
            ..IcrmConfig::default()
        },
        icrm_every: args.icrm_every.max(1),
        schedule: LearningRateSchedule {
            peak: run.lr.unwrap_or(2e-4),
            floor: run.min_lr,
            warmup_steps: run.warmup,
            range_test: range_test(run)?,
        },
        adamw: AdamWConfig::default(),
        clip_grad_norm: (args.clip_grad_norm > 0.0).then_some(args.clip_grad_norm),
        weight_average: (args.ema_decay != 0.0).then_some(args.ema_decay),
        seed: run.seed,
        device,
        shards,
        prefetch: run.prefetch,
        limits: limits(run, &args.output, 4000),
        output: args.output.clone(),
        data_description: data_description(photos.len(), &run.train_photos, &detail),
        command: command_line(),
        progress_eval,
        refiner_gate,
    };
    let (_store, restorer, outcome) = train_restorer(&job)?;
    if job.schedule.range_test.is_some() {
        let folder = job
            .limits
            .checkpoint
            .as_ref()
            .map_or_else(|| PathBuf::from("out"), |c| c.folder().to_path_buf());
        let plot = write_range_test(&folder, &outcome.rates, &outcome.losses)?;
        eprintln!("learning-rate range test: {}", plot.display());
        return Ok(());
    }
    eprintln!(
        "restorer: {} steps in {:.0} s ({:.2} it/s this run), smoothed loss {:.4}, {} parameters; weights {}",
        outcome.steps,
        outcome.elapsed_seconds,
        outcome.steps_run as f64 / outcome.elapsed_seconds.max(1e-9),
        outcome.smoothed_loss,
        outcome.parameters,
        args.output.display()
    );
    if args.quick_eval_photos > 0 && run.eval_photos.is_dir() {
        let mut eval_photos = load_photos(&run.eval_photos)?;
        eval_photos.truncate(args.quick_eval_photos);
        let encoder = load_encoder(&args.encoder, device)?;
        // A refiner is scored behind the restorer it was trained after, as the mesh runs it.
        let first = args
            .after
            .as_ref()
            .map(|weights| load_first_restorer(weights, device))
            .transpose()?;
        let mesh = MeshRestorer {
            restorer: first.as_ref().map_or(&restorer, |first| &first.network),
            restorer_ensemble: 1,
            refiner: first
                .is_some()
                .then(|| Refiner::ungated(&restorer, refiner_priors)),
            refiner_gate: None,
            fallback_refiner: None,
            fallback_gate: None,
            encoder: &encoder.network,
            view,
            priors: &priors,
            device,
            precision: clearair_backends::Precision::Fp32,
        };
        let settings = EvalSettings {
            crop: Some(args.quick_eval_crop),
            sheet_photos: 0,
            encoder_repeats: 0,
            ..EvalSettings::default()
        };
        let report = evaluate(&mesh, &eval_photos, &settings)?;
        println!("{}", markdown_table(&report, &job.name));
        restorer_manifest(&job, &outcome, metrics(&report))
            .write(&ModelManifest::path_for_weights(&args.output))?;
    }
    Ok(())
}

/// Parses `AxB` into two numbers; `form` names them for the error (e.g. `CROPxBATCH, as in
/// 128x4`).
fn pair<A: std::str::FromStr, B: std::str::FromStr>(
    flag: &str,
    form: &str,
    text: &str,
) -> anyhow::Result<(A, B)> {
    let parsed = text
        .split_once('x')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    parsed.with_context(|| format!("{flag}: `{text}` is not {form}"))
}

/// `clearair train gate`.
pub(crate) fn gate_command(args: &GateArgs) -> anyhow::Result<()> {
    let kind = DegradationKind::from_name(&args.kind)
        .with_context(|| format!("--kind {}: not a degradation kind", args.kind))?;
    if args.every == 0 || args.repeats == 0 || args.thresholds.is_empty() {
        anyhow::bail!("--every and --repeats must be at least 1 and --thresholds not empty");
    }
    let device = setup_device(&args.device, args.threads)?;
    let manifest = ModelManifest::read(&ModelManifest::path_for_weights(&args.restorer))?;
    let view = trained_encoder_view(&manifest)?;
    let gate_view = match &args.view {
        Some(gate_view) => parse_keyword::<GateView>("--view", gate_view)?,
        None => GateView::Served,
    };
    let encoder = load_encoder(&args.encoder, device)?;
    let photos = load_photos(&args.photos)?
        .into_iter()
        .step_by(args.every)
        .map(|photo| {
            Ok(crate::photos::Photo {
                image: crate::photos::fit_long_side(&photo.image, args.max_side)?,
                ..photo
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let readings = crate::encoder_eval::kind_readings(
        &encoder.network,
        &photos,
        device,
        (view, gate_view),
        kind,
        args.repeats,
    )?;
    println!(
        "p({}) from {} in the {} gate view (served: {}), {} photos of {} fitted to {} ({} draws each):\n",
        kind.name(),
        args.encoder.display(),
        gate_view.as_str(),
        view.as_str(),
        photos.len(),
        args.photos.display(),
        args.max_side,
        args.repeats
    );
    print!(
        "{}",
        crate::encoder_eval::readings_table(&readings, &args.thresholds)
    );
    Ok(())
}

/// `clearair train benchmark`.
pub(crate) fn benchmark_command(args: &BenchmarkArgs) -> anyhow::Result<()> {
    let device = setup_device(&args.device, args.threads)?;
    let configs = args
        .configs
        .iter()
        .filter(|name| name.as_str() != "none")
        .map(|name| Ok((name.clone(), restorer_config(name, 36)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let layouts = args
        .layouts
        .iter()
        .map(|text| {
            let (intra_op, shards) = pair("--layouts", "INTRAxSHARDS, as in 2x1", text)?;
            Ok(ThreadLayout { intra_op, shards })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let crops = args
        .crops
        .iter()
        .map(|text| pair("--crops", "CROPxBATCH, as in 128x4", text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let data = if args.window_sides.is_empty() {
        None
    } else {
        Some(DataBench {
            photos: Arc::new(load_photos(&args.train_photos)?),
            priors: Arc::new(CpuPriorBackends::load(&args.brisque_params)?),
            encoder: args.encoder.clone(),
            sides: args.window_sides.clone(),
            windows: args.windows,
        })
    };
    let report = run_benchmark(&BenchmarkSettings {
        device,
        configs,
        batch: args.batch,
        size: args.size,
        inference_size: args.inference_size,
        runs: args.runs,
        layouts,
        crops,
        data,
    })?;
    print!("{}", describe(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn default_python() -> PathBuf {
    let venv = PathBuf::from(".venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// The rows `--rows` names, as indices into [`ROWS`] (every row when none is named); an
/// unknown key is refused with the keys there are.
fn select_rows(keys: &[String]) -> anyhow::Result<Vec<usize>> {
    if keys.is_empty() {
        return Ok((0..ROWS.len()).collect());
    }
    keys.iter()
        .map(|key| {
            ROWS.iter().position(|row| row.key == key).with_context(|| {
                let known: Vec<&str> = ROWS.iter().map(|row| row.key).collect();
                format!("unknown row `{key}` (rows: {})", known.join(", "))
            })
        })
        .collect()
}

/// `clearair eval`.
pub(crate) fn eval_command(args: &EvalArgs) -> anyhow::Result<()> {
    // Checked first, so a mistyped key or setting costs nothing to find out.
    let rows = select_rows(&args.rows)?;
    for (flag, passes) in [
        ("--refiner-ensemble", args.refiner_ensemble),
        ("--restorer-ensemble", args.restorer_ensemble),
        (
            "--fallback-refiner-ensemble",
            args.fallback_refiner_ensemble,
        ),
    ] {
        clearair_backends::restoration::check_self_ensemble(passes)
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    }
    if args.update_manifest && args.refiner.is_none() && args.restorer_ensemble != 1 {
        anyhow::bail!(
            "--update-manifest writes the restorer's own figures: read them with one pass \
             (--restorer-ensemble 1), or name the --refiner whose manifest takes the pair's"
        );
    }
    let device = setup_device(&args.device, args.threads)?;
    let mut restorer = load_first_restorer(&args.restorer, device).context("--restorer")?;
    let mut refiner = args
        .refiner
        .as_ref()
        .map(|weights| load_restorer(weights, device))
        .transpose()?;
    let mut fallback_refiner = args
        .fallback_refiner
        .as_ref()
        .map(|weights| {
            let stage = load_restorer(weights, device)?;
            if let Some(problem) = stage.manifest.fallback_stage_problem() {
                anyhow::bail!("--fallback-refiner {}: {problem}", weights.display());
            }
            anyhow::Ok(stage)
        })
        .transpose()?;
    // The gate `--refiner-gate` names, else the refiner's manifest's; `--gate-view` moves
    // where either reads its probabilities.
    let refiner_gate = match (&args.refiner_gate, &refiner) {
        (Some(_), None) => anyhow::bail!("--refiner-gate needs --refiner"),
        (Some(text), Some(_)) => Some(RefinerGate::parse(text)?),
        (None, refiner) => refiner.as_ref().and_then(|r| r.manifest.refiner_gate),
    };
    let refiner_gate = match (&args.gate_view, refiner_gate) {
        (None, gate) => gate,
        (Some(_), None) => anyhow::bail!("--gate-view needs a gated refiner"),
        (Some(view), Some(gate)) => Some(RefinerGate {
            view: parse_keyword::<GateView>("--gate-view", view)?,
            ..gate
        }),
    };
    // The gate `--fallback-blur-gate` names (`none`: no gate), else the stage's manifest's.
    let fallback_gate = match (args.fallback_blur_gate.as_deref(), &fallback_refiner) {
        (Some(_), None) => anyhow::bail!("--fallback-blur-gate needs --fallback-refiner"),
        (Some("none"), Some(_)) => None,
        (Some(text), Some(_)) => Some(BlurGate::parse(text)?),
        (None, stage) => stage.as_ref().and_then(|stage| stage.manifest.blur_gate),
    };
    let view = trained_encoder_view(&restorer.manifest)?;
    let encoder = load_encoder(&args.encoder, device)?;
    let priors = CpuPriorBackends::load(&args.brisque_params)?;
    let photos = load_photos(&args.photos)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ffdnet = (!args.no_ffdnet).then(|| FfdnetReference {
        python: args.python.clone().unwrap_or_else(default_python),
        script: args.ffdnet_script.clone(),
        workdir: args.out.join("ffdnet"),
    });
    let settings = EvalSettings {
        crop: args.crop,
        rows,
        sheet_photos: args.sheet_photos,
        ffdnet,
        encoder_repeats: args.encoder_repeats,
        show_progress: true,
        neutral: PriorDropout {
            quality: args.neutral.iter().any(|p| p == "quality"),
            masks: args.neutral.iter().any(|p| p == "masks"),
            embeddings: args.neutral.iter().any(|p| p == "embeddings"),
        },
    };
    let precision = clearair_backends::Precision::bf16_if(args.bf16);
    precision.convert(&mut restorer.store);
    for stage in [&mut refiner, &mut fallback_refiner].into_iter().flatten() {
        precision.convert(&mut stage.store);
    }
    let mesh = MeshRestorer {
        restorer: &restorer.network,
        restorer_ensemble: args.restorer_ensemble,
        refiner: refiner.as_ref().map(|refiner| {
            Refiner::ungated(
                &refiner.network,
                refiner.manifest.refiner_priors.unwrap_or_default(),
            )
            .with_ensemble(args.refiner_ensemble)
        }),
        refiner_gate,
        fallback_refiner: fallback_refiner.as_ref().map(|stage| {
            Refiner::ungated(&stage.network, RefinerPriors::Neutral)
                .with_ensemble(args.fallback_refiner_ensemble)
        }),
        fallback_gate,
        encoder: &encoder.network,
        view,
        priors: &priors,
        device,
        precision,
    };
    let model = match (&refiner, refiner_gate) {
        (Some(refiner), None) => {
            format!("{} then {}", restorer.manifest.name, refiner.manifest.name)
        }
        (Some(refiner), Some(gate)) => format!(
            "{} then {} (gated on {} from {} to {}{})",
            restorer.manifest.name,
            refiner.manifest.name,
            gate.kind.name(),
            gate.low,
            gate.high,
            match gate.view {
                GateView::Served => String::new(),
                view => format!(", read in {}", view.as_str()),
            }
        ),
        (None, _) => restorer.manifest.name.clone(),
    };
    let model = match args.restorer_ensemble {
        1 => model,
        passes => format!("{model}, restorer self-ensemble of {passes}"),
    };
    let model = match args.refiner_ensemble {
        1 => model,
        passes => format!("{model}, refiner self-ensemble of {passes}"),
    };
    let model = match &fallback_refiner {
        None => model,
        Some(stage) => format!(
            "{model}; with every prior neutral, then {}{}{}",
            stage.manifest.name,
            match args.fallback_refiner_ensemble {
                1 => String::new(),
                passes => format!(" (self-ensemble of {passes})"),
            },
            match fallback_gate {
                None => String::new(),
                Some(gate) => format!(
                    ", gated on the upload's blur effect from {} to {}",
                    gate.low, gate.high
                ),
            }
        ),
    };
    let model = if args.neutral.is_empty() {
        model
    } else {
        format!("{model} ({} neutral)", args.neutral.join(", "))
    };
    let report = evaluate(&mesh, &photos, &settings)?;
    let table = markdown_table(&report, &model);
    println!("{table}");
    std::fs::write(args.out.join("eval.md"), &table)?;
    std::fs::write(
        args.out.join("eval.json"),
        serde_json::to_string_pretty(&to_json(&report, &model))? + "\n",
    )?;
    if args.sheet_photos > 0 {
        for row in &report.rows {
            write_png(
                &row_sheet(row, &model)?,
                &args.out.join(format!("sheet-{}.png", row.row.key)),
            )?;
        }
        let index = photos
            .iter()
            .position(|p| p.name.contains("coffee"))
            .unwrap_or(0);
        write_png(
            &synthesis_sheet(&photos[index].image, index)?,
            &args.out.join("synthesis.png"),
        )?;
    }
    eprintln!(
        "eval: {:.0} s; table, JSON and sheets in {}",
        report.seconds,
        args.out.display()
    );
    if args.update_manifest {
        // Read the manifests again: an evaluation takes minutes to hours on a CPU, and only the
        // metrics are ours to change (the rest may have been edited meanwhile).
        let path = ModelManifest::path_for_weights(args.refiner.as_ref().unwrap_or(&args.restorer));
        let mut manifest = ModelManifest::read(&path)?;
        manifest.metrics.extend(metrics(&report));
        if args.refiner.is_some() {
            // The figures are the pair's, as served with these passes.
            manifest.metrics.insert(
                "eval_restorer_ensemble".to_owned(),
                f64::from(args.restorer_ensemble),
            );
            manifest.metrics.insert(
                "eval_refiner_ensemble".to_owned(),
                f64::from(args.refiner_ensemble),
            );
        }
        manifest.write(&path)?;
        if let Some(weights) = &args.fallback_refiner {
            // The fallback rows are the stage's own: every row, as the mesh serves them,
            // behind the gate they were read through.
            let path = ModelManifest::path_for_weights(weights);
            let mut manifest = ModelManifest::read(&path)?;
            manifest.blur_gate = fallback_gate;
            manifest.metrics.extend(metrics(&report));
            manifest.metrics.insert(
                "eval_fallback_refiner_ensemble".to_owned(),
                f64::from(args.fallback_refiner_ensemble),
            );
            manifest.write(&path)?;
        }
        if !report.encoder.is_empty() {
            let path = ModelManifest::path_for_weights(&args.encoder);
            let mut manifest = ModelManifest::read(&path)?;
            manifest.metrics.extend(accuracy_metrics(&report.encoder));
            manifest.write(&path)?;
        }
        eprintln!("metrics written into the manifests");
    }
    Ok(())
}

/// `clearair degrade`.
pub(crate) fn degrade_command(args: &DegradeArgs) -> anyhow::Result<()> {
    let kinds = args
        .kind
        .iter()
        .map(|kind| kind.parse::<KindSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let image = read_photo(&args.input)?;
    let framing = Framing {
        max_side: args.max_side,
        centre_crop: args.centre_crop,
    };
    let (degraded, recipe) = degrade_image(&image, &kinds, args.seed, framing)?;
    write_png(&degraded, &args.output)?;
    eprintln!("{}: {recipe:?}", args.output.display());
    if let Some(reference) = &args.reference {
        write_png(&frame(&image, framing)?, reference)?;
        eprintln!("{}: the clean reference", reference.display());
    }
    Ok(())
}

/// The pixel loss of `--pixel-loss` with `--psnr-ceiling`, which only the capped loss takes,
/// `--frequency-weight` and `--keep-weight`.
fn pixel_objective(
    keyword: &str,
    ceiling_db: f64,
    frequency_weight: f64,
    keep_weight: f64,
) -> anyhow::Result<PixelObjective> {
    let loss = parse_keyword::<PixelLoss>("--pixel-loss", keyword)?;
    anyhow::ensure!(
        ceiling_db.is_finite() && (20.0..=100.0).contains(&ceiling_db),
        "--psnr-ceiling is in dB between 20 and 100, got {ceiling_db}"
    );
    anyhow::ensure!(
        ceiling_db == PSNR_LOSS_CEILING_DB || loss == PixelLoss::PsnrCapped,
        "--psnr-ceiling applies to --pixel-loss psnr-capped only, not `{keyword}`"
    );
    anyhow::ensure!(
        frequency_weight.is_finite() && (0.0..=10.0).contains(&frequency_weight),
        "--frequency-weight is between 0 and 10, got {frequency_weight}"
    );
    anyhow::ensure!(
        keep_weight.is_finite() && (0.0..=10.0).contains(&keep_weight),
        "--keep-weight is between 0 and 10, got {keep_weight}"
    );
    Ok(PixelObjective {
        loss,
        ceiling_db,
        frequency_weight,
        keep_weight,
        keep_ceiling_db: KEEP_LOSS_CEILING_DB,
    })
}

/// The five per-kind multipliers `flag` was given (noise, haze, rain, blur, low light), each
/// finite and ≥ 0; none given: 1 for every kind.
fn kind_multipliers(flag: &str, given: &[f64]) -> anyhow::Result<[f64; 5]> {
    match given {
        [] => Ok([1.0; 5]),
        [a, b, c, d, e] if given.iter().all(|m| m.is_finite() && *m >= 0.0) => {
            Ok([*a, *b, *c, *d, *e])
        }
        other => anyhow::bail!(
            "{flag} takes five multipliers ≥ 0 (noise, haze, rain, blur, low_light), got \
             {other:?}"
        ),
    }
}

/// The per-kind multipliers of the loss term `term` (`--TERM-kinds`), which only a term
/// that is on (`--TERM-weight` above 0) can take.
fn term_multipliers(term: &str, given: &[f64], weight: f64) -> anyhow::Result<[f64; 5]> {
    let multipliers = kind_multipliers(&format!("--{term}-kinds"), given)?;
    anyhow::ensure!(
        multipliers == [1.0; 5] || weight > 0.0,
        "--{term}-kinds weighs the {term} loss per kind: give --{term}-weight as well"
    );
    Ok(multipliers)
}

/// `objective` with `--keep-ceiling`: 20–60 dB, and only beside a `--keep-weight`.
fn with_keep_ceiling(
    objective: PixelObjective,
    keep_ceiling_db: f64,
) -> anyhow::Result<PixelObjective> {
    anyhow::ensure!(
        keep_ceiling_db.is_finite() && (20.0..=KEEP_LOSS_CEILING_DB).contains(&keep_ceiling_db),
        "--keep-ceiling is in dB between 20 and {KEEP_LOSS_CEILING_DB}, got {keep_ceiling_db}"
    );
    anyhow::ensure!(
        keep_ceiling_db == KEEP_LOSS_CEILING_DB || objective.keep_weight > 0.0,
        "--keep-ceiling caps the keep loss: give --keep-weight as well"
    );
    Ok(PixelObjective {
        keep_ceiling_db,
        ..objective
    })
}

/// Parses a kebab-case keyword into one of `T`'s variants (its serde names).
fn parse_keyword<T: serde::de::DeserializeOwned>(flag: &str, value: &str) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .with_context(|| format!("{flag} `{value}` is not one of its keywords"))
}

/// The restorer's data and recipe in words, for its manifest.
fn restorer_data_detail(
    args: &RestorerArgs,
    run: &RunArgs,
    pixel: PixelObjective,
    crops: &CropSchedule,
    windows: &WindowSettings,
    pool: PoolSchedule,
) -> String {
    let start = match &run.init {
        Some(init) => format!("initialised from {}", init.display()),
        None => format!("starting point {}", args.start),
    };
    let start = match &args.after {
        Some(first) => format!(
            "a refiner of {}'s output ({} of the windows restored by it on neutral priors){}{}, \
             reading {} priors, {start}",
            first.display(),
            args.after_neutral,
            if args.sees_upload {
                " and of the upload beside it, its keep loss against the better of the two"
            } else {
                ""
            },
            if args.hold_kinds.is_empty() {
                String::new()
            } else {
                format!(
                    ", windows of {} alone with that output as their target",
                    args.hold_kinds.join("/")
                )
            },
            args.after_priors
        ),
        None => start,
    };
    let crops = crops
        .stages()
        .iter()
        .map(|s| format!("from step {}: {}×{}²", s.from_step, s.batch, s.crop))
        .collect::<Vec<_>>()
        .join(", ");
    let kinds: Vec<&str> = windows.mix.kinds.iter().map(|k| k.name()).collect();
    let weights = if windows.mix.weights.is_empty() {
        "equal weights".to_owned()
    } else {
        format!("weights {:?}", windows.mix.weights)
    };
    format!(
        "{start}; crops {crops} of degraded windows of {}–{}² (random flips/rot90; kinds {} with \
         {weights}, {:?} parameter ranges; clean {:.2}, two-kind mixtures {:.2}); priors from the \
         embedded backends on each whole window (BRISQUE, graph segmentation, the degradation \
         encoder on its 256 shrink), cached in a pool of {} windows refreshed at {} per step; \
         {:.2} of the clean photos darkened in their mid-tones (γ 1.5–{}); each prior neutral with \
         probability {:.2}, all three with {:.2}{}{}{}{}; loss {}{}{}{}",
        windows.min_side,
        windows.max_side,
        kinds.join("/"),
        windows.mix.ranges,
        windows.mix.clean,
        windows.mix.mixture,
        pool.size,
        pool.per_step,
        windows.dark_share,
        windows.dark_gamma_max,
        args.prior_dropout,
        args.all_neutral,
        if args.all_neutral_kinds.is_empty() {
            String::new()
        } else {
            format!(
                " (times {:?} for noise/haze/rain/blur/low light)",
                args.all_neutral_kinds
            )
        },
        if args.all_neutral_dark != 1.0 {
            format!(
                ", times {} for dark targets without noise or haze (clean mean below {})",
                args.all_neutral_dark,
                crate::windows::DARK_TARGET_MEAN
            )
        } else {
            String::new()
        },
        if args.embedding_dropout > 0.0 {
            format!(", F_c/F_d alone with {:.2} more", args.embedding_dropout)
        } else {
            String::new()
        },
        if args.embedding_misread > 0.0 {
            format!(", F_d misread with {:.2}", args.embedding_misread)
        } else {
            String::new()
        },
        match pixel.loss {
            PixelLoss::PsnrCapped => format!("psnr-capped at {} dB", pixel.ceiling_db),
            _ => args.pixel_loss.clone(),
        },
        if pixel.frequency_weight > 0.0 {
            let kinds = if args.frequency_kinds.is_empty() {
                String::new()
            } else {
                format!(
                    " (times {:?} for noise/haze/rain/blur/low light)",
                    args.frequency_kinds
                )
            };
            format!(" + {}·frequency L1{kinds}", pixel.frequency_weight)
        } else {
            String::new()
        },
        if pixel.keep_weight > 0.0 {
            let cap = if pixel.keep_ceiling_db == KEEP_LOSS_CEILING_DB {
                String::new()
            } else {
                format!(", both capped at {} dB", pixel.keep_ceiling_db)
            };
            let kinds = if args.keep_kinds.is_empty() {
                String::new()
            } else {
                format!(
                    ", times {:?} for noise/haze/rain/blur/low light",
                    args.keep_kinds
                )
            };
            format!(
                " + {}·keep (dB below the input{cap}{kinds})",
                pixel.keep_weight
            )
        } else {
            String::new()
        },
        if args.no_icrm {
            " (ICRM off)".to_owned()
        } else {
            format!(" + 0.25·0.05·ICRM every {} step(s)", args.icrm_every.max(1))
        }
    )
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_owned())
}

/// `clearair profile`.
pub(crate) fn profile_command(args: &crate::cli::ProfileArgs) -> anyhow::Result<()> {
    let device = setup_device("cpu", args.threads)?;
    let mut reports = Vec::new();
    for &size in &args.sizes {
        let settings = crate::profile::ProfileSettings {
            restorer: args.restorer.clone(),
            encoder: args.encoder.clone(),
            brisque_params: args.brisque_params.clone(),
            image: args.image.clone(),
            size,
            runs: args.runs,
            tiling: clearair_backends::restoration::Tiling::new(args.tile_size, args.tile_overlap)?,
            precision: clearair_backends::Precision::bf16_if(args.bf16),
            device,
        };
        let report = crate::profile::run_profile(&settings)
            .with_context(|| format!("profiling the restorer at {size}²"))?;
        println!("{}", crate::profile::describe_profile(&report));
        reports.push(report);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_chosen_by_key_fallback_and_clean_rows_included() {
        assert_eq!(select_rows(&[]).unwrap().len(), ROWS.len());
        let keys = ["blur", "fallback_blur", "clean"].map(String::from);
        let chosen: Vec<&str> = select_rows(&keys)
            .unwrap()
            .into_iter()
            .map(|index| ROWS[index].key)
            .collect();
        assert_eq!(chosen, ["blur", "fallback_blur", "clean"]);
        let error = select_rows(&["fallback-blur".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("unknown row `fallback-blur` (rows: noise15, noise25"),
            "{error}"
        );
        assert!(error.ends_with("fallback_low_light)"), "{error}");
    }

    #[test]
    fn pairs_parse_and_name_their_form() {
        let (crop, batch): (i64, i64) = pair("--crops", "CROPxBATCH, as in 128x4", "96x8").unwrap();
        assert_eq!((crop, batch), (96, 8));
        for bad in ["128", "x4", "128x", "axb"] {
            let error = pair::<i64, i64>("--crops", "CROPxBATCH, as in 128x4", bad)
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("--crops: `{bad}` is not CROPxBATCH, as in 128x4")
            );
        }
    }

    #[test]
    fn kind_weights_the_draw_cannot_use_are_refused_by_name() {
        let all = DegradationKind::ALL;
        assert!(check_kind_weights(&[], &all).is_ok());
        assert!(check_kind_weights(&[1.0, 3.0, 1.0, 0.0, 1.0], &all).is_ok());
        for bad in [
            vec![1.0, 3.0],
            vec![1.0, -1.0, 1.0, 1.0, 1.0],
            vec![1.0, f64::NAN, 1.0, 1.0, 1.0],
            vec![1.0, f64::INFINITY, 1.0, 1.0, 1.0],
            vec![0.0; 5],
        ] {
            let error = check_kind_weights(&bad, &all).unwrap_err().to_string();
            assert!(
                error.starts_with("--kind-weights") && error.contains("noise, haze"),
                "{bad:?}: {error}"
            );
        }
        // Fewer kinds (`--kinds blur`) take as many weights.
        assert!(check_kind_weights(&[2.0], &[DegradationKind::Blur]).is_ok());
    }

    #[test]
    fn only_a_stage_behind_a_restorer_sees_the_upload() {
        let plain = ClearAirConfig::compact(36);
        let stage = seeing_the_upload(plain.clone(), true, true).unwrap();
        assert!(stage.sees_upload);
        assert_eq!(stage.input_channels(), 6);
        assert_eq!(
            seeing_the_upload(plain.clone(), false, true).unwrap(),
            plain
        );
        assert_eq!(
            seeing_the_upload(plain.clone(), false, false).unwrap(),
            plain
        );
        let error = seeing_the_upload(plain, true, false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--after"), "{error}");
    }

    #[test]
    fn a_neutral_refiner_trains_on_neutral_priors_only() {
        use RefinerPriors::{Neutral, Served};
        assert!(check_refiner_sampling(Neutral, 1.0, &[], 1.0, 0.25).is_ok());
        assert!(check_refiner_sampling(Neutral, 1.0, &[1.0, 2.0, 1.0, 1.0, 1.0], 3.0, 0.0).is_ok());
        for (all, kinds, dark) in [
            (0.25, vec![], 1.0),
            // Clean windows take --all-neutral alone.
            (0.5, vec![2.0; 5], 2.0),
            (1.0, vec![1.0, 1.0, 0.5, 1.0, 1.0], 1.0),
            (1.0, vec![], 0.0),
        ] {
            let error = check_refiner_sampling(Neutral, all, &kinds, dark, 0.25)
                .unwrap_err()
                .to_string();
            assert!(error.contains("give --all-neutral 1"), "{error}");
            // A refiner on served priors drops them as a restorer does.
            assert!(check_refiner_sampling(Served, all, &kinds, dark, 0.25).is_ok());
        }
        for priors in [Neutral, Served] {
            for share in [-0.1, 1.5, f64::NAN] {
                let error = check_refiner_sampling(priors, 1.0, &[], 1.0, share)
                    .unwrap_err()
                    .to_string();
                assert!(
                    error.contains("--after-neutral is a probability"),
                    "{error}"
                );
            }
        }
        let error = parse_keyword::<RefinerPriors>("--after-priors", "some")
            .unwrap_err()
            .to_string();
        assert!(error.contains("--after-priors `some`"), "{error}");
    }

    #[test]
    fn channels_take_four_widths_the_configuration_accepts() {
        let compact = ClearAirConfig::compact(36);
        let wide = with_channels(compact.clone(), &[32, 48, 64, 96]).unwrap();
        assert_eq!(wide.channels, [32, 48, 64, 96]);
        assert_eq!(wide.blocks, compact.blocks);
        let error = with_channels(compact.clone(), &[32, 48, 64])
            .unwrap_err()
            .to_string();
        assert!(error.contains("four widths"), "{error}");
        // 66 does not split into level 3's four heads; 0 is no width.
        for bad in [[32, 48, 66, 96], [0, 48, 64, 96]] {
            let error = with_channels(compact.clone(), &bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains("--channels"), "{error}");
            assert!(error.contains("channels cannot be split"), "{error}");
        }
    }

    #[test]
    fn a_grown_network_needs_its_refinement_blocks_named() {
        let folder = tempfile::tempdir().unwrap();
        let weights = folder.path().join("grown.safetensors");
        let committed =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/clearair-compact.json");
        let mut manifest = ModelManifest::read(&committed).unwrap();
        let NetworkConfig::ClearAir(config) = &mut manifest.network else {
            panic!("the committed restorer's manifest names another network");
        };
        assert_eq!(config.refinement_blocks, 1);
        config.refinement_blocks = 3;
        manifest
            .write(&ModelManifest::path_for_weights(&weights))
            .unwrap();
        // The preset's count is refused, naming the flag and the count to give.
        let error = refinement_blocks(None, 1, Some(&weights))
            .unwrap_err()
            .to_string();
        assert!(error.contains("give --refinement-blocks 3"), "{error}");
        assert_eq!(refinement_blocks(Some(3), 1, Some(&weights)).unwrap(), 3);
        // Without --init, or weights without a manifest, the count is the flag's or the preset's.
        assert_eq!(refinement_blocks(None, 4, None).unwrap(), 4);
        let bare = folder.path().join("bare.safetensors");
        assert_eq!(refinement_blocks(Some(2), 1, Some(&bare)).unwrap(), 2);
        for bad in [0, 17] {
            let error = refinement_blocks(Some(bad), 1, None)
                .unwrap_err()
                .to_string();
            assert!(error.contains("outside 1–16"), "{error}");
        }
    }

    #[test]
    fn kind_multipliers_are_five_and_none_negative() {
        assert_eq!(kind_multipliers("--keep-kinds", &[]).unwrap(), [1.0; 5]);
        assert_eq!(
            kind_multipliers("--keep-kinds", &[1.0, 0.0, 1.0, 2.5, 1.0]).unwrap(),
            [1.0, 0.0, 1.0, 2.5, 1.0]
        );
        for bad in [
            vec![1.0, 0.0, 1.0, 1.0],
            vec![1.0, -1.0, 1.0, 1.0, 1.0],
            vec![1.0, f64::NAN, 1.0, 1.0, 1.0],
        ] {
            let error = kind_multipliers("--keep-kinds", &bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains("--keep-kinds takes five"), "{error}");
        }
    }

    #[test]
    fn held_kinds_are_named_and_need_a_first_network() {
        let rain = ["rain".to_owned()];
        assert_eq!(held_kinds(&rain, true).unwrap(), [DegradationKind::Rain]);
        assert!(held_kinds(&[], false).unwrap().is_empty());
        let error = held_kinds(&rain, false).unwrap_err().to_string();
        assert!(error.contains("give --after"), "{error}");
        let error = format!(
            "{:#}",
            held_kinds(&["drizzle".to_owned()], true).unwrap_err()
        );
        assert!(
            error.contains("unknown degradation kind `drizzle`"),
            "{error}"
        );
    }

    #[test]
    fn per_kind_multipliers_need_their_term_on() {
        let blur_only = [0.0, 0.0, 0.0, 1.0, 0.0];
        assert_eq!(
            term_multipliers("frequency", &blur_only, 5.0).unwrap(),
            blur_only
        );
        // None given: every kind alike, whether the term is on or not.
        assert_eq!(term_multipliers("frequency", &[], 0.0).unwrap(), [1.0; 5]);
        for term in ["keep", "frequency"] {
            let error = term_multipliers(term, &blur_only, 0.0)
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("give --{term}-weight")), "{error}");
        }
        let error = term_multipliers("frequency", &[1.0, 1.0], 5.0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--frequency-kinds takes five"), "{error}");
    }

    #[test]
    fn the_psnr_ceiling_goes_with_the_capped_loss_only() {
        let lowered = pixel_objective("psnr-capped", 32.0, 0.0, 0.0).unwrap();
        assert_eq!(lowered.loss, PixelLoss::PsnrCapped);
        assert_eq!(lowered.ceiling_db, 32.0);
        // The default ceiling is accepted with every loss (it is what no flag means).
        assert_eq!(
            pixel_objective("l1", PSNR_LOSS_CEILING_DB, 0.0, 0.0).unwrap(),
            PixelLoss::L1.into()
        );
        let other = pixel_objective("psnr", 32.0, 0.0, 0.0)
            .unwrap_err()
            .to_string();
        assert!(other.contains("psnr-capped only"), "{other}");
        for bad in [f64::NAN, 5.0, 500.0] {
            let error = pixel_objective("psnr-capped", bad, 0.0, 0.0)
                .unwrap_err()
                .to_string();
            assert!(error.contains("--psnr-ceiling"), "{error}");
        }
        let weighted = pixel_objective("psnr-capped", PSNR_LOSS_CEILING_DB, 0.1, 0.0).unwrap();
        assert_eq!(weighted.frequency_weight, 0.1);
        for bad in [f64::NAN, -0.1, 11.0] {
            let error = pixel_objective("l1", PSNR_LOSS_CEILING_DB, bad, 0.0)
                .unwrap_err()
                .to_string();
            assert!(error.contains("--frequency-weight"), "{error}");
        }
        let keeping = pixel_objective("psnr-capped", PSNR_LOSS_CEILING_DB, 0.0, 1.0).unwrap();
        assert_eq!(keeping.keep_weight, 1.0);
        for bad in [f64::NAN, -0.1, 11.0] {
            let error = pixel_objective("l1", PSNR_LOSS_CEILING_DB, 0.0, bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains("--keep-weight"), "{error}");
        }
        let capped = with_keep_ceiling(keeping, 40.0).unwrap();
        assert_eq!((capped.keep_weight, capped.keep_ceiling_db), (1.0, 40.0));
        assert_eq!(keeping.keep_ceiling_db, KEEP_LOSS_CEILING_DB);
        for bad in [f64::NAN, 10.0, 61.0] {
            let error = with_keep_ceiling(keeping, bad).unwrap_err().to_string();
            assert!(error.contains("--keep-ceiling"), "{error}");
        }
        let unweighted = pixel_objective("psnr-capped", PSNR_LOSS_CEILING_DB, 0.0, 0.0).unwrap();
        let error = with_keep_ceiling(unweighted, 40.0).unwrap_err().to_string();
        assert!(error.contains("--keep-weight"), "{error}");
        let unknown = pixel_objective("l3", PSNR_LOSS_CEILING_DB, 0.0, 0.0).unwrap_err();
        assert!(
            unknown.to_string().contains("--pixel-loss `l3`"),
            "{unknown}"
        );
    }
}
