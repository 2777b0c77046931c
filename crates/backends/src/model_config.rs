//! Where a network-backed backend gets its weights and where it runs them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a network gets its weights and where it runs them (the degradation encoder, the
/// restorer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The safetensors file; its manifest (`.json`) sits beside it.
    pub weights: PathBuf,
    /// Start from freshly initialised weights instead of `weights` (seeded, for tests and
    /// benchmarks only; the service logs a warning).
    pub random_init: bool,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
    pub device: String,
}

impl ModelConfig {
    /// A config reading `weights` on the CPU.
    pub fn with_weights(weights: impl Into<PathBuf>) -> Self {
        Self {
            weights: weights.into(),
            random_init: false,
            device: "cpu".to_owned(),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::with_weights("models/model.safetensors")
    }
}
