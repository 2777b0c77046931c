//! Training the ClearAIR restorer: L1 + ICRM on degraded crops of the training photos, with
//! the priors the mesh would compute, AdamW and a warm-up + cosine learning rate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clearair_model::{
    ClearAir, ClearAirConfig, DegradationEncoder, IcrmConfig, ModelManifest, NetworkConfig,
    parameter_count, restoration_loss, save_weights,
};
use serde_json::json;
use tch::{Device, nn};

use crate::checkpoint::{Checkpoint, CheckpointState};
use crate::data::{RestorerBatch, RestorerSample, RestorerSampler};
use crate::error::{Result, TrainError};
use crate::optimizer::{AdamW, AdamWConfig, LearningRateSchedule};
use crate::prefetch::{BatchMaker, Prefetcher};
use crate::progress::{SmoothedValue, TrainingProgress};
use crate::seeding::{Purpose, keyed_rng, torch_seed};

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
    /// smoothed loss restored into `store` and `optimizer`), else at step 0 from `init`'s
    /// weights or the random initialisation. `network` and `settings` must match the
    /// checkpoint's.
    pub fn start(
        &self,
        network: &str,
        settings: &serde_json::Value,
        init: Option<&std::path::Path>,
        store: &mut nn::VarStore,
        optimizer: &mut AdamW,
    ) -> Result<(u64, Duration, SmoothedValue)> {
        match (&self.checkpoint, self.resume) {
            (Some(checkpoint), true) => {
                let state = checkpoint.load(network, settings, store, optimizer)?;
                Ok((
                    state.step,
                    Duration::from_secs_f64(state.elapsed_seconds),
                    SmoothedValue::starting_at(LOSS_SMOOTHING, state.smoothed_loss),
                ))
            }
            (None, true) => Err(TrainError::Setting(
                "--resume needs a checkpoint folder".into(),
            )),
            _ => {
                if let Some(init) = init {
                    clearair_model::load_weights(store, init)?;
                }
                Ok((0, Duration::ZERO, SmoothedValue::new(LOSS_SMOOTHING)))
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
    /// Draws the batches.
    pub sampler: RestorerSampler,
    /// The degradation encoder that provides F_c/F_d (on `device`).
    pub encoder: DegradationEncoder,
    /// The manifest's `backends`.
    pub backends: clearair_model::PriorBackends,
    /// Start from these weights (same configuration) instead of a random initialisation;
    /// the optimiser and schedule start afresh. Ignored when resuming.
    pub init: Option<PathBuf>,
    /// Images per batch.
    pub batch: usize,
    /// ICRM settings (`enabled: false` is the ablation).
    pub icrm: IcrmConfig,
    /// Learning-rate schedule.
    pub schedule: LearningRateSchedule,
    /// Optimiser settings.
    pub adamw: AdamWConfig,
    /// Global gradient-norm clip, if any.
    pub clip_grad_norm: Option<f64>,
    /// The run's seed (network initialisation, data, augmentation).
    pub seed: u64,
    /// Where the networks run.
    pub device: Device,
    /// Data worker threads.
    pub workers: usize,
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
}

impl std::fmt::Debug for RestorerTraining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestorerTraining")
            .field("name", &self.name)
            .field("batch", &self.batch)
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
    /// Wall-clock seconds of training in total (including before a resume).
    pub elapsed_seconds: f64,
    /// Trainable parameters.
    pub parameters: i64,
}

/// Trains the restorer, writes its weights and manifest, and returns the store, the network
/// and the outcome (the caller adds evaluation figures to the manifest).
pub fn train_restorer(job: &RestorerTraining) -> Result<(nn::VarStore, ClearAir, TrainingOutcome)> {
    if job.batch == 0 {
        return Err(TrainError::Setting(
            "the batch must hold at least one image".into(),
        ));
    }
    tch::manual_seed(torch_seed(job.seed, Purpose::RestorerStep, u64::MAX));
    let mut store = nn::VarStore::new(job.device);
    let network = ClearAir::new(&store.root(), &job.config);
    let mut optimizer = AdamW::new(&store, job.adamw);
    let settings = checkpoint_settings(job);
    let (start, previous_elapsed, mut smoothed) = job.limits.start(
        "restorer",
        &settings,
        job.init.as_deref(),
        &mut store,
        &mut optimizer,
    )?;

    let sampler = job.sampler.clone();
    let batch_size = job.batch;
    let make: BatchMaker<Vec<RestorerSample>> =
        Arc::new(move |iteration| sampler.batch(iteration, batch_size));
    let mut prefetcher = Prefetcher::start(job.workers, job.prefetch, start, make);
    let mut progress = TrainingProgress::new("restorer", start, job.limits.iterations);
    let started = Instant::now();
    let elapsed = || previous_elapsed + started.elapsed();
    let mut losses = Vec::new();
    let mut step = start;
    while !job.limits.should_stop(step, elapsed()) {
        let (iteration, samples) = prefetcher.next_batch()?;
        debug_assert_eq!(iteration, step);
        let batch = RestorerBatch::assemble(&samples, &job.encoder, job.device)?;
        tch::manual_seed(torch_seed(job.seed, Purpose::RestorerStep, step));
        let mut rng = keyed_rng(job.seed, Purpose::RestorerStep, step, 0);
        let loss = restoration_loss(
            &network,
            &batch.degraded,
            &batch.clean,
            &batch.priors,
            &job.icrm,
            &mut rng,
        );
        optimizer.zero_grad();
        loss.total.backward();
        if let Some(max_norm) = job.clip_grad_norm {
            optimizer.clip_grad_norm(max_norm);
        }
        let lr = job.schedule.at(step, job.limits.progress(step, elapsed()));
        optimizer.step(lr);
        let value = loss.total.double_value(&[]);
        if !value.is_finite() {
            return Err(TrainError::Diverged { step, value });
        }
        losses.push(value);
        smoothed.update(value);
        step += 1;
        progress.update(
            step,
            &format!(
                "loss {:.4} l1 {:.4} lr {lr:.2e}",
                smoothed.value(),
                loss.l1.double_value(&[])
            ),
        );
        let due = job.limits.checkpoint_every > 0 && step % job.limits.checkpoint_every == 0;
        if let (true, Some(checkpoint)) = (due, &job.limits.checkpoint) {
            checkpoint.save(
                &store,
                &optimizer,
                &state(step, job.seed, elapsed(), &smoothed, &settings),
            )?;
        }
    }
    drop(prefetcher);
    progress.finish();
    if let Some(checkpoint) = &job.limits.checkpoint {
        checkpoint.save(
            &store,
            &optimizer,
            &state(step, job.seed, elapsed(), &smoothed, &settings),
        )?;
    }
    let outcome = TrainingOutcome {
        steps: step,
        steps_run: step - start,
        smoothed_loss: smoothed.value(),
        losses,
        elapsed_seconds: elapsed().as_secs_f64(),
        parameters: parameter_count(&store),
    };
    save_weights(&store, &job.output)?;
    restorer_manifest(job, &outcome, BTreeMap::new())
        .write(&ModelManifest::path_for_weights(&job.output))?;
    Ok((store, network, outcome))
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
    }
}

/// What must stay the same across a resume: everything that shapes the network, the data or
/// the loss. Iterations, the time budget, workers and the device may change.
fn checkpoint_settings(job: &RestorerTraining) -> serde_json::Value {
    let sampling = job.sampler.settings();
    json!({
        "config": job.config,
        "batch": job.batch,
        "crop": sampling.crop,
        "context": sampling.context,
        "clean": sampling.mix.clean,
        "mixture": sampling.mix.mixture,
        "kinds": sampling.mix.kinds,
        "prior_dropout": sampling.prior_dropout,
        "icrm": format!("{:?}", job.icrm),
        "seed": job.seed,
    })
}

/// The manifest of a restorer run, with `metrics` plus the training figures.
pub fn restorer_manifest(
    job: &RestorerTraining,
    outcome: &TrainingOutcome,
    mut metrics: BTreeMap<String, f64>,
) -> ModelManifest {
    metrics.insert("train_final_loss".into(), outcome.smoothed_loss);
    metrics.insert("train_seconds".into(), outcome.elapsed_seconds);
    metrics.insert("parameters".into(), outcome.parameters as f64);
    ModelManifest {
        name: job.name.clone(),
        network: NetworkConfig::ClearAir(job.config.clone()),
        backends: Some(job.backends.clone()),
        data: job.data_description.clone(),
        iterations: outcome.steps,
        metrics,
        command: job.command.clone(),
        seed: job.seed,
    }
}

#[cfg(test)]
mod tests;
