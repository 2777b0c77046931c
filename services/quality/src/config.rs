//! Configuration of the quality service.

use std::path::PathBuf;

use clearair_backends::{batch::BatchingConfig, quality::QualityBackendConfig};
use clearair_model::TorchScriptConfig;
use clearair_runtime::config::ServerConfig;
use serde::{Deserialize, Serialize};

pub use clearair_backends::quality::QualityBackendKind;

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
        let QualityBackendConfig {
            backend,
            brisque_params,
            torchscript,
            device,
            batching,
        } = QualityBackendConfig::default();
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50052".to_owned(),
                metrics_listen: "0.0.0.0:9462".to_owned(),
                // As many calls at once as a batch holds (`batching.max_batch_size`), so
                // batches of the TorchScript backend can fill.
                max_concurrency: 8,
                ..ServerConfig::default()
            },
            backend,
            brisque_params,
            torchscript,
            device,
            batching,
            max_pixels: 40_000_000,
        }
    }
}

impl QualityConfig {
    /// The backend this service loads, from its fields.
    pub fn backend_config(&self) -> QualityBackendConfig {
        QualityBackendConfig {
            backend: self.backend,
            brisque_params: self.brisque_params.clone(),
            torchscript: self.torchscript.clone(),
            device: self.device.clone(),
            batching: self.batching.clone(),
        }
    }
}

impl clearair_runtime::launch::ServiceConfig for QualityConfig {
    fn server(&self) -> &clearair_runtime::config::ServerConfig {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_gets_the_services_settings_and_defaults() {
        assert_eq!(
            QualityConfig::default().backend_config(),
            QualityBackendConfig::default()
        );
        let config = QualityConfig {
            backend: QualityBackendKind::Torchscript,
            device: "cuda:1".to_owned(),
            ..QualityConfig::default()
        };
        let backend = config.backend_config();
        assert_eq!(
            (backend.backend, backend.device.as_str()),
            (QualityBackendKind::Torchscript, "cuda:1")
        );
    }
}
