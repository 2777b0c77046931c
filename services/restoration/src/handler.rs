//! `clearair.v1.RestorationService/Restore`: validates the image and every prior, then runs
//! the restorer off the async runtime.

use std::{sync::Arc, time::Instant};

use clearair_backends::restoration::neutral;
use clearair_imaging::{DecodeLimits, PackedMasks, Rgb8Image};
use clearair_proto::v1::{
    RestoreRequest, RestoreResponse, restoration_service_server::RestorationService,
};
use clearair_runtime::{
    deadline::Deadline,
    metrics::ServiceMetrics,
    model::{ModelSlot, blocking},
};
use tonic::{Request, Response, Status};

use crate::{
    RestorationConfig,
    config::BackendNames,
    error::RestorationError,
    restorer::{Restorer, RestorerInput},
};

/// Backend name under which orchestrators before 0.2 sent their own neutral fallback priors;
/// still accepted. Today an orchestrator leaves a failed prior out and the restorer fills in
/// its own neutral value.
const NEUTRAL_BACKEND: &str = "neutral";

/// Serves Restore with the loaded network.
pub(crate) struct RestorationHandler {
    slot: ModelSlot<Restorer>,
    metrics: ServiceMetrics,
    limits: DecodeLimits,
    backends: BackendNames,
}

impl RestorationHandler {
    pub(crate) fn new(
        slot: ModelSlot<Restorer>,
        metrics: ServiceMetrics,
        config: &RestorationConfig,
    ) -> Self {
        Self {
            slot,
            metrics,
            limits: DecodeLimits {
                max_pixels: config.max_pixels,
                ..DecodeLimits::default()
            },
            backends: config.backends.clone(),
        }
    }
}

/// Checks that a vector prior has `width` finite values.
fn check_vector(name: &str, values: &[f32], width: i64) -> Result<(), RestorationError> {
    if values.len() as i64 != width {
        return Err(RestorationError::Prior(format!(
            "`{name}` has {} values; this restorer expects {width}",
            values.len()
        )));
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(RestorationError::Prior(format!(
            "`{name}[{index}]` is {}; every value must be finite",
            values[index]
        )));
    }
    Ok(())
}

/// Checks that a prior comes from the backend the weights were trained with (or is neutral).
fn check_backend(name: &str, sent: &str, expected: &str) -> Result<(), RestorationError> {
    if sent == expected || sent == NEUTRAL_BACKEND {
        return Ok(());
    }
    Err(RestorationError::Prior(format!(
        "`{name}` comes from backend `{sent}`, but this restorer was trained with `{expected}`"
    )))
}

/// Validates a request completely before any model work.
fn validate(
    request: RestoreRequest,
    limits: &DecodeLimits,
    backends: &BackendNames,
    restorer: &Restorer,
) -> Result<RestorerInput, RestorationError> {
    let network = restorer.network_config();
    let image = request.image.ok_or(RestorationError::Missing("image"))?;
    let image = Rgb8Image::from_proto_owned(image, limits)?;
    // An absent prior is steered by the restorer's own neutral value (what training's prior
    // dropout substitutes), so a request with the image alone is served.
    let quality = match request.quality {
        Some(quality) => {
            check_backend("quality", &quality.backend, &backends.quality)?;
            check_vector("quality.features", &quality.features, network.quality_dim)?;
            quality.features
        }
        None => neutral::vector(network.quality_dim as usize),
    };
    let masks = match request.masks {
        Some(masks) => {
            check_backend("masks", &masks.backend, &backends.segmentation)?;
            PackedMasks::from_proto(&masks, image.width(), image.height())
                .map_err(|e| RestorationError::Prior(e.to_string()))?
        }
        None => neutral::masks(image.width(), image.height()),
    };
    let (content, degradation) = match request.degradation {
        Some(prior) => {
            check_backend("degradation", &prior.backend, &backends.degradation)?;
            check_vector("degradation.content", &prior.content, network.content_dim)?;
            check_vector(
                "degradation.degradation",
                &prior.degradation,
                network.degradation_dim,
            )?;
            (prior.content, prior.degradation)
        }
        None => (
            neutral::vector(network.content_dim as usize),
            neutral::vector(network.degradation_dim as usize),
        ),
    };
    Ok(RestorerInput {
        image,
        quality,
        masks,
        content,
        degradation,
    })
}

#[tonic::async_trait]
impl RestorationService for RestorationHandler {
    #[tracing::instrument(skip_all, fields(width, height, tiles))]
    async fn restore(
        &self,
        request: Request<RestoreRequest>,
    ) -> Result<Response<RestoreResponse>, Status> {
        let deadline = Deadline::of(&request);
        let restorer: Arc<Restorer> = self.slot.get()?;
        let input = validate(
            request.into_inner(),
            &self.limits,
            &self.backends,
            &restorer,
        )?;
        let span = tracing::Span::current();
        span.record("width", input.image.width())
            .record("height", input.image.height());
        if deadline.is_some_and(|d| d.expired()) {
            return Err(Deadline::exceeded("restoration"));
        }
        let (restored, elapsed) = blocking(move || {
            let started = Instant::now();
            (restorer.restore(&input), started.elapsed())
        })
        .await?;
        self.metrics.observe_model(elapsed, 1);
        let (image, tiles) = restored?;
        span.record("tiles", tiles);
        Ok(Response::new(RestoreResponse {
            image: Some(image.to_proto()),
            model_milliseconds: elapsed.as_secs_f64() * 1e3,
            tiles,
        }))
    }
}
