//! `clearair.v1.DegradationService/Embed`.

use std::time::Instant;

use clearair_backends::degradation::DegradationBackend;
use clearair_imaging::{DecodeLimits, Rgb8Image};
use clearair_model::DegradationKind;
use clearair_proto::v1::{
    DegradationKind as WireKind, DegradationPrior, DegradationProbability, EmbedRequest,
    EmbedResponse, degradation_service_server::DegradationService,
};
use clearair_runtime::{
    deadline::Deadline,
    metrics::ServiceMetrics,
    model::{ModelSlot, blocking},
};
use tonic::{Request, Response, Status};

use crate::{DegradationConfig, error::DegradationError};

/// Serves Embed with the loaded backend.
pub(crate) struct DegradationHandler {
    slot: ModelSlot<Box<dyn DegradationBackend>>,
    metrics: ServiceMetrics,
    limits: DecodeLimits,
}

impl DegradationHandler {
    pub(crate) fn new(
        slot: ModelSlot<Box<dyn DegradationBackend>>,
        metrics: ServiceMetrics,
        config: &DegradationConfig,
    ) -> Self {
        Self {
            slot,
            metrics,
            limits: DecodeLimits {
                max_pixels: config.max_pixels,
                ..DecodeLimits::default()
            },
        }
    }
}

/// The wire form of a degradation kind.
pub(crate) fn wire_kind(kind: DegradationKind) -> WireKind {
    match kind {
        DegradationKind::Noise => WireKind::Noise,
        DegradationKind::Haze => WireKind::Haze,
        DegradationKind::Rain => WireKind::Rain,
        DegradationKind::Blur => WireKind::Blur,
        DegradationKind::LowLight => WireKind::LowLight,
    }
}

#[tonic::async_trait]
impl DegradationService for DegradationHandler {
    #[tracing::instrument(skip_all, fields(width, height))]
    async fn embed(
        &self,
        request: Request<EmbedRequest>,
    ) -> Result<Response<EmbedResponse>, Status> {
        let deadline = Deadline::of(&request);
        let image = request
            .into_inner()
            .image
            .ok_or(DegradationError::MissingImage)?;
        let image =
            Rgb8Image::from_proto_owned(image, &self.limits).map_err(DegradationError::from)?;
        tracing::Span::current()
            .record("width", image.width())
            .record("height", image.height());
        let backend = self.slot.get()?;
        if deadline.is_some_and(|d| d.expired()) {
            return Err(Deadline::exceeded("degradation embedding"));
        }
        let name = backend.name().to_owned();
        let batched = backend.is_batched();
        let (estimate, elapsed) = blocking(move || {
            let started = Instant::now();
            (backend.embed(&image), started.elapsed())
        })
        .await?;
        if !batched {
            // A batching backend records each batch itself.
            self.metrics.observe_model(elapsed, 1);
        }
        let estimate = estimate.map_err(DegradationError::from)?;
        let wire = |probabilities: [f32; 5]| -> Vec<DegradationProbability> {
            DegradationKind::ALL
                .iter()
                .zip(probabilities)
                .map(|(kind, probability)| DegradationProbability {
                    kind: wire_kind(*kind) as i32,
                    probability,
                })
                .collect()
        };
        let (gate_view, gate_probabilities) = match estimate.gate {
            Some((view, probabilities)) => (view.as_str().to_owned(), wire(probabilities)),
            None => (String::new(), Vec::new()),
        };
        Ok(Response::new(EmbedResponse {
            degradation: Some(DegradationPrior {
                content: estimate.content,
                degradation: estimate.degradation,
                probabilities: wire(estimate.probabilities),
                backend: name,
                gate_probabilities,
                gate_view,
            }),
            model_milliseconds: elapsed.as_secs_f64() * 1e3,
        }))
    }
}
