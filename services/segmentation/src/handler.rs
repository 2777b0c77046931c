//! `clearair.v1.SegmentationService/Segment`.

use std::time::Instant;

use clearair_backends::segmentation::SegmentationBackend;
use clearair_imaging::{DecodeLimits, MAX_MASKS, Rgb8Image};
use clearair_proto::v1::{
    SegmentRequest, SegmentResponse, segmentation_service_server::SegmentationService,
};
use clearair_runtime::{
    deadline::Deadline,
    metrics::ServiceMetrics,
    model::{ModelSlot, blocking},
};
use tonic::{Request, Response, Status};

use crate::{SegmentationConfig, error::SegmentationError};

/// Serves Segment with the loaded backend.
pub(crate) struct SegmentationHandler {
    slot: ModelSlot<Box<dyn SegmentationBackend>>,
    metrics: ServiceMetrics,
    limits: DecodeLimits,
    default_max_masks: u32,
}

impl SegmentationHandler {
    pub(crate) fn new(
        slot: ModelSlot<Box<dyn SegmentationBackend>>,
        metrics: ServiceMetrics,
        config: &SegmentationConfig,
    ) -> Self {
        Self {
            slot,
            metrics,
            limits: DecodeLimits {
                max_pixels: config.max_pixels,
                ..DecodeLimits::default()
            },
            default_max_masks: config.default_max_masks.clamp(1, MAX_MASKS),
        }
    }
}

#[tonic::async_trait]
impl SegmentationService for SegmentationHandler {
    #[tracing::instrument(skip_all, fields(width, height, masks))]
    async fn segment(
        &self,
        request: Request<SegmentRequest>,
    ) -> Result<Response<SegmentResponse>, Status> {
        let deadline = Deadline::of(&request);
        let request = request.into_inner();
        let max_masks = match request.max_masks {
            0 => self.default_max_masks,
            n if n <= MAX_MASKS => n,
            n => return Err(SegmentationError::MaskCount(n).into()),
        };
        let image = request.image.ok_or(SegmentationError::MissingImage)?;
        let image =
            Rgb8Image::from_proto_owned(image, &self.limits).map_err(SegmentationError::from)?;
        let span = tracing::Span::current();
        span.record("width", image.width())
            .record("height", image.height());
        let backend = self.slot.get()?;
        if deadline.is_some_and(|d| d.expired()) {
            return Err(Deadline::exceeded("segmentation"));
        }
        let name = backend.name().to_owned();
        let batched = backend.is_batched();
        let (masks, elapsed) = blocking(move || {
            let started = Instant::now();
            (backend.segment(&image, max_masks), started.elapsed())
        })
        .await?;
        if !batched {
            // A batching backend records each batch itself.
            self.metrics.observe_model(elapsed, 1);
        }
        let masks = masks.map_err(SegmentationError::from)?;
        span.record("masks", masks.count());
        Ok(Response::new(SegmentResponse {
            masks: Some(masks.into_proto(name)),
            model_milliseconds: elapsed.as_secs_f64() * 1e3,
        }))
    }
}
