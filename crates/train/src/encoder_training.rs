//! Training the degradation encoder (the embedded stand-in for DA-CLIP) with
//! [`encoder_loss`]: BCE on the kinds, supervised contrastive F_d over kind sets, and F_c
//! consistency between the two differently degraded views of each window in a batch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clearair_model::{
    DegradationEncoder, EncoderConfig, EncoderLossWeights, ModelManifest, NetworkConfig,
    embedding_drift, encoder_loss, parameter_count, save_weights,
};
use serde_json::json;
use tch::{Device, nn};

use crate::checkpoint::CheckpointState;
use crate::data::{EncoderBatch, EncoderSample, EncoderSampler};
use crate::error::{Result, TrainError};
use crate::optimizer::{AdamW, AdamWConfig, LearningRateSchedule};
use crate::prefetch::{BatchMaker, Prefetcher};
use crate::progress::{SmoothedValue, TrainingProgress};
use crate::restorer_training::{RunLimits, TrainingOutcome};
use crate::seeding::{Purpose, torch_seed};

/// Everything an encoder training run needs, already loaded.
#[derive(Debug)]
pub struct EncoderTraining {
    /// Name written into the manifest, e.g. `degradation-encoder`.
    pub name: String,
    /// The encoder's shape.
    pub config: EncoderConfig,
    /// Draws the batches.
    pub sampler: EncoderSampler,
    /// Start from these weights instead of a random initialisation (fresh optimiser and
    /// schedule); ignored when resuming.
    pub init: Option<PathBuf>,
    /// A frozen encoder whose embeddings this one is held near (see [`embedding_drift`]) —
    /// normally the one being fine-tuned, so that a restorer trained on its F_c and F_d keeps
    /// working — and the weight of that term.
    pub anchor: Option<(PathBuf, f64)>,
    /// Keep the batch-norm statistics the encoder starts with (normalise with them in training
    /// instead of each batch's): a fine-tune then cannot move every embedding at once by
    /// shifting the statistics, which the anchor term, measured per batch, would not see.
    pub frozen_norm: bool,
    /// Window pairs per batch (the batch holds twice as many images).
    pub pairs: usize,
    /// Weights of the loss terms.
    pub loss_weights: EncoderLossWeights,
    /// Learning-rate schedule.
    pub schedule: LearningRateSchedule,
    /// Optimiser settings.
    pub adamw: AdamWConfig,
    /// The run's seed.
    pub seed: u64,
    /// Where the encoder trains.
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

/// Trains the encoder and writes its weights and manifest; returns the store, the network
/// (in inference mode from here on: callers use `forward`) and the outcome.
pub fn train_encoder(
    job: &EncoderTraining,
) -> Result<(nn::VarStore, DegradationEncoder, TrainingOutcome)> {
    if job.pairs == 0 {
        return Err(TrainError::Setting(
            "the batch must hold at least one pair".into(),
        ));
    }
    tch::manual_seed(torch_seed(job.seed, Purpose::EncoderSample, u64::MAX));
    let mut store = nn::VarStore::new(job.device);
    let network = DegradationEncoder::new(&store.root(), &job.config);
    let mut optimizer = AdamW::new(&store, job.adamw);
    let anchor = match &job.anchor {
        Some((path, weight)) => Some((crate::networks::load_encoder(path, job.device)?, *weight)),
        None => None,
    };
    let settings = json!({
        "config": job.config,
        "anchor": job.anchor.as_ref().map(|(path, weight)| json!({"weights": path, "weight": weight})),
        "frozen_norm": job.frozen_norm,
        "pairs": job.pairs,
        "sampler": format!("{:?}", job.sampler.settings()),
        "loss": format!("{:?}", job.loss_weights),
        "seed": job.seed,
    });
    let (start, previous_elapsed, mut smoothed, _) = job.limits.start(
        "encoder",
        &settings,
        job.init.as_deref(),
        None,
        &mut store,
        &mut optimizer,
    )?;

    let sampler = job.sampler.clone();
    let pairs = job.pairs;
    let make: BatchMaker<Vec<EncoderSample>> =
        Arc::new(move |iteration| sampler.batch(iteration, pairs));
    let mut prefetcher = Prefetcher::start(job.workers, job.prefetch, start, make);
    let mut progress = TrainingProgress::new("encoder", start, job.limits.iterations);
    let started = Instant::now();
    let elapsed = || previous_elapsed + started.elapsed();
    let mut losses = Vec::new();
    let mut step = start;
    let save_state = |step: u64, smoothed: &SmoothedValue| CheckpointState {
        network: "encoder".to_owned(),
        step,
        seed: job.seed,
        elapsed_seconds: elapsed().as_secs_f64(),
        smoothed_loss: smoothed.value(),
        settings: settings.clone(),
        average_updates: None,
    };
    while !job.limits.should_stop(step, elapsed()) {
        let (_, samples) = prefetcher.next_batch()?;
        let batch = EncoderBatch::assemble(&samples, job.device);
        tch::manual_seed(torch_seed(job.seed, Purpose::EncoderSample, step));
        let batch_norm = !job.frozen_norm;
        let output = network.forward_t(&batch.images, batch_norm);
        let loss = encoder_loss(&output, &batch.kinds, &batch.content_ids, &job.loss_weights);
        let drift = anchor.as_ref().map(|(anchor, weight)| {
            // Normalised as the trainee is (this batch's statistics, or the frozen ones), so the
            // term measures how far the weights moved, not train- against eval-mode batch norm.
            let target = tch::no_grad(|| anchor.network.forward_t(&batch.images, batch_norm));
            (embedding_drift(&output, &target, &batch.kinds), *weight)
        });
        let total = match &drift {
            Some((drift, weight)) => &loss.total + drift * *weight,
            None => loss.total.shallow_clone(),
        };
        optimizer.zero_grad();
        total.backward();
        let lr = job.schedule.at(step, job.limits.progress(step, elapsed()));
        optimizer.step(lr);
        let value = total.double_value(&[]);
        if !value.is_finite() {
            return Err(TrainError::Diverged { step, value });
        }
        losses.push(value);
        smoothed.update(value);
        step += 1;
        progress.update(
            step,
            &format!(
                "loss {:.4} (bce {:.3} F_d {:.3} F_c {:.3}{}) lr {lr:.2e}",
                smoothed.value(),
                loss.classification.double_value(&[]),
                loss.degradation_contrast.double_value(&[]),
                loss.content_consistency.double_value(&[]),
                drift.as_ref().map_or(String::new(), |(drift, _)| format!(
                    " drift {:.4}",
                    drift.double_value(&[])
                )),
            ),
        );
        let due = job.limits.checkpoint_every > 0 && step % job.limits.checkpoint_every == 0;
        if let (true, Some(checkpoint)) = (due, &job.limits.checkpoint) {
            checkpoint.save(&store, &optimizer, None, &save_state(step, &smoothed))?;
        }
    }
    drop(prefetcher);
    progress.finish();
    if let Some(checkpoint) = &job.limits.checkpoint {
        checkpoint.save(&store, &optimizer, None, &save_state(step, &smoothed))?;
    }
    let outcome = TrainingOutcome {
        steps: step,
        steps_run: step - start,
        smoothed_loss: smoothed.value(),
        losses,
        rates: Vec::new(),
        elapsed_seconds: elapsed().as_secs_f64(),
        parameters: parameter_count(&store),
    };
    save_weights(&store, &job.output)?;
    encoder_manifest(job, &outcome, BTreeMap::new())
        .write(&ModelManifest::path_for_weights(&job.output))?;
    Ok((store, network, outcome))
}

/// The manifest of an encoder run, with `metrics` plus the training figures.
pub fn encoder_manifest(
    job: &EncoderTraining,
    outcome: &TrainingOutcome,
    mut metrics: BTreeMap<String, f64>,
) -> ModelManifest {
    metrics.insert("train_final_loss".into(), outcome.smoothed_loss);
    metrics.insert("train_seconds".into(), outcome.elapsed_seconds);
    metrics.insert("parameters".into(), outcome.parameters as f64);
    ModelManifest {
        name: job.name.clone(),
        network: NetworkConfig::Encoder(job.config.clone()),
        backends: None,
        data: job.data_description.clone(),
        iterations: outcome.steps,
        metrics,
        command: job.command.clone(),
        seed: job.seed,
        refiner_priors: None,
        refiner_gate: None,
        blur_gate: None,
    }
}

#[cfg(test)]
mod tests;
