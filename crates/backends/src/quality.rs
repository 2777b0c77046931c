//! Quality backends: the [`QualityBackend`] trait, the embedded BRISQUE and the loader that
//! picks it or DeQA-Score over TorchScript ([`torchscript`]).

pub mod torchscript;

use std::{path::PathBuf, sync::Arc};

use clearair_batch::{BatchObserver, BatchingConfig};
use clearair_imaging::Rgb8Image;
use clearair_model::TorchScriptConfig;
use clearair_priors::BrisqueModel;
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use torchscript::TorchScriptBackend;

pub use clearair_priors::QualityLevel;

/// Name of the BRISQUE backend, reported with every prior it computes.
pub const BRISQUE_BACKEND_NAME: &str = "brisque";

/// Name DeQA-Score's export reports (`deploy/export/deqa_export.py`).
pub const DEQA_BACKEND_NAME: &str = "deqa";

/// The F_q width a quality backend produces, known from its name alone where its
/// architecture fixes it (BRISQUE's 36 features; DeQA-Score's 4096-wide LLaMA-2 state); for
/// others only the weights' manifest says.
pub fn feature_width(name: &str) -> Option<usize> {
    match name {
        BRISQUE_BACKEND_NAME => Some(clearair_priors::BRISQUE_FEATURES),
        DEQA_BACKEND_NAME => Some(4096),
        _ => None,
    }
}

/// Which quality backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QualityBackendKind {
    /// BRISQUE on the CPU: `F_q` is its 36 scaled features.
    #[default]
    Brisque,
    /// DeQA-Score exported by `deploy/export/deqa_export.py` (`torchscript`, batched).
    Torchscript,
}

/// Which quality backend to load, and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityBackendConfig {
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
}

impl Default for QualityBackendConfig {
    fn default() -> Self {
        Self {
            backend: QualityBackendKind::Brisque,
            brisque_params: PathBuf::from("data/brisque/brisque_svr.json"),
            torchscript: TorchScriptConfig::with_module("models/deqa.pt"),
            device: "auto".to_owned(),
            batching: BatchingConfig::default(),
        }
    }
}

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
    /// Whether the backend batches requests itself (and reports each batch to its observer).
    fn is_batched(&self) -> bool {
        false
    }
    /// Width of `F_q`.
    fn feature_width(&self) -> usize;
    /// Assesses one image. Errors describe what about the image the backend cannot handle.
    fn assess(&self, image: &Rgb8Image) -> Result<QualityEstimate, BackendError>;
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
        BRISQUE_BACKEND_NAME
    }

    fn feature_width(&self) -> usize {
        clearair_priors::BRISQUE_FEATURES
    }

    fn assess(&self, image: &Rgb8Image) -> Result<QualityEstimate, BackendError> {
        let assessment = self
            .model
            .assess(
                image.width() as usize,
                image.height() as usize,
                image.as_bytes(),
            )
            .map_err(|source| BackendError::Prior {
                task: "quality assessment",
                source,
            })?;
        Ok(QualityEstimate {
            features: assessment.features,
            score: assessment.score,
            raw_score: assessment.raw_score,
            level: assessment.level,
        })
    }
}

/// Loads the configured backend; a batching backend reports its batches to `observer`.
pub fn load(
    config: &QualityBackendConfig,
    observer: Option<Arc<dyn BatchObserver>>,
) -> Result<Box<dyn QualityBackend>, BackendError> {
    match config.backend {
        QualityBackendKind::Brisque => {
            let model = BrisqueModel::load(&config.brisque_params).map_err(|source| {
                BackendError::load(
                    format!("BRISQUE parameters {}", config.brisque_params.display()),
                    format!("{source} (run `make setup` to create them)"),
                )
            })?;
            Ok(Box::new(BrisqueBackend::new(model)))
        }
        QualityBackendKind::Torchscript => Ok(Box::new(TorchScriptBackend::load(
            &config.torchscript,
            &config.device,
            &config.batching,
            observer,
        )?)),
    }
}

/// Runs the backend once on a synthetic photo-like image so the first request is not slow,
/// and checks that its output has the width it promises.
pub fn warm_up(backend: &dyn QualityBackend) -> Result<(), BackendError> {
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
        return Err(BackendError::load(
            format!("{} backend", backend.name()),
            format!(
                "it returned {} features where {} were expected",
                estimate.features.len(),
                backend.feature_width()
            ),
        ));
    }
    Ok(())
}
