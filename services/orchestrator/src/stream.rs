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
use tonic::{Code, Status, Streaming};
use tracing::Instrument;

use crate::{
    error::OrchestratorError,
    pipeline::{OutputOptions, Pipeline},
};

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
            match run(&pipeline, uploads, deadline, &sender).await {
                Ok(()) => {}
                // Nobody is listening: nothing to send, and not a fault of ours.
                Err(OrchestratorError::ClientGone(why)) => {
                    tracing::info!(%why, "RestoreStream stopped: the client left");
                }
                Err(error) => {
                    let _ = sender.send(Err(error.into())).await;
                }
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

/// What a transport error on the upload stream means: a message that does not decode is the
/// client's fault; anything else (reset, closed connection) means the client left.
fn upload_broke(status: Status) -> OrchestratorError {
    match status.code() {
        Code::InvalidArgument | Code::Internal | Code::OutOfRange => OrchestratorError::Stream(
            format!("the upload stream is malformed: {}", status.message()),
        ),
        _ => OrchestratorError::ClientGone(format!(
            "its upload stream ended with {:?}: {}",
            status.code(),
            status.message()
        )),
    }
}

/// Runs `work` until it finishes or the client stops listening (the response stream is
/// dropped), whichever comes first; in the second case `work` is dropped, which cancels its
/// calls to the prior and restoration services.
async fn until_client_leaves<T>(
    sender: &Sender,
    work: impl Future<Output = Result<T, OrchestratorError>>,
) -> Result<T, OrchestratorError> {
    tokio::select! {
        result = work => result,
        () = sender.closed() => Err(OrchestratorError::ClientGone(
            "it stopped reading the response stream".to_owned(),
        )),
    }
}

async fn receive_upload(
    uploads: &mut Streaming<RestoreStreamRequest>,
    limit: u64,
    sender: &Sender,
) -> Result<(RestoreStreamHeader, OutputOptions, Vec<u8>), OrchestratorError> {
    let header = match uploads.next().await {
        Some(Ok(RestoreStreamRequest {
            part: Some(Part::Header(header)),
        })) => header,
        Some(Ok(_)) => {
            return Err(OrchestratorError::Stream(
                "the first RestoreStream message must be a `header`".to_owned(),
            ));
        }
        Some(Err(status)) => return Err(upload_broke(status)),
        None => {
            return Err(OrchestratorError::Stream(
                "empty RestoreStream call".to_owned(),
            ));
        }
    };
    // The output options are checked before the upload is taken in.
    let output = OutputOptions::parse(header.output_format, header.jpeg_quality)?;
    if header.total_bytes > limit {
        return Err(OrchestratorError::UploadTooLarge { limit });
    }
    let mut data = Vec::with_capacity(header.total_bytes as usize);
    let mut reported = 0.0f32;
    while let Some(message) = uploads.next().await {
        match message.map_err(upload_broke)?.part {
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
    Ok((header, output, data))
}

async fn run(
    pipeline: &Pipeline,
    mut uploads: Streaming<RestoreStreamRequest>,
    deadline: Option<Deadline>,
    sender: &Sender,
) -> Result<(), OrchestratorError> {
    let limit = pipeline.limits().max_encoded_bytes;
    let (header, output, data) =
        until_client_leaves(sender, receive_upload(&mut uploads, limit, sender)).await?;
    let _ = sender
        .send(Ok(progress(
            "upload",
            0.1,
            format!("{} bytes received", data.len()),
        )))
        .await;
    // Progress is best effort: if the client reads slowly, an event is dropped rather than
    // holding up the restoration.
    let mut report = |stage: &str, fraction, message| {
        let _ = sender.try_send(Ok(progress(stage, fraction, message)));
    };
    let work = pipeline.restore_encoded(data, output, deadline, Some(&mut report));
    let mut response = until_client_leaves(sender, work).await?;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Sets its flag when dropped: shows that work was abandoned, not left running.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn work_stops_when_the_client_stops_listening() {
        let (sender, receiver) = mpsc::channel(1);
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = DropFlag(dropped.clone());
        let work = async move {
            let _guard = guard;
            std::future::pending::<Result<(), OrchestratorError>>().await
        };
        let waiting = tokio::spawn(async move { until_client_leaves(&sender, work).await });
        drop(receiver);
        let result = waiting.await.expect("joins");
        assert!(
            matches!(result, Err(OrchestratorError::ClientGone(_))),
            "{result:?}"
        );
        assert!(dropped.load(Ordering::SeqCst), "the work was dropped");
        assert_eq!(Status::from(result.unwrap_err()).code(), Code::Cancelled);
    }

    #[tokio::test]
    async fn finished_work_is_returned_while_the_client_listens() {
        let (sender, _receiver) = mpsc::channel(1);
        let result = until_client_leaves(&sender, async { Ok(7) }).await;
        assert_eq!(result.unwrap(), 7);
    }

    #[test]
    fn a_broken_upload_means_the_client_left_and_a_malformed_one_is_its_fault() {
        for status in [
            Status::cancelled("operation was canceled"),
            Status::unknown("h2 protocol error: stream reset"),
            Status::unavailable("connection closed"),
        ] {
            let error = upload_broke(status);
            assert!(matches!(error, OrchestratorError::ClientGone(_)), "{error}");
        }
        let error = upload_broke(Status::internal("failed to decode Protobuf message"));
        assert_eq!(Status::from(error).code(), Code::InvalidArgument);
    }
}
