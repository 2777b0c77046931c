//! Segmentation backends: the trait, the graph backend and the loader that picks it or SAM2
//! over TorchScript ([`crate::sam2`]).

use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_priors::{GraphSegmenter, GraphSegmenterConfig};

use crate::{
    config::{SegmentationBackendKind, SegmentationConfig},
    error::SegmentationError,
    sam2::Sam2Backend,
};

/// A region segmenter.
pub trait SegmentationBackend: Send + Sync + 'static {
    /// Name reported with the masks and checked against the restorer's manifest.
    fn name(&self) -> &str;
    /// Whether the backend batches requests itself (and records its own model metrics).
    fn is_batched(&self) -> bool {
        false
    }
    /// At most `max_masks` (1..=16) masks at the image's resolution, with a score each.
    fn segment(&self, image: &Rgb8Image, max_masks: u32) -> Result<PackedMasks, SegmentationError>;
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
        "graph"
    }

    fn segment(&self, image: &Rgb8Image, max_masks: u32) -> Result<PackedMasks, SegmentationError> {
        let regions = self.segmenter.segment(
            image.width() as usize,
            image.height() as usize,
            image.as_bytes(),
            max_masks as usize,
        )?;
        Ok(PackedMasks::from_label_map(
            image.width(),
            image.height(),
            &regions.labels,
            regions.count as u32,
            &regions.scores,
        )?)
    }
}

/// Loads the configured backend.
pub fn load(
    config: &SegmentationConfig,
) -> Result<Box<dyn SegmentationBackend>, SegmentationError> {
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
        )?)),
    }
}

/// Segments a synthetic image once, which also validates the backend's parameters.
pub fn warm_up(backend: &dyn SegmentationBackend) -> Result<(), SegmentationError> {
    let (width, height) = (64u32, 48u32);
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let quadrant = u8::from(x >= width / 2) + 2 * u8::from(y >= height / 2);
            data.extend_from_slice(&[quadrant * 60, 200 - quadrant * 40, (x * 2) as u8]);
        }
    }
    let image = Rgb8Image::new(width, height, data).expect("consistent warm-up image");
    let masks = backend
        .segment(&image, 16)
        .map_err(|e| SegmentationError::Load {
            what: format!("{} backend", backend.name()),
            reason: format!("warm-up failed: {e}"),
        })?;
    if masks.count() == 0 || masks.width() != width || masks.height() != height {
        return Err(SegmentationError::Load {
            what: format!("{} backend", backend.name()),
            reason: format!(
                "warm-up returned {} masks of {}x{} for a {width}x{height} image",
                masks.count(),
                masks.width(),
                masks.height()
            ),
        });
    }
    Ok(())
}
