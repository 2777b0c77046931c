//! Quality backends: the trait, the embedded BRISQUE and the loader that picks it or
//! DeQA-Score over TorchScript ([`crate::torchscript`]).

use clearair_imaging::Rgb8Image;
use clearair_priors::{BrisqueModel, QualityLevel};

use crate::{
    config::{QualityBackendKind, QualityConfig},
    error::QualityError,
    torchscript::TorchScriptBackend,
};

/// One image's quality prior, whatever the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityEstimate {
    /// The quality representation `F_q` (width [`QualityBackend::feature_width`]).
    pub features: Vec<f32>,
    /// Quality on 1..5, 5 excellent.
    pub score: f32,
    /// The backend's own score (BRISQUE: 0 best .. 100 worst).
    pub raw_score: f32,
    /// Five-level label of `score`.
    pub level: QualityLevel,
}

/// A global quality model.
pub trait QualityBackend: Send + Sync + 'static {
    /// Name reported in every prior and checked against the restorer's manifest.
    fn name(&self) -> &str;
    /// Whether the backend batches requests itself (and records its own model metrics).
    fn is_batched(&self) -> bool {
        false
    }
    /// Width of `F_q`.
    fn feature_width(&self) -> usize;
    /// Assesses one image. Errors describe what about the image the backend cannot handle.
    fn assess(&self, image: &Rgb8Image) -> Result<QualityEstimate, QualityError>;
}

/// BRISQUE with the `brisque` package's published SVR.
#[derive(Debug)]
pub struct BrisqueBackend {
    model: BrisqueModel,
}

impl BrisqueBackend {
    /// Wraps loaded BRISQUE parameters.
    pub fn new(model: BrisqueModel) -> Self {
        Self { model }
    }
}

impl QualityBackend for BrisqueBackend {
    fn name(&self) -> &str {
        "brisque"
    }

    fn feature_width(&self) -> usize {
        clearair_priors::BRISQUE_FEATURES
    }

    fn assess(&self, image: &Rgb8Image) -> Result<QualityEstimate, QualityError> {
        let assessment = self.model.assess(
            image.width() as usize,
            image.height() as usize,
            image.as_bytes(),
        )?;
        Ok(QualityEstimate {
            features: assessment.features,
            score: assessment.score,
            raw_score: assessment.raw_score,
            level: assessment.level,
        })
    }
}

/// Loads the configured backend.
pub fn load(config: &QualityConfig) -> Result<Box<dyn QualityBackend>, QualityError> {
    match config.backend {
        QualityBackendKind::Brisque => {
            let model = BrisqueModel::load(&config.brisque_params).map_err(|source| {
                QualityError::Load {
                    what: format!("BRISQUE parameters {}", config.brisque_params.display()),
                    reason: format!("{source} (run `make setup` to create them)"),
                }
            })?;
            Ok(Box::new(BrisqueBackend::new(model)))
        }
        QualityBackendKind::Torchscript => Ok(Box::new(TorchScriptBackend::load(
            &config.torchscript,
            &config.device,
            &config.batching,
        )?)),
    }
}

/// Runs the backend once on a synthetic photo-like image so the first request is not slow,
/// and checks that its output has the width it promises.
pub fn warm_up(backend: &dyn QualityBackend) -> Result<(), QualityError> {
    let (width, height) = (96u32, 64u32);
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let v = ((x * 7 + y * 3) % 251) as u8;
            data.extend_from_slice(&[v, v.wrapping_add(40), 255 - v]);
        }
    }
    let image = Rgb8Image::new(width, height, data).expect("consistent warm-up image");
    let estimate = backend.assess(&image)?;
    if estimate.features.len() != backend.feature_width() {
        return Err(QualityError::Load {
            what: format!("{} backend", backend.name()),
            reason: format!(
                "it returned {} features where {} were expected",
                estimate.features.len(),
                backend.feature_width()
            ),
        });
    }
    Ok(())
}
