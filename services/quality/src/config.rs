//! Configuration of the quality service.

use std::path::PathBuf;

use clearair_batch::BatchingConfig;
use clearair_model::TorchScriptConfig;
use clearair_runtime::config::ServerConfig;
use serde::{Deserialize, Serialize};

/// Which quality backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QualityBackendKind {
    /// BRISQUE on the CPU: `F_q` is its 36 scaled features.
    #[default]
    Brisque,
    /// DeQA-Score exported by `deploy/export/deqa_export.py` (`[torchscript]`, batched).
    Torchscript,
}

/// Everything the quality service reads at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// The gRPC server.
    pub server: ServerConfig,
    /// The backend.
    pub backend: QualityBackendKind,
    /// BRISQUE parameters written by `deploy/scripts/brisque_params.py` (`make setup`).
    pub brisque_params: PathBuf,
    /// The exported module (backend = "torchscript").
    pub torchscript: TorchScriptConfig,
    /// `cpu`, `cuda`, `cuda:N` or `auto`, for the TorchScript backend.
    pub device: String,
    /// Dynamic batching of the TorchScript backend.
    pub batching: BatchingConfig,
    /// Largest image accepted, in pixels (the orchestrator enforces its own limit first).
    pub max_pixels: u64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50052".to_owned(),
                metrics_listen: "0.0.0.0:9462".to_owned(),
                ..ServerConfig::default()
            },
            backend: QualityBackendKind::Brisque,
            brisque_params: PathBuf::from("data/brisque/brisque_svr.json"),
            torchscript: TorchScriptConfig::with_module("models/deqa.pt"),
            device: "auto".to_owned(),
            batching: BatchingConfig::default(),
            max_pixels: 40_000_000,
        }
    }
}

impl clearair_runtime::launch::ServiceConfig for QualityConfig {
    fn server(&self) -> &clearair_runtime::config::ServerConfig {
        &self.server
    }
}
