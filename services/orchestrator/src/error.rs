//! Errors of the orchestrator and their gRPC status codes.

use clearair_imaging::ImagingError;
use clearair_proto::v1::PriorKind;
use clearair_runtime::RuntimeError;
use clearair_runtime::status::server_fault;
use tonic::{Code, Status};

use crate::priors::{is_image_problem, prior_name};

/// Everything that can go wrong in the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The server itself (config, transport).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The request has no image.
    #[error("request has no `image`; put the encoded file in `image.data`")]
    MissingImage,
    /// The upload could not be decoded or breaks a limit.
    #[error("{0}")]
    Image(#[from] ImagingError),
    /// A streamed upload broke the protocol (header first, then chunks).
    #[error("{0}")]
    Stream(String),
    /// A streamed upload grew beyond the limit.
    #[error("the upload exceeds {limit} bytes")]
    UploadTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// A prior failed and its policy is `fail`.
    #[error("{} prior: {}", prior_name(*.kind), .status.message())]
    Prior {
        /// Which prior.
        kind: PriorKind,
        /// What its service answered.
        status: Status,
    },
    /// The restoration service failed.
    #[error("restoration: {}", .0.message())]
    Restoration(Status),
    /// The request's deadline passed.
    #[error("deadline exceeded while waiting for {0}")]
    DeadlineExceeded(&'static str),
    /// The client went away, or its upload stream broke, before the answer was ready.
    #[error("the client left: {0}")]
    ClientGone(String),
    /// A response from a peer made no sense, or a step of ours failed.
    #[error("{0}")]
    Internal(String),
}

impl From<OrchestratorError> for Status {
    fn from(error: OrchestratorError) -> Self {
        let message = error.to_string();
        match &error {
            // Size limits are the request's fault, not overload: INVALID_ARGUMENT keeps
            // clients that retry RESOURCE_EXHAUSTED with backoff from resending them forever.
            OrchestratorError::MissingImage
            | OrchestratorError::Stream(_)
            | OrchestratorError::Image(_)
            | OrchestratorError::UploadTooLarge { .. } => Status::invalid_argument(message),
            OrchestratorError::Prior { status, .. } if is_image_problem(status) => {
                Status::invalid_argument(message)
            }
            OrchestratorError::Prior { status, .. } | OrchestratorError::Restoration(status) => {
                match status.code() {
                    // Pass through what the client can act on; anything else means the
                    // peer is not usable right now.
                    code @ (Code::InvalidArgument
                    | Code::ResourceExhausted
                    | Code::DeadlineExceeded
                    | Code::Cancelled) => Status::new(code, message),
                    _ => Status::unavailable(message),
                }
            }
            OrchestratorError::DeadlineExceeded(_) => Status::deadline_exceeded(message),
            OrchestratorError::ClientGone(_) => Status::cancelled(message),
            OrchestratorError::Runtime(_) | OrchestratorError::Internal(_) => {
                // A fault of ours: the whole chain goes to the log, the client gets the
                // top-level message.
                server_fault(&error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_gets_its_code() {
        let cases = [
            (OrchestratorError::MissingImage, Code::InvalidArgument),
            (
                OrchestratorError::Image(ImagingError::Empty),
                Code::InvalidArgument,
            ),
            (
                OrchestratorError::Stream("a second `header`".into()),
                Code::InvalidArgument,
            ),
            (
                OrchestratorError::UploadTooLarge { limit: 10 },
                Code::InvalidArgument,
            ),
            (
                OrchestratorError::ClientGone("upload stream reset".into()),
                Code::Cancelled,
            ),
            (
                OrchestratorError::Internal("encoding the result: disk full".into()),
                Code::Internal,
            ),
            (
                OrchestratorError::DeadlineExceeded("the priors"),
                Code::DeadlineExceeded,
            ),
            (
                OrchestratorError::Restoration(Status::internal("tile blend failed")),
                Code::Unavailable,
            ),
            (
                OrchestratorError::Restoration(Status::invalid_argument("bad prior")),
                Code::InvalidArgument,
            ),
            (
                OrchestratorError::Prior {
                    kind: PriorKind::Quality,
                    status: Status::invalid_argument("image too small"),
                },
                Code::InvalidArgument,
            ),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            assert_eq!(Status::from(error).code(), code, "{text}");
        }
    }
}
