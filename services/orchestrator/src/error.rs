//! Errors of the orchestrator and their gRPC status codes.

use clearair_imaging::ImagingError;
use clearair_proto::v1::PriorKind;
use clearair_runtime::RuntimeError;
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
    /// A response from a peer made no sense.
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
            OrchestratorError::Runtime(_) | OrchestratorError::Internal(_) => {
                Status::internal(message)
            }
        }
    }
}
