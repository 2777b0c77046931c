//! Training the ClearAIR restorer: a pixel loss (L1 or per-image PSNR) + ICRM on crops of
//! cached degraded windows with the priors the mesh computes for them, the batch split
//! across threads ([`crate::step`]), AdamW and a warm-up + cosine learning rate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clearair_backends::degradation::EncoderView;
use clearair_backends::restoration::Refiner;
use clearair_model::{
    ClearAirConfig, ClearAirNet, DegradationEncoder, IcrmConfig, LossDraws, ModelManifest,
    NetworkConfig, PSNR_LOSS_CEILING_DB, PixelObjective, StartingPoint, parameter_count,
    save_weights,
};
use serde_json::json;
use tch::{Device, nn};

use crate::average::WeightAverage;
use crate::checkpoint::{Checkpoint, CheckpointState};
use crate::data::{RestorerBatch, RestorerSample, RestorerSampler};
use crate::error::{Result, TrainError};
use crate::eval::{EvalSettings, evaluate};
use crate::history::{EvalRecord, History};
use crate::mesh::MeshRestorer;
use crate::networks::Loaded;
use crate::optimizer::{AdamW, AdamWConfig, LearningRateSchedule};
use crate::photos::Photo;
use crate::prefetch::{BatchMaker, Prefetcher};
use crate::priors::CpuPriorBackends;
use crate::progress::{SmoothedValue, TrainingProgress};
use crate::seeding::{Purpose, keyed_rng, torch_seed};
use crate::step::accumulate_gradients;

/// Decay of the smoothed loss shown and stored.
const LOSS_SMOOTHING: f64 = 0.98;

/// When and where to stop and save.
#[derive(Clone, Debug, PartialEq)]
pub struct RunLimits {
    /// Optimiser steps to reach; the learning-rate schedule spans them.
    pub iterations: u64,
    /// End this invocation after this step without changing the schedule (a run split in
    /// parts, continued later with `resume`).
    pub stop_at: Option<u64>,
    /// Stop (cleanly, writing everything) once training has run this long in total,
    /// including time before a resume; the cosine schedule then runs over the budget.
    pub time_budget: Option<Duration>,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// The checkpoint folder, if checkpoints are kept.
    pub checkpoint: Option<Checkpoint>,
    /// Continue from the checkpoint instead of starting afresh.
    pub resume: bool,
}

impl RunLimits {
    /// How far training is, 0 to 1: of its iterations or of its time budget, whichever is
    /// further (so the learning rate reaches its floor as the budget runs out).
    pub fn progress(&self, step: u64, elapsed: Duration) -> f64 {
        let by_steps = step as f64 / self.iterations.max(1) as f64;
        let by_time = self.time_budget.map_or(0.0, |budget| {
            elapsed.as_secs_f64() / budget.as_secs_f64().max(1e-9)
        });
        by_steps.max(by_time).min(1.0)
    }

    /// Where a run starts: from the checkpoint when resuming (step, training time so far and
    /// smoothed loss restored into `store` and `optimizer`, with the weight average's update
    /// count if the checkpoint keeps one), else at step 0 from `init`'s weights or the random
    /// initialisation (which the caller has already shaped, e.g. by a [`StartingPoint`]).
    /// `network` and `settings` must match the checkpoint's. `widened` names the one variable
    /// that may read more input channels than `init`'s (the added ones starting at zero; see
    /// [`clearair_model::load_weights_widening`]).
    pub fn start(
        &self,
        network: &str,
        settings: &serde_json::Value,
        init: Option<&std::path::Path>,
        widened: Option<&str>,
        store: &mut nn::VarStore,
        optimizer: &mut AdamW,
    ) -> Result<(u64, Duration, SmoothedValue, Option<u64>)> {
        match (&self.checkpoint, self.resume) {
            (Some(checkpoint), true) => {
                let state = checkpoint.load(network, settings, store, optimizer)?;
                Ok((
                    state.step,
                    Duration::from_secs_f64(state.elapsed_seconds),
                    SmoothedValue::starting_at(LOSS_SMOOTHING, state.smoothed_loss),
                    state.average_updates,
                ))
            }
            (None, true) => Err(TrainError::Setting(
                "--resume needs a checkpoint folder".into(),
            )),
            _ => {
                if let Some(init) = init {
                    clearair_model::load_weights_widening(store, init, widened)?;
                }
                Ok((0, Duration::ZERO, SmoothedValue::new(LOSS_SMOOTHING), None))
            }
        }
    }

    /// Whether to stop before taking step `step` after `elapsed` of training.
    pub fn should_stop(&self, step: u64, elapsed: Duration) -> bool {
        step >= self.iterations
            || self.stop_at.is_some_and(|stop| step >= stop)
            || self.time_budget.is_some_and(|budget| elapsed >= budget)
    }
}

/// Everything a restorer training run needs, already loaded.
pub struct RestorerTraining {
    /// Name written into the manifest, e.g. `clearair-compact`.
    pub name: String,
    /// The network's shape.
    pub config: ClearAirConfig,
    /// Draws the batches (crops of cached windows with their priors).
    pub sampler: RestorerSampler,
    /// The manifest's `backends`.
    pub backends: clearair_model::PriorBackends,
    /// How a new network starts (ignored with `init` or when resuming).
    pub starting_point: StartingPoint,
    /// Start from these weights (same configuration) instead of a new network; the optimiser
    /// and schedule start afresh. Ignored when resuming.
    pub init: Option<PathBuf>,
    /// The pixel loss and its ceiling.
    pub pixel_loss: PixelObjective,
    /// ICRM settings (`enabled: false` is the ablation).
    pub icrm: IcrmConfig,
    /// Add the ICRM term on every this many steps only (1: every step).
    pub icrm_every: u64,
    /// Learning-rate schedule.
    pub schedule: LearningRateSchedule,
    /// Optimiser settings.
    pub adamw: AdamWConfig,
    /// Global gradient-norm clip, if any.
    pub clip_grad_norm: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (see
    /// [`crate::average`]): it is what the progress evaluation measures, what checkpoints
    /// keep beside the weights (`average.safetensors`) and what `output` receives. The
    /// decay may change across a resume; an average missing from the checkpoint starts at
    /// the resumed weights.
    pub weight_average: Option<f64>,
    /// The run's seed (network initialisation, data, augmentation).
    pub seed: u64,
    /// Where the network runs.
    pub device: Device,
    /// Threads the batch is split across (see [`crate::step`]).
    pub shards: usize,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Stop and checkpoint settings.
    pub limits: RunLimits,
    /// Where the final weights go (`.safetensors`; the manifest is written beside them).
    pub output: PathBuf,
    /// The data and split, in words, for the manifest.
    pub data_description: String,
    /// The exact command line, for the manifest.
    pub command: String,
    /// Evaluate the network every so often while it trains (the learning curves).
    pub progress_eval: Option<ProgressEval>,
    /// A refiner's gate, written into the manifest for the mesh (it does not change
    /// training).
    pub refiner_gate: Option<clearair_model::RefinerGate>,
}

/// A small evaluation run every `every` steps during training: the protocol's rows on
/// centred crops of the held-out photos, appended to the history's `eval-history.csv`.
pub struct ProgressEval {
    /// Steps between evaluations.
    pub every: u64,
    /// The held-out photos.
    pub photos: Vec<Photo>,
    /// Side of their centred crops.
    pub crop: u32,
    /// BRISQUE and the graph segmenter.
    pub priors: Arc<CpuPriorBackends>,
    /// The degradation encoder (on the training device).
    pub encoder: DegradationEncoder,
    /// What of an image it sees (the view the run trains on).
    pub view: EncoderView,
    /// The restorer a refiner trains after (`--after`), which runs first in the evaluation.
    pub first_stage: Option<Loaded<ClearAirNet>>,
    /// The priors the refiner reads behind it.
    pub refiner_priors: clearair_model::RefinerPriors,
}

impl ProgressEval {
    fn run(&self, network: &ClearAirNet, device: Device, step: u64) -> Result<EvalRecord> {
        // A refiner is scored behind the restorer it trains after, as the mesh runs it.
        let mesh = MeshRestorer {
            restorer: self
                .first_stage
                .as_ref()
                .map_or(network, |first| &first.network),
            restorer_ensemble: 1,
            refiner: self
                .first_stage
                .is_some()
                .then(|| Refiner::ungated(network, self.refiner_priors)),
            refiner_gate: None,
            fallback_refiner: None,
            fallback_gate: None,
            encoder: &self.encoder,
            view: self.view,
            priors: &self.priors,
            device,
            precision: clearair_backends::Precision::Fp32,
        };
        let settings = EvalSettings {
            crop: Some(self.crop),
            sheet_photos: 0,
            encoder_repeats: 0,
            show_progress: false,
            ..EvalSettings::default()
        };
        let report = evaluate(&mesh, &self.photos, &settings)?;
        Ok(EvalRecord {
            step,
            rows: report
                .rows
                .iter()
                .map(|row| (row.row.key.to_owned(), row.restored().0, row.input().0))
                .collect(),
        })
    }
}

impl std::fmt::Debug for RestorerTraining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestorerTraining")
            .field("name", &self.name)
            .field("crops", &self.sampler.settings().crops)
            .field("device", &self.device)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingOutcome {
    /// Steps completed in total (including those before a resume).
    pub steps: u64,
    /// Steps this invocation ran.
    pub steps_run: u64,
    /// Smoothed loss at the end.
    pub smoothed_loss: f64,
    /// The raw loss of every step this invocation ran.
    pub losses: Vec<f64>,
    /// The learning rate of every step this invocation ran.
    pub rates: Vec<f64>,
    /// Wall-clock seconds of training in total (including before a resume).
    pub elapsed_seconds: f64,
    /// Trainable parameters.
    pub parameters: i64,
}

/// Trains the restorer, writes its weights and manifest, and returns the store, the network
/// and the outcome (the caller adds evaluation figures to the manifest).
pub fn train_restorer(
    job: &RestorerTraining,
) -> Result<(nn::VarStore, ClearAirNet, TrainingOutcome)> {
    let view = job.sampler.windows().encoder_view();
    if job.backends.degradation.name != view.backend_name() {
        return Err(TrainError::Setting(format!(
            "the windows' F_c/F_d come from the `{}` view, but the manifest would name the `{}` \
             degradation backend",
            view.backend_name(),
            job.backends.degradation.name
        )));
    }
    tch::manual_seed(torch_seed(job.seed, Purpose::RestorerStep, u64::MAX));
    let mut store = nn::VarStore::new(job.device);
    let network = ClearAirNet::new(&store.root(), &job.config);
    job.starting_point.apply(&store);
    let mut optimizer = AdamW::new(&store, job.adamw);
    let settings = checkpoint_settings(job);
    let (start, previous_elapsed, mut smoothed, average_updates) = job.limits.start(
        "restorer",
        &settings,
        job.init.as_deref(),
        // A stage that sees the upload may start from one that read the restorer's output
        // alone: the upload's kernels start at zero, so it starts where that stage ended.
        job.config.sees_upload.then_some(ClearAirNet::INPUT_WEIGHT),
        &mut store,
        &mut optimizer,
    )?;
    let mut average = match job.weight_average {
        Some(decay) => Some(start_average(job, decay, &store, average_updates)?),
        None => None,
    };

    job.sampler.windows().advance(start);
    let sampler = job.sampler.clone();
    let make: BatchMaker<Vec<RestorerSample>> = Arc::new(move |iteration| sampler.batch(iteration));
    // One worker: cutting crops from cached windows is cheap, and the cores belong to the
    // shards; the window producer runs beside them.
    let mut prefetcher = Prefetcher::start(1, job.prefetch, start, make);
    let mut progress = TrainingProgress::new("restorer", start, job.limits.iterations);
    let mut history = match &job.limits.checkpoint {
        Some(checkpoint) => Some(History::open(checkpoint.folder(), start)?),
        None => None,
    };
    let started = Instant::now();
    let elapsed = || previous_elapsed + started.elapsed();
    let mut losses = Vec::new();
    let mut rates = Vec::new();
    let mut step = start;
    while !job.limits.should_stop(step, elapsed()) {
        let (iteration, samples) = prefetcher.next_batch()?;
        debug_assert_eq!(iteration, step);
        job.sampler.windows().advance(step);
        let batch = RestorerBatch::assemble(&samples, job.device)?;
        tch::manual_seed(torch_seed(job.seed, Purpose::RestorerStep, step));
        let mut rng = keyed_rng(job.seed, Purpose::RestorerStep, step, 0);
        let icrm = IcrmConfig {
            enabled: job.icrm.enabled && step % job.icrm_every.max(1) == 0,
            ..job.icrm.clone()
        };
        let mut draws = LossDraws::draw(&network, &batch.degraded, &batch.priors, &icrm, &mut rng);
        draws.keep_per_image = job.sampler.settings().keep_per_image(&samples, job.device);
        draws.frequency_per_image = job
            .sampler
            .settings()
            .frequency_per_image(&samples, job.device);
        optimizer.zero_grad();
        let loss =
            accumulate_gradients(&network, &batch, &draws, &icrm, job.pixel_loss, job.shards)?;
        if let Some(max_norm) = job.clip_grad_norm {
            optimizer.clip_grad_norm(max_norm);
        }
        let lr = job.schedule.at(step, job.limits.progress(step, elapsed()));
        optimizer.step(lr);
        if let Some(average) = &mut average {
            average.update(&store);
        }
        if !loss.total.is_finite() {
            return Err(TrainError::Diverged {
                step,
                value: loss.total,
            });
        }
        losses.push(loss.total);
        rates.push(lr);
        smoothed.update(loss.total);
        step += 1;
        if let Some(history) = &mut history {
            history.record_step(step, lr, &loss, elapsed().as_secs_f64());
        }
        progress.update(
            step,
            &format!(
                "loss {:.4} pixel {:.4} lr {lr:.2e} crop {}",
                smoothed.value(),
                loss.pixel,
                samples[0].crop
            ),
        );
        if let (Some(eval), Some(history)) = (&job.progress_eval, &history)
            && eval.every > 0
            && step % eval.every == 0
        {
            let measured = average.as_ref().map_or(&network, WeightAverage::network);
            let record = eval.run(measured, job.device, step)?;
            history.record_eval(&record)?;
            progress.println(&format!(
                "step {step}: {}",
                record
                    .rows
                    .iter()
                    .filter(|(_, _, input)| input.is_finite())
                    .take(7)
                    .map(|(key, psnr, input)| format!("{key} {:+.2}", psnr - input))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let due = job.limits.checkpoint_every > 0 && step % job.limits.checkpoint_every == 0;
        if let (true, Some(checkpoint)) = (due, &job.limits.checkpoint) {
            save_checkpoint(
                job,
                checkpoint,
                (&store, &optimizer, average.as_ref()),
                state(step, job.seed, elapsed(), &smoothed, &settings),
            )?;
            if let Some(history) = &mut history {
                history.flush()?;
                history.plot()?;
            }
        }
    }
    drop(prefetcher);
    progress.finish();
    if let Some(checkpoint) = &job.limits.checkpoint {
        save_checkpoint(
            job,
            checkpoint,
            (&store, &optimizer, average.as_ref()),
            state(step, job.seed, elapsed(), &smoothed, &settings),
        )?;
    }
    if let Some(history) = &mut history {
        history.flush()?;
        history.plot()?;
    }
    let outcome = TrainingOutcome {
        steps: step,
        steps_run: step - start,
        smoothed_loss: smoothed.value(),
        losses,
        rates,
        elapsed_seconds: elapsed().as_secs_f64(),
        parameters: parameter_count(&store),
    };
    // The average, when kept, is what the run delivers.
    let (store, network) = match average {
        Some(average) => average.into_parts(),
        None => (store, network),
    };
    save_weights(&store, &job.output)?;
    restorer_manifest(job, &outcome, BTreeMap::new())
        .write(&ModelManifest::path_for_weights(&job.output))?;
    Ok((store, network, outcome))
}

/// The weight average with `decay`: the checkpoint's when resuming one that keeps it, else
/// starting at `store`'s weights.
fn start_average(
    job: &RestorerTraining,
    decay: f64,
    store: &nn::VarStore,
    updates: Option<u64>,
) -> Result<WeightAverage> {
    let mut average = WeightAverage::start(decay, 0, store, &job.config)?;
    if let (true, Some(checkpoint), Some(updates)) =
        (job.limits.resume, &job.limits.checkpoint, updates)
    {
        average.load(&checkpoint.average_path(), updates)?;
    }
    Ok(average)
}

/// Saves a checkpoint (weights, optimiser, average, state) and the manifests that let its
/// weights and average be evaluated as they stand.
fn save_checkpoint(
    job: &RestorerTraining,
    checkpoint: &Checkpoint,
    (store, optimizer, average): (&nn::VarStore, &AdamW, Option<&WeightAverage>),
    mut state: CheckpointState,
) -> Result<()> {
    state.average_updates = average.map(WeightAverage::updates);
    checkpoint.save(store, optimizer, average.map(WeightAverage::store), &state)?;
    write_checkpoint_manifest(job, checkpoint, state.step, state.elapsed_seconds)
}

fn state(
    step: u64,
    seed: u64,
    elapsed: Duration,
    smoothed: &SmoothedValue,
    settings: &serde_json::Value,
) -> CheckpointState {
    CheckpointState {
        network: "restorer".to_owned(),
        step,
        seed,
        elapsed_seconds: elapsed.as_secs_f64(),
        smoothed_loss: smoothed.value(),
        settings: settings.clone(),
        average_updates: None,
    }
}

/// What must stay the same across a resume: everything that shapes the network, the data or
/// the loss. Iterations, the time budget, workers and the device may change.
fn checkpoint_settings(job: &RestorerTraining) -> serde_json::Value {
    let sampling = job.sampler.settings();
    let windows = job.sampler.windows();
    let mut settings = json!({
        "config": job.config,
        "crops": sampling.crops,
        "prior_dropout": sampling.prior_dropout,
        "all_neutral": sampling.all_neutral,
        "windows": windows.describe(),
        "pool": format!("{:?}", windows.schedule()),
        "pixel_loss": job.pixel_loss.loss,
        "icrm": format!("{:?}", job.icrm),
        "icrm_every": job.icrm_every,
        "seed": job.seed,
    });
    // Only when set, so runs checkpointed before the multipliers existed still resume.
    if sampling.all_neutral_kinds != [1.0; 5] {
        settings["all_neutral_kinds"] = json!(sampling.all_neutral_kinds);
    }
    if sampling.all_neutral_dark != 1.0 {
        settings["all_neutral_dark"] = json!(sampling.all_neutral_dark);
    }
    if sampling.keep_kinds != [1.0; 5] {
        settings["keep_kinds"] = json!(sampling.keep_kinds);
    }
    if sampling.frequency_kinds != [1.0; 5] {
        settings["frequency_kinds"] = json!(sampling.frequency_kinds);
    }
    if sampling.embedding_dropout > 0.0 {
        settings["embedding_dropout"] = json!(sampling.embedding_dropout);
    }
    if sampling.misread > 0.0 {
        settings["embedding_misread"] = json!(sampling.misread);
    }
    if job.pixel_loss.ceiling_db != PSNR_LOSS_CEILING_DB {
        settings["psnr_ceiling_db"] = json!(job.pixel_loss.ceiling_db);
    }
    if job.pixel_loss.frequency_weight != 0.0 {
        settings["frequency_weight"] = json!(job.pixel_loss.frequency_weight);
    }
    if job.pixel_loss.keep_weight != 0.0 {
        settings["keep_weight"] = json!(job.pixel_loss.keep_weight);
    }
    if job.pixel_loss.keep_ceiling_db != clearair_model::KEEP_LOSS_CEILING_DB {
        settings["keep_ceiling_db"] = json!(job.pixel_loss.keep_ceiling_db);
    }
    // The F_c/F_d view, only when it is not the whole image (the one view before there was
    // a choice), so earlier runs still resume.
    let view = windows.encoder_view();
    if view != EncoderView::Whole {
        settings["encoder_view"] = json!(view);
    }
    settings
}

/// Manifests beside the checkpoint's weights and average, so a run in progress can be
/// evaluated as it stands (`clearair eval --restorer CHECKPOINT/average.safetensors`).
fn write_checkpoint_manifest(
    job: &RestorerTraining,
    checkpoint: &Checkpoint,
    step: u64,
    elapsed_seconds: f64,
) -> Result<()> {
    let metrics = BTreeMap::from([("train_seconds".to_owned(), elapsed_seconds)]);
    let mut manifest = run_manifest(job, step, metrics);
    manifest.name = format!("{} (checkpoint, step {step})", job.name);
    manifest.write(&ModelManifest::path_for_weights(&checkpoint.weights_path()))?;
    if let Some(decay) = job.weight_average {
        manifest.name = format!(
            "{} (checkpoint, step {step}, weight average, decay {decay})",
            job.name
        );
        manifest.write(&ModelManifest::path_for_weights(&checkpoint.average_path()))?;
    }
    Ok(())
}

/// The manifest of `job` after `steps` steps, with `metrics`.
fn run_manifest(
    job: &RestorerTraining,
    steps: u64,
    metrics: BTreeMap<String, f64>,
) -> ModelManifest {
    ModelManifest {
        name: job.name.clone(),
        network: NetworkConfig::ClearAir(job.config.clone()),
        backends: Some(job.backends.clone()),
        data: job.data_description.clone(),
        iterations: steps,
        metrics,
        command: job.command.clone(),
        seed: job.seed,
        refiner_priors: job
            .sampler
            .windows()
            .first_stage()
            .map(|stage| stage.priors),
        refiner_gate: job.refiner_gate,
        blur_gate: None,
    }
}

/// The manifest of a restorer run, with `metrics` plus the training figures.
pub fn restorer_manifest(
    job: &RestorerTraining,
    outcome: &TrainingOutcome,
    mut metrics: BTreeMap<String, f64>,
) -> ModelManifest {
    metrics.insert("train_final_loss".into(), outcome.smoothed_loss);
    metrics.insert("train_seconds".into(), outcome.elapsed_seconds);
    // Core-hours allotted: wall time × libtorch threads (the window producer's extra thread
    // and the niceness of a shared machine not counted).
    metrics.insert(
        "train_core_hours".into(),
        outcome.elapsed_seconds * f64::from(tch::get_num_threads().max(1)) / 3600.0,
    );
    metrics.insert("parameters".into(), outcome.parameters as f64);
    run_manifest(job, outcome.steps, metrics)
}

#[cfg(test)]
mod tests;
