//! Configuration of the degradation service.

use clearair_batch::BatchingConfig;
use clearair_model::TorchScriptConfig;
use clearair_runtime::config::{ModelConfig, ServerConfig};
use serde::{Deserialize, Serialize};

/// Which degradation backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DegradationBackendKind {
    /// The compact encoder trained here (`models/degradation-encoder.safetensors`).
    #[default]
    Encoder,
    /// DA-CLIP exported by `deploy/export/daclip.py` (`[torchscript]`, batched).
    Torchscript,
}

/// Everything the degradation service reads at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DegradationConfig {
    /// The gRPC server.
    pub server: ServerConfig,
    /// The backend.
    pub backend: DegradationBackendKind,
    /// The encoder's weights, and the device of either backend.
    pub model: ModelConfig,
    /// The exported module (backend = "torchscript").
    pub torchscript: TorchScriptConfig,
    /// Dynamic batching of the TorchScript backend.
    pub batching: BatchingConfig,
    /// Images are resized so their long side is at most this before encoding (the encoder
    /// was trained at this scale).
    pub max_side: u32,
    /// Largest image accepted, in pixels.
    pub max_pixels: u64,
}

impl Default for DegradationConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50054".to_owned(),
                metrics_listen: "0.0.0.0:9464".to_owned(),
                ..ServerConfig::default()
            },
            backend: DegradationBackendKind::Encoder,
            model: ModelConfig::with_weights("models/degradation-encoder.safetensors"),
            torchscript: TorchScriptConfig::with_module("models/daclip.pt"),
            batching: BatchingConfig::default(),
            max_side: 256,
            max_pixels: 40_000_000,
        }
    }
}

impl clearair_runtime::launch::ServiceConfig for DegradationConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}
