//! The public `clearair.v1.ClearAir` service: Restore, Analyze and RestoreStream.

use std::sync::Arc;

use clearair_proto::v1::{
    AnalyzeRequest, AnalyzeResponse, ClearAirRestoreRequest, ClearAirRestoreResponse,
    RestoreStreamRequest, RestoreStreamResponse, clear_air_server::ClearAir,
};
use clearair_runtime::deadline::Deadline;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    error::OrchestratorError,
    pipeline::{Pipeline, Timings},
    stream,
    summary::summarize,
};

/// Serves the public API.
pub(crate) struct ClearAirHandler {
    pipeline: Arc<Pipeline>,
}

impl ClearAirHandler {
    pub(crate) fn new(pipeline: Arc<Pipeline>) -> Self {
        Self { pipeline }
    }
}

/// Runs the whole pipeline on one encoded image.
pub(crate) async fn restore_encoded(
    pipeline: &Pipeline,
    data: Vec<u8>,
    output_format: i32,
    jpeg_quality: u32,
    deadline: Option<Deadline>,
    progress: &mut (dyn FnMut(&str, f32) + Send),
) -> Result<ClearAirRestoreResponse, OrchestratorError> {
    if data.is_empty() {
        return Err(OrchestratorError::Image(
            clearair_imaging::ImagingError::Empty,
        ));
    }
    // Refuse a bad output format before any model work.
    clearair_imaging::OutputFormat::from_proto(output_format)?;
    clearair_imaging::jpeg_quality(jpeg_quality)?;
    let mut timings = Timings::start();
    let image = pipeline.decode(data, &mut timings).await?;
    progress("decode", 0.15);
    let priors = pipeline.priors(&image, deadline, &mut timings).await?;
    progress("priors", 0.45);
    let restored = pipeline
        .restore(&image, &priors, deadline, &mut timings)
        .await?;
    progress("restoration", 0.9);
    let (width, height) = (image.width(), image.height());
    let encoded = pipeline
        .encode(restored, output_format, jpeg_quality, &mut timings)
        .await?;
    progress("encode", 0.98);
    Ok(ClearAirRestoreResponse {
        image: Some(encoded),
        priors: Some(summarize(&priors)),
        timings: timings.finish(),
        fallbacks: priors.fallbacks.iter().map(|k| *k as i32).collect(),
        width,
        height,
    })
}

#[tonic::async_trait]
impl ClearAir for ClearAirHandler {
    #[tracing::instrument(skip_all, fields(bytes))]
    async fn restore(
        &self,
        request: Request<ClearAirRestoreRequest>,
    ) -> Result<Response<ClearAirRestoreResponse>, Status> {
        let deadline = Deadline::of(&request);
        let request = request.into_inner();
        let image = request.image.ok_or(OrchestratorError::MissingImage)?;
        tracing::Span::current().record("bytes", image.data.len());
        let response = restore_encoded(
            &self.pipeline,
            image.data,
            request.output_format,
            request.jpeg_quality,
            deadline,
            &mut |_, _| {},
        )
        .await?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(bytes))]
    async fn analyze(
        &self,
        request: Request<AnalyzeRequest>,
    ) -> Result<Response<AnalyzeResponse>, Status> {
        let deadline = Deadline::of(&request);
        let request = request.into_inner();
        let image = request.image.ok_or(OrchestratorError::MissingImage)?;
        if image.data.is_empty() {
            return Err(OrchestratorError::Image(clearair_imaging::ImagingError::Empty).into());
        }
        tracing::Span::current().record("bytes", image.data.len());
        let mut timings = Timings::start();
        let decoded = self.pipeline.decode(image.data, &mut timings).await?;
        let priors = self
            .pipeline
            .priors(&decoded, deadline, &mut timings)
            .await?;
        let full = request.include_priors.then(|| priors.as_ref().clone());
        Ok(Response::new(AnalyzeResponse {
            priors: Some(summarize(&priors)),
            timings: timings.finish(),
            fallbacks: priors.fallbacks.iter().map(|k| *k as i32).collect(),
            quality: full.as_ref().and_then(|p| p.quality.clone()),
            masks: full.as_ref().and_then(|p| p.masks.clone()),
            degradation: full.and_then(|p| p.degradation),
            width: decoded.width(),
            height: decoded.height(),
        }))
    }

    type RestoreStreamStream = ReceiverStream<Result<RestoreStreamResponse, Status>>;

    async fn restore_stream(
        &self,
        request: Request<Streaming<RestoreStreamRequest>>,
    ) -> Result<Response<Self::RestoreStreamStream>, Status> {
        let deadline = Deadline::of(&request);
        let uploads = request.into_inner();
        Ok(Response::new(stream::start(
            self.pipeline.clone(),
            uploads,
            deadline,
        )))
    }
}
