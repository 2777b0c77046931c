//! Errors of the restoration service and their gRPC status codes.

use clearair_backends::BackendError;
use clearair_imaging::ImagingError;
use clearair_model::ModelError;
use clearair_runtime::RuntimeError;
use clearair_runtime::status::{client_fault, server_fault};
use tonic::Status;

/// Everything that can go wrong in the restoration service.
#[derive(Debug, thiserror::Error)]
pub enum RestorationError {
    /// The server itself (config, transport).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model could not be loaded, does not match the running priors, or failed warm-up.
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
    /// A required field is missing.
    #[error("request has no `{0}`")]
    Missing(&'static str),
    /// A prior has the wrong shape, non-finite values or comes from another backend.
    #[error("invalid prior: {0}")]
    Prior(String),
    /// The network failed.
    #[error("restoration model failed: {0}")]
    Model(#[from] ModelError),
    /// The request's deadline passed while it waited for the network or between its tiles.
    #[error("deadline exceeded during restoration")]
    DeadlineExceeded,
    /// The restorer's thread did not answer (it failed on this request).
    #[error("the restorer failed on this request and gave no answer")]
    WorkerGone,
    /// Tiled inference refused the input or failed, classified where it happened.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<RestorationError> for Status {
    fn from(error: RestorationError) -> Self {
        match error {
            RestorationError::Image(_)
            | RestorationError::Missing(_)
            | RestorationError::Prior(_)
            | RestorationError::Model(
                ModelError::PriorShape { .. }
                | ModelError::PriorNotFinite { .. }
                | ModelError::PriorPlacement { .. }
                | ModelError::ImageShape { .. },
            ) => client_fault(&error),
            RestorationError::Backend(ref backend) if backend.is_client_fault() => {
                client_fault(&error)
            }
            RestorationError::DeadlineExceeded => Status::deadline_exceeded(error.to_string()),
            RestorationError::Model(_)
            | RestorationError::WorkerGone
            | RestorationError::Backend(_)
            | RestorationError::Load { .. }
            | RestorationError::Runtime(_) => server_fault(&error),
        }
    }
}
