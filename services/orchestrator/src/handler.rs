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
    pipeline::{OutputOptions, Pipeline, Timings},
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
        let output = OutputOptions::parse(request.output_format, request.jpeg_quality)?;
        let response = self
            .pipeline
            .restore_encoded(image.data, output, deadline, None)
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
