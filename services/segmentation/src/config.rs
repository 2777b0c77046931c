//! Configuration of the segmentation service.

use clearair_batch::BatchingConfig;
use clearair_model::TorchScriptConfig;
use clearair_runtime::config::ServerConfig;

use crate::sam2::AmgConfig;
use serde::{Deserialize, Serialize};

/// Which segmentation backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentationBackendKind {
    /// Felzenszwalb–Huttenlocher graph segmentation on the CPU.
    #[default]
    Graph,
    /// SAM2 exported by `deploy/export/sam2_export.py` (`[torchscript]`, `[sam2]`).
    Torchscript,
}

/// Parameters of the graph backend (Felzenszwalb & Huttenlocher 2004).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// Merge threshold scale k (larger: larger regions).
    pub k: f32,
    /// Gaussian smoothing before the graph is built, in working-resolution pixels.
    pub sigma: f32,
    /// Smallest component, in working-resolution pixels.
    pub min_size: usize,
    /// Long side of the working copy (larger images are segmented downscaled).
    pub max_side: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        let defaults = clearair_priors::GraphSegmenterConfig::default();
        Self {
            k: defaults.k,
            sigma: defaults.sigma,
            min_size: defaults.min_size,
            max_side: defaults.max_side,
        }
    }
}

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
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50053".to_owned(),
                metrics_listen: "0.0.0.0:9463".to_owned(),
                ..ServerConfig::default()
            },
            backend: SegmentationBackendKind::Graph,
            graph: GraphConfig::default(),
            torchscript: TorchScriptConfig::with_module("models/sam2.pt"),
            device: "auto".to_owned(),
            sam2: AmgConfig::default(),
            batching: BatchingConfig::default(),
            default_max_masks: 16,
            max_pixels: 40_000_000,
        }
    }
}

impl clearair_runtime::launch::ServiceConfig for SegmentationConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}
