//! The priors a training sample or an evaluation image is steered by, computed exactly as the
//! mesh computes them: BRISQUE F_q and graph-segmentation masks from the services' backends
//! (the `clearair-backends` library, on 8-bit pixels as the orchestrator sends them), F_c/F_d
//! from the degradation encoder on the service's view of the image ([`EncoderView`]) — and the
//! orchestrator's neutral fallbacks, which training substitutes at random (prior dropout) so
//! the restorer degrades gracefully when a prior service is down.

use std::path::Path;

use clearair_backends::{
    degradation::{self, EncoderView},
    quality::{self, QualityBackendConfig},
    segmentation::{self, SegmentationBackendConfig},
};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_model::PriorBackends;
use clearair_model::weights::{
    DegradationBackendSpec, QualityBackendSpec, SegmentationBackendSpec,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use crate::error::{Result, TrainError};

/// Masks requested from the segmenter, as the orchestrator asks by default.
pub const MAX_MASKS: u32 = clearair_imaging::MAX_MASKS;
/// Long side the degradation service scales images to before its encoder.
pub const ENCODER_MAX_SIDE: u32 = degradation::ENCODER_MAX_SIDE;
/// Width of F_c and F_d on the wire.
pub const EMBEDDING_WIDTH: i64 = degradation::EMBEDDING_WIDTH as i64;

/// The two CPU prior backends of the embedded mesh, loaded with the services' default
/// configurations.
pub struct CpuPriorBackends {
    quality: Box<dyn quality::QualityBackend>,
    segmentation: Box<dyn segmentation::SegmentationBackend>,
}

impl std::fmt::Debug for CpuPriorBackends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPriorBackends")
            .field("quality", &self.quality.name())
            .field("segmentation", &self.segmentation.name())
            .finish()
    }
}

/// The CPU priors of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuPriors {
    /// F_q, or the neutral zeros when the quality backend refused the image.
    pub quality: Vec<f32>,
    /// Whether `quality` is the neutral fallback because the backend refused the image
    /// (too small, textureless), as the orchestrator would substitute it.
    pub quality_fell_back: bool,
    /// Region masks at the image's size.
    pub masks: PackedMasks,
}

impl CpuPriorBackends {
    /// Loads BRISQUE from `brisque_params` and the graph segmenter with the services'
    /// defaults.
    pub fn load(brisque_params: &Path) -> Result<Self> {
        let quality_config = QualityBackendConfig {
            brisque_params: brisque_params.to_path_buf(),
            ..QualityBackendConfig::default()
        };
        let quality =
            quality::load(&quality_config, None).map_err(|e| TrainError::PriorBackend {
                backend: "quality",
                reason: e.to_string(),
            })?;
        let segmentation = segmentation::load(&SegmentationBackendConfig::default(), None)
            .map_err(|e| TrainError::PriorBackend {
                backend: "segmentation",
                reason: e.to_string(),
            })?;
        Ok(Self {
            quality,
            segmentation,
        })
    }

    /// Width of F_q.
    pub fn quality_width(&self) -> usize {
        self.quality.feature_width()
    }

    /// The backends a restorer trained on these priors, with F_c/F_d of the encoder's `view`,
    /// must be run with (its manifest's `backends`).
    pub fn backends(&self, view: EncoderView) -> PriorBackends {
        PriorBackends {
            quality: QualityBackendSpec {
                name: self.quality.name().to_owned(),
                width: self.quality.feature_width() as i64,
            },
            segmentation: SegmentationBackendSpec {
                name: self.segmentation.name().to_owned(),
                max_masks: i64::from(MAX_MASKS),
            },
            degradation: DegradationBackendSpec {
                name: view.backend_name().to_owned(),
                content_dim: EMBEDDING_WIDTH,
                degradation_dim: EMBEDDING_WIDTH,
            },
        }
    }

    /// F_q and the masks of `image`. A quality refusal becomes the neutral F_q (the
    /// orchestrator's fallback); a segmentation failure is an error, since the graph
    /// segmenter accepts every non-empty image.
    pub fn compute(&self, image: &Rgb8Image) -> Result<CpuPriors> {
        let (quality, quality_fell_back) = self.quality(image);
        Ok(CpuPriors {
            quality,
            quality_fell_back,
            masks: self.masks(image)?,
        })
    }

    /// F_q of `image`, and whether BRISQUE refused it (F_q is then neutral).
    pub fn quality(&self, image: &Rgb8Image) -> (Vec<f32>, bool) {
        match self.quality.assess(image) {
            Ok(estimate) => (estimate.features, false),
            Err(_) => (neutral_quality(self.quality_width()), true),
        }
    }

    /// The segmenter's masks of `image`.
    pub fn masks(&self, image: &Rgb8Image) -> Result<PackedMasks> {
        self.segmentation
            .segment(image, MAX_MASKS)
            .map_err(|e| TrainError::PriorBackend {
                backend: "segmentation",
                reason: e.to_string(),
            })
    }
}

/// The restorer's neutral F_q (all zeros), which it uses when F_q is absent.
pub fn neutral_quality(width: usize) -> Vec<f32> {
    clearair_backends::restoration::neutral::vector(width)
}

/// The restorer's neutral masks (one mask covering the whole image).
pub fn neutral_masks(width: u32, height: u32) -> PackedMasks {
    clearair_backends::restoration::neutral::masks(width, height)
}

/// Which priors of one sample are replaced by their neutral values. F_c and F_d come from
/// one service, so they fall back together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PriorDropout {
    /// F_q → zeros.
    pub quality: bool,
    /// Masks → one full mask.
    pub masks: bool,
    /// F_c and F_d → zeros.
    pub embeddings: bool,
}

impl PriorDropout {
    /// Every prior neutral.
    pub const ALL: Self = Self {
        quality: true,
        masks: true,
        embeddings: true,
    };

    /// Drops each prior independently with `probability`.
    pub fn sample(probability: f64, rng: &mut ChaCha8Rng) -> Self {
        let probability = probability.clamp(0.0, 1.0);
        Self {
            quality: rng.gen_bool(probability),
            masks: rng.gen_bool(probability),
            embeddings: rng.gen_bool(probability),
        }
    }
}

/// Stacks per-sample masks (`count × height × width` floats each) into N×M×H×W, M the
/// largest count; samples with fewer masks are padded with empty masks, which the SGU
/// ignores.
pub fn stack_masks(masks: &[(Vec<f32>, u32)], height: u32, width: u32) -> Tensor {
    let most = masks.iter().map(|(_, count)| *count).max().unwrap_or(0);
    let plane = height as usize * width as usize;
    let mut data = vec![0.0f32; masks.len() * most as usize * plane];
    for (sample, (values, count)) in masks.iter().enumerate() {
        let start = sample * most as usize * plane;
        data[start..start + *count as usize * plane].copy_from_slice(values);
    }
    Tensor::from_slice(&data).view([
        masks.len() as i64,
        i64::from(most),
        i64::from(height),
        i64::from(width),
    ])
}

/// F_q rows (N×width) from per-sample vectors, on `device`.
pub fn stack_quality(rows: &[Vec<f32>], device: Device) -> Tensor {
    let width = rows.first().map_or(0, Vec::len) as i64;
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat)
        .view([rows.len() as i64, width])
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tch::Kind;

    #[test]
    fn neutral_masks_cover_everything_once() {
        let masks = neutral_masks(5, 3);
        assert_eq!(masks.count(), 1);
        assert!(masks.to_planar_f32().iter().all(|&v| v == 1.0));
    }

    #[test]
    fn dropout_rate_is_roughly_the_probability() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws: Vec<PriorDropout> = (0..4000)
            .map(|_| PriorDropout::sample(0.1, &mut rng))
            .collect();
        for pick in [
            |d: &PriorDropout| d.quality,
            |d: &PriorDropout| d.masks,
            |d: &PriorDropout| d.embeddings,
        ] {
            let rate = draws.iter().filter(|d| pick(d)).count() as f64 / draws.len() as f64;
            assert!((rate - 0.1).abs() < 0.02, "rate {rate}");
        }
        assert_eq!(PriorDropout::sample(0.0, &mut rng), PriorDropout::default());
    }

    #[test]
    fn masks_are_padded_with_empty_ones() {
        let stacked = stack_masks(
            &[(vec![1.0; 4], 1), ([0.0, 1.0, 1.0, 0.0].repeat(2), 2)],
            2,
            2,
        );
        assert_eq!(stacked.size(), [2, 2, 2, 2]);
        let first = stacked.get(0);
        assert_eq!(first.get(0).sum(Kind::Float).double_value(&[]), 4.0);
        assert_eq!(first.get(1).sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(stacked.get(1).sum(Kind::Float).double_value(&[]), 4.0);
    }
}
