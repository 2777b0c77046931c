//! Configuration of the segmentation service.

use clearair_backends::{batch::BatchingConfig, segmentation::SegmentationBackendConfig};
use clearair_model::TorchScriptConfig;
use clearair_runtime::config::ServerConfig;
use serde::{Deserialize, Serialize};

pub use clearair_backends::segmentation::{GraphConfig, SegmentationBackendKind, sam2::AmgConfig};

/// Everything the segmentation service reads at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentationConfig {
    /// The gRPC server.
    pub server: ServerConfig,
    /// The backend.
    pub backend: SegmentationBackendKind,
    /// The graph backend's parameters.
    pub graph: GraphConfig,
    /// The exported SAM2 encoder (its manifest names the decoder), backend = "torchscript".
    pub torchscript: TorchScriptConfig,
    /// `cpu`, `cuda`, `cuda:N` or `auto`, for the TorchScript backend.
    pub device: String,
    /// The automatic mask generator's settings (SAM2's defaults).
    pub sam2: AmgConfig,
    /// Dynamic batching of the TorchScript backend's image encoder.
    pub batching: BatchingConfig,
    /// Masks returned when a request asks for 0 (the default); at most 16.
    pub default_max_masks: u32,
    /// Largest image accepted, in pixels.
    pub max_pixels: u64,
}

impl Default for SegmentationConfig {
    fn default() -> Self {
        let SegmentationBackendConfig {
            backend,
            graph,
            torchscript,
            device,
            sam2,
            batching,
        } = SegmentationBackendConfig::default();
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50053".to_owned(),
                metrics_listen: "0.0.0.0:9463".to_owned(),
                // As many calls at once as a batch holds (`batching.max_batch_size`), so
                // batches of the TorchScript backend can fill.
                max_concurrency: 8,
                ..ServerConfig::default()
            },
            backend,
            graph,
            torchscript,
            device,
            sam2,
            batching,
            default_max_masks: clearair_imaging::MAX_MASKS,
            max_pixels: 40_000_000,
        }
    }
}

impl SegmentationConfig {
    /// The backend this service loads, from its fields.
    pub fn backend_config(&self) -> SegmentationBackendConfig {
        SegmentationBackendConfig {
            backend: self.backend,
            graph: self.graph,
            torchscript: self.torchscript.clone(),
            device: self.device.clone(),
            sam2: self.sam2.clone(),
            batching: self.batching.clone(),
        }
    }
}

impl clearair_runtime::launch::ServiceConfig for SegmentationConfig {
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
            SegmentationConfig::default().backend_config(),
            SegmentationBackendConfig::default()
        );
        let mut config = SegmentationConfig::default();
        config.graph.k = 123.0;
        config.sam2.points_per_side = 8;
        let backend = config.backend_config();
        assert_eq!((backend.graph.k, backend.sam2.points_per_side), (123.0, 8));
    }
}
