//! Configuration of the degradation service.

use clearair_backends::{batch::BatchingConfig, degradation::DegradationBackendConfig};
use clearair_model::TorchScriptConfig;
use clearair_runtime::config::ServerConfig;
use serde::{Deserialize, Serialize};

pub use clearair_backends::{
    ModelConfig,
    degradation::{DegradationBackendKind, EncoderView, GateView},
};

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
    /// was trained at this scale), or cropped to a centred square of this side (`view`).
    pub max_side: u32,
    /// What of an image the compact encoder sees: `whole` (shrunk to `max_side`), `centre`
    /// (the centred `max_side` square at the image's own scale) or `split` (F_c from the
    /// first, F_d and the kind probabilities from the second). The backend's name says
    /// which, and the restorer's weights must have been trained on the same one.
    pub view: EncoderView,
    /// Where a gated refiner behind this encoder reads the kind probabilities, sent beside
    /// the served ones: `served` (none sent; the gate reads the served probabilities),
    /// `centre` (the centred `max_side` square at the image's own scale, one more pass) or
    /// `tiles` (each kind's least over own-scale `max_side` tiles covering the image, one
    /// batched pass). Set it to the view the refiner's `refiner_gate` names.
    pub gate_view: GateView,
    /// Largest image accepted, in pixels.
    pub max_pixels: u64,
}

impl Default for DegradationConfig {
    fn default() -> Self {
        let DegradationBackendConfig {
            backend,
            model,
            torchscript,
            batching,
            max_side,
            view,
            gate_view,
        } = DegradationBackendConfig::default();
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50054".to_owned(),
                metrics_listen: "0.0.0.0:9464".to_owned(),
                // As many calls at once as a batch holds (`batching.max_batch_size`), so
                // batches of the TorchScript backend can fill.
                max_concurrency: 8,
                ..ServerConfig::default()
            },
            backend,
            model,
            torchscript,
            batching,
            max_side,
            view,
            gate_view,
            max_pixels: 40_000_000,
        }
    }
}

impl DegradationConfig {
    /// The backend this service loads, from its fields.
    pub fn backend_config(&self) -> DegradationBackendConfig {
        DegradationBackendConfig {
            backend: self.backend,
            model: self.model.clone(),
            torchscript: self.torchscript.clone(),
            batching: self.batching.clone(),
            max_side: self.max_side,
            view: self.view,
            gate_view: self.gate_view,
        }
    }
}

impl clearair_runtime::launch::ServiceConfig for DegradationConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_gets_the_services_settings_and_defaults() {
        assert_eq!(
            DegradationConfig::default().backend_config(),
            DegradationBackendConfig::default()
        );
        let config = DegradationConfig {
            max_side: 128,
            view: EncoderView::Centre,
            gate_view: GateView::Tiles,
            ..DegradationConfig::default()
        };
        assert_eq!(config.backend_config().max_side, 128);
        assert_eq!(config.backend_config().view, EncoderView::Centre);
        assert_eq!(config.backend_config().gate_view, GateView::Tiles);
    }
}
