//! Checkpoints that resume: the weights, the optimiser's moments and a small JSON state
//! beside them.
//!
//! There is no generator state to store: every sample and every step's randomness is keyed by
//! (seed, iteration) (see [`crate::seeding`]), so `seed` and `step` *are* the RNG state, and
//! a resumed run draws exactly the batches an uninterrupted one would. The optimiser's
//! moments are saved too, so resuming reproduces the uninterrupted run's weights.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::error::{Result, TrainError};
use crate::optimizer::AdamW;

/// File names inside a checkpoint folder.
const STATE_FILE: &str = "state.json";
const WEIGHTS_FILE: &str = "weights.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const AVERAGE_FILE: &str = "average.safetensors";

/// The JSON part of a checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CheckpointState {
    /// `restorer` or `encoder`.
    pub network: String,
    /// Optimiser steps completed; training resumes at this iteration.
    pub step: u64,
    /// The run's seed (with `step`, the whole random state; see the module docs).
    pub seed: u64,
    /// Wall-clock seconds of training so far (counts against a time budget).
    pub elapsed_seconds: f64,
    /// The smoothed training loss at `step`.
    pub smoothed_loss: f64,
    /// Settings that must not change across a resume (network, batch, crop, …).
    pub settings: serde_json::Value,
    /// Updates of the weight average saved beside the weights, if the run keeps one (see
    /// [`crate::average`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_updates: Option<u64>,
}

/// A checkpoint folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    folder: PathBuf,
}

impl Checkpoint {
    /// The checkpoint kept in `folder`.
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
        }
    }

    /// Its folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Path of the weights.
    pub fn weights_path(&self) -> PathBuf {
        self.folder.join(WEIGHTS_FILE)
    }

    /// Path of the weight average (see [`crate::average`]), if the run keeps one.
    pub fn average_path(&self) -> PathBuf {
        self.folder.join(AVERAGE_FILE)
    }

    /// Path of the JSON state.
    pub fn state_path(&self) -> PathBuf {
        self.folder.join(STATE_FILE)
    }

    /// Whether a complete checkpoint exists.
    pub fn exists(&self) -> bool {
        self.state_path().is_file()
    }

    /// Saves weights, optimiser, the weight average if there is one, and state. The state is
    /// written last, through a rename, so an interrupted save leaves the previous
    /// checkpoint's state pointing at files that either belong to it or were fully replaced.
    pub fn save(
        &self,
        store: &nn::VarStore,
        optimizer: &AdamW,
        average: Option<&nn::VarStore>,
        state: &CheckpointState,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.folder).map_err(TrainError::io(&self.folder))?;
        clearair_model::save_weights(store, &self.folder.join(WEIGHTS_FILE))?;
        optimizer.save(&self.folder.join(OPTIMIZER_FILE))?;
        if let Some(average) = average {
            clearair_model::save_weights(average, &self.average_path())?;
        }
        let text = serde_json::to_string_pretty(state).map_err(|source| TrainError::Json {
            path: self.state_path(),
            source,
        })?;
        let temporary = self.folder.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&temporary, text + "\n").map_err(TrainError::io(&temporary))?;
        std::fs::rename(&temporary, self.state_path()).map_err(TrainError::io(self.state_path()))
    }

    /// Loads the checkpoint into `store` and `optimizer` after checking that it was made by
    /// the same kind of run with the same `settings`; returns its state.
    pub fn load(
        &self,
        network: &str,
        settings: &serde_json::Value,
        store: &mut nn::VarStore,
        optimizer: &mut AdamW,
    ) -> Result<CheckpointState> {
        let path = self.state_path();
        let fail = |reason: String| TrainError::Checkpoint {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
        let state: CheckpointState =
            serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        if state.network != network {
            return Err(fail(format!(
                "it is a {} checkpoint, not a {network} one",
                state.network
            )));
        }
        if &state.settings != settings {
            return Err(fail(format!(
                "it was made with other settings: {} (now {settings})",
                state.settings
            )));
        }
        clearair_model::load_weights(store, &self.folder.join(WEIGHTS_FILE))?;
        optimizer.load(&self.folder.join(OPTIMIZER_FILE))?;
        if optimizer.steps() != state.step {
            return Err(fail(format!(
                "the optimiser took {} steps but the state says {}",
                optimizer.steps(),
                state.step
            )));
        }
        Ok(state)
    }
}
