//! Segmentation backends: the [`SegmentationBackend`] trait, the graph backend and the loader
//! that picks it or SAM2 over TorchScript ([`sam2`]).

pub mod sam2;

use std::sync::Arc;

use clearair_batch::{BatchObserver, BatchingConfig};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_model::TorchScriptConfig;
use clearair_priors::{GraphSegmenter, GraphSegmenterConfig};
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use sam2::{AmgConfig, Sam2Backend};

/// Name of the graph backend, reported with every set of masks it computes.
pub const GRAPH_BACKEND_NAME: &str = "graph";

/// Which segmentation backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentationBackendKind {
    /// Felzenszwalb–Huttenlocher graph segmentation on the CPU.
    #[default]
    Graph,
    /// SAM2 exported by `deploy/export/sam2_export.py` (`torchscript`, `sam2`).
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
        let defaults = GraphSegmenterConfig::default();
        Self {
            k: defaults.k,
            sigma: defaults.sigma,
            min_size: defaults.min_size,
            max_side: defaults.max_side,
        }
    }
}

/// Which segmentation backend to load, and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationBackendConfig {
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
}

impl Default for SegmentationBackendConfig {
    fn default() -> Self {
        Self {
            backend: SegmentationBackendKind::Graph,
            graph: GraphConfig::default(),
            torchscript: TorchScriptConfig::with_module("models/sam2.pt"),
            device: "auto".to_owned(),
            sam2: AmgConfig::default(),
            batching: BatchingConfig::default(),
        }
    }
}

/// A region segmenter.
pub trait SegmentationBackend: Send + Sync + 'static {
    /// Name reported with the masks and checked against the restorer's manifest.
    fn name(&self) -> &str;
    /// Whether the backend batches requests itself (and reports each batch to its observer).
    fn is_batched(&self) -> bool {
        false
    }
    /// At most `max_masks` (1..=16) masks at the image's resolution, with a score each.
    fn segment(&self, image: &Rgb8Image, max_masks: u32) -> Result<PackedMasks, BackendError>;
}

/// Felzenszwalb–Huttenlocher segmentation merged to ≤ 16 regions covering every pixel once.
#[derive(Debug)]
pub struct GraphBackend {
    segmenter: GraphSegmenter,
}

impl GraphBackend {
    /// A backend with the given graph parameters.
    pub fn new(config: GraphSegmenterConfig) -> Self {
        Self {
            segmenter: GraphSegmenter::new(config),
        }
    }
}

impl SegmentationBackend for GraphBackend {
    fn name(&self) -> &str {
        GRAPH_BACKEND_NAME
    }

    fn segment(&self, image: &Rgb8Image, max_masks: u32) -> Result<PackedMasks, BackendError> {
        let regions = self
            .segmenter
            .segment(
                image.width() as usize,
                image.height() as usize,
                image.as_bytes(),
                max_masks as usize,
            )
            .map_err(|source| BackendError::Prior {
                task: "segmentation",
                source,
            })?;
        Ok(PackedMasks::from_label_map(
            image.width(),
            image.height(),
            &regions.labels,
            regions.count as u32,
            &regions.scores,
        )?)
    }
}

/// Loads the configured backend; a batching backend reports its batches to `observer`.
pub fn load(
    config: &SegmentationBackendConfig,
    observer: Option<Arc<dyn BatchObserver>>,
) -> Result<Box<dyn SegmentationBackend>, BackendError> {
    match config.backend {
        SegmentationBackendKind::Graph => {
            let graph = GraphSegmenterConfig {
                k: config.graph.k,
                sigma: config.graph.sigma,
                min_size: config.graph.min_size,
                max_side: config.graph.max_side,
            };
            Ok(Box::new(GraphBackend::new(graph)))
        }
        SegmentationBackendKind::Torchscript => Ok(Box::new(Sam2Backend::load(
            &config.torchscript,
            &config.device,
            &config.sam2,
            &config.batching,
            observer,
        )?)),
    }
}

/// Segments a synthetic image once, which also validates the backend's parameters.
pub fn warm_up(backend: &dyn SegmentationBackend) -> Result<(), BackendError> {
    let (width, height) = (64u32, 48u32);
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let quadrant = u8::from(x >= width / 2) + 2 * u8::from(y >= height / 2);
            data.extend_from_slice(&[quadrant * 60, 200 - quadrant * 40, (x * 2) as u8]);
        }
    }
    let image = Rgb8Image::new(width, height, data).expect("consistent warm-up image");
    let what = || format!("{} backend", backend.name());
    let masks = backend
        .segment(&image, 16)
        .map_err(|e| BackendError::load(what(), format!("warm-up failed: {e}")))?;
    if masks.count() == 0 || masks.width() != width || masks.height() != height {
        return Err(BackendError::load(
            what(),
            format!(
                "warm-up returned {} masks of {}x{} for a {width}x{height} image",
                masks.count(),
                masks.width(),
                masks.height()
            ),
        ));
    }
    Ok(())
}
