//! `clearair.v1.QualityService/Assess`.

use std::time::Instant;

use clearair_backends::quality::{QualityBackend, QualityLevel};
use clearair_imaging::{DecodeLimits, Rgb8Image};
use clearair_proto::v1::{
    AssessRequest, AssessResponse, QualityLevel as WireLevel, QualityPrior,
    quality_service_server::QualityService,
};
use clearair_runtime::{
    deadline::Deadline,
    metrics::ServiceMetrics,
    model::{ModelSlot, blocking},
};
use tonic::{Request, Response, Status};

use crate::{QualityConfig, error::QualityError};

/// Serves Assess with the loaded backend.
pub(crate) struct QualityHandler {
    slot: ModelSlot<Box<dyn QualityBackend>>,
    metrics: ServiceMetrics,
    limits: DecodeLimits,
}

impl QualityHandler {
    pub(crate) fn new(
        slot: ModelSlot<Box<dyn QualityBackend>>,
        metrics: ServiceMetrics,
        config: &QualityConfig,
    ) -> Self {
        let limits = DecodeLimits {
            max_pixels: config.max_pixels,
            ..DecodeLimits::default()
        };
        Self {
            slot,
            metrics,
            limits,
        }
    }
}

/// The wire form of a quality level.
pub(crate) fn wire_level(level: QualityLevel) -> WireLevel {
    match level {
        QualityLevel::Bad => WireLevel::Bad,
        QualityLevel::Poor => WireLevel::Poor,
        QualityLevel::Fair => WireLevel::Fair,
        QualityLevel::Good => WireLevel::Good,
        QualityLevel::Excellent => WireLevel::Excellent,
    }
}

#[tonic::async_trait]
impl QualityService for QualityHandler {
    #[tracing::instrument(skip_all, fields(width, height))]
    async fn assess(
        &self,
        request: Request<AssessRequest>,
    ) -> Result<Response<AssessResponse>, Status> {
        let deadline = Deadline::of(&request);
        let image = request
            .into_inner()
            .image
            .ok_or(QualityError::MissingImage)?;
        let image = Rgb8Image::from_proto_owned(image, &self.limits).map_err(QualityError::from)?;
        tracing::Span::current()
            .record("width", image.width())
            .record("height", image.height());
        let backend = self.slot.get()?;
        if deadline.is_some_and(|d| d.expired()) {
            return Err(Deadline::exceeded("quality assessment"));
        }
        let name = backend.name().to_owned();
        let batched = backend.is_batched();
        let (estimate, elapsed) = blocking(move || {
            let started = Instant::now();
            (backend.assess(&image), started.elapsed())
        })
        .await?;
        if !batched {
            // A batching backend records each batch itself.
            self.metrics.observe_model(elapsed, 1);
        }
        let estimate = estimate.map_err(QualityError::from)?;
        Ok(Response::new(AssessResponse {
            quality: Some(QualityPrior {
                features: estimate.features,
                score: estimate.score,
                level: wire_level(estimate.level) as i32,
                backend: name,
                raw_score: estimate.raw_score,
            }),
            model_milliseconds: elapsed.as_secs_f64() * 1e3,
        }))
    }
}
