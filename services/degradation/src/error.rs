//! Errors of the degradation service and their gRPC status codes.

use clearair_imaging::ImagingError;
use clearair_model::ModelError;
use clearair_runtime::RuntimeError;
use tonic::Status;

/// Everything that can go wrong in the degradation service.
#[derive(Debug, thiserror::Error)]
pub enum DegradationError {
    /// The server itself (config, transport).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model could not be loaded or failed its warm-up.
    #[error("cannot load {what}: {reason}")]
    Load {
        /// The file or backend.
        what: String,
        /// Why.
        reason: String,
    },
    /// The request's image is invalid.
    #[error("invalid image: {0}")]
    Image(#[from] ImagingError),
    /// The request carried no image.
    #[error("request has no `image`")]
    MissingImage,
    /// A batched forward pass failed (the whole batch shares the reason).
    #[error("degradation model failed: {0}")]
    Inference(String),
    /// The network failed.
    #[error("degradation model failed: {0}")]
    Model(#[from] ModelError),
}

impl From<DegradationError> for Status {
    fn from(error: DegradationError) -> Self {
        match error {
            DegradationError::Image(_) | DegradationError::MissingImage => {
                Status::invalid_argument(error.to_string())
            }
            DegradationError::Model(_)
            | DegradationError::Inference(_)
            | DegradationError::Load { .. }
            | DegradationError::Runtime(_) => Status::internal(error.to_string()),
        }
    }
}
