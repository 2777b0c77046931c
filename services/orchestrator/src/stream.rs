//! `RestoreStream`: the upload arrives in chunks after a header; progress events go back as
//! the stages finish, then the result header, then the encoded result in chunks.

use std::sync::Arc;

use clearair_proto::v1::{
    RestoreProgress, RestoreStreamHeader, RestoreStreamRequest, RestoreStreamResponse,
    RestoreStreamResult, restore_stream_request::Part, restore_stream_response::Event,
};
use clearair_runtime::deadline::Deadline;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::Instrument;

use crate::{error::OrchestratorError, handler::restore_encoded, pipeline::Pipeline};

/// Result chunk size when the header asks for none.
const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

type Sender = mpsc::Sender<Result<RestoreStreamResponse, Status>>;

/// Spawns the work of one call and returns the stream of its events.
pub(crate) fn start(
    pipeline: Arc<Pipeline>,
    uploads: Streaming<RestoreStreamRequest>,
    deadline: Option<Deadline>,
) -> ReceiverStream<Result<RestoreStreamResponse, Status>> {
    let (sender, receiver) = mpsc::channel(16);
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            if let Err(error) = run(&pipeline, uploads, deadline, &sender).await {
                let _ = sender.send(Err(error.into())).await;
            }
        }
        .instrument(span),
    );
    ReceiverStream::new(receiver)
}

fn progress(stage: &str, fraction: f32, message: String) -> RestoreStreamResponse {
    RestoreStreamResponse {
        event: Some(Event::Progress(RestoreProgress {
            stage: stage.to_owned(),
            fraction,
            message,
        })),
    }
}

async fn receive_upload(
    uploads: &mut Streaming<RestoreStreamRequest>,
    limit: u64,
    sender: &Sender,
) -> Result<(RestoreStreamHeader, Vec<u8>), OrchestratorError> {
    let header = match uploads.next().await {
        Some(Ok(RestoreStreamRequest {
            part: Some(Part::Header(header)),
        })) => header,
        Some(Ok(_)) => {
            return Err(OrchestratorError::Stream(
                "the first RestoreStream message must be a `header`".to_owned(),
            ));
        }
        Some(Err(status)) => return Err(OrchestratorError::Stream(status.message().to_owned())),
        None => {
            return Err(OrchestratorError::Stream(
                "empty RestoreStream call".to_owned(),
            ));
        }
    };
    if header.total_bytes > limit {
        return Err(OrchestratorError::UploadTooLarge { limit });
    }
    let mut data = Vec::with_capacity(header.total_bytes as usize);
    let mut reported = 0.0f32;
    while let Some(message) = uploads.next().await {
        match message
            .map_err(|s| OrchestratorError::Stream(s.message().to_owned()))?
            .part
        {
            Some(Part::Chunk(chunk)) => {
                if data.len() as u64 + chunk.len() as u64 > limit {
                    return Err(OrchestratorError::UploadTooLarge { limit });
                }
                data.extend_from_slice(&chunk);
            }
            Some(Part::Header(_)) => {
                return Err(OrchestratorError::Stream(
                    "a second `header` arrived; send it once, first".to_owned(),
                ));
            }
            None => {
                return Err(OrchestratorError::Stream(
                    "a RestoreStream message has neither `header` nor `chunk`".to_owned(),
                ));
            }
        }
        if header.total_bytes > 0 {
            let fraction = data.len() as f32 / header.total_bytes as f32;
            // Report upload progress in tenths, not per chunk.
            if fraction - reported >= 0.1 {
                reported = fraction;
                let event = progress(
                    "upload",
                    0.1 * fraction.min(1.0),
                    format!("{} bytes received", data.len()),
                );
                let _ = sender.send(Ok(event)).await;
            }
        }
    }
    Ok((header, data))
}

async fn run(
    pipeline: &Pipeline,
    mut uploads: Streaming<RestoreStreamRequest>,
    deadline: Option<Deadline>,
    sender: &Sender,
) -> Result<(), OrchestratorError> {
    let limit = pipeline.limits().max_encoded_bytes;
    let (header, data) = receive_upload(&mut uploads, limit, sender).await?;
    let _ = sender
        .send(Ok(progress(
            "upload",
            0.1,
            format!("{} bytes received", data.len()),
        )))
        .await;
    // Progress is best effort: if the client reads slowly, an event is dropped rather than
    // holding up the restoration.
    let mut response = restore_encoded(
        pipeline,
        data,
        header.output_format,
        header.jpeg_quality,
        deadline,
        &mut |stage, fraction| {
            let _ = sender.try_send(Ok(progress(stage, fraction, format!("{stage} done"))));
        },
    )
    .await?;
    let image = response.image.take().unwrap_or_default();
    let total_bytes = image.data.len() as u64;
    response.image = Some(clearair_proto::v1::EncodedImage {
        data: Vec::new(),
        media_type: image.media_type,
    });
    let result = RestoreStreamResponse {
        event: Some(Event::Result(RestoreStreamResult {
            response: Some(response),
            total_bytes,
        })),
    };
    if sender.send(Ok(result)).await.is_err() {
        return Ok(());
    }
    let chunk_bytes = match header.chunk_bytes {
        0 => DEFAULT_CHUNK_BYTES,
        n => n as usize,
    };
    for chunk in image.data.chunks(chunk_bytes) {
        let message = RestoreStreamResponse {
            event: Some(Event::Chunk(chunk.to_vec())),
        };
        if sender.send(Ok(message)).await.is_err() {
            break;
        }
    }
    Ok(())
}
