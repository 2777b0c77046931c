//! Configuration of the restoration service.

use clearair_backends::ModelConfig;
use clearair_model::{
    ClearAirConfig, PriorBackends,
    weights::{DegradationBackendSpec, QualityBackendSpec, SegmentationBackendSpec},
};
use clearair_proto::contract::EMBEDDING_WIDTH;
use clearair_runtime::config::ServerConfig;
use serde::{Deserialize, Serialize};

/// Everything the restoration service reads at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestorationConfig {
    /// The gRPC server.
    pub server: ServerConfig,
    /// The restorer's weights and device.
    pub model: ModelConfig,
    /// The prior backends the mesh runs. The weights' manifest must name the same ones (the
    /// service refuses to start otherwise), and every request's priors must come from them or
    /// be the orchestrator's neutral fallbacks.
    pub priors: PriorBackends,
    /// Images with a side above this are restored in overlapping tiles of this size, so
    /// memory stays bounded whatever the image size.
    pub tile_size: u32,
    /// Overlap between neighbouring tiles, blended with a linear ramp.
    pub tile_overlap: u32,
    /// Largest image accepted, in pixels.
    pub max_pixels: u64,
}

/// The embedded defaults' backends: BRISQUE, graph segmentation, the compact encoder.
pub fn embedded_priors() -> PriorBackends {
    PriorBackends {
        quality: QualityBackendSpec {
            name: "brisque".to_owned(),
            width: 36,
        },
        segmentation: SegmentationBackendSpec {
            name: "graph".to_owned(),
            max_masks: i64::from(clearair_proto::contract::MAX_MASKS),
        },
        degradation: DegradationBackendSpec {
            name: "clearair-encoder".to_owned(),
            content_dim: EMBEDDING_WIDTH as i64,
            degradation_dim: EMBEDDING_WIDTH as i64,
        },
    }
}

impl Default for RestorationConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50055".to_owned(),
                metrics_listen: "0.0.0.0:9465".to_owned(),
                max_concurrency: 2,
                max_queue: 16,
                ..ServerConfig::default()
            },
            model: ModelConfig::with_weights("models/clearair-compact.safetensors"),
            priors: embedded_priors(),
            tile_size: 512,
            tile_overlap: 32,
            max_pixels: 40_000_000,
        }
    }
}

impl RestorationConfig {
    /// The network configuration used with `random_init` (no manifest to read it from).
    pub fn random_init_network(&self) -> ClearAirConfig {
        ClearAirConfig::compact(self.priors.quality.width)
    }
}

impl clearair_runtime::launch::ServiceConfig for RestorationConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}
