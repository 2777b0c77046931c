//! Errors of the quality service and their gRPC status codes.

use clearair_backends::{BackendError, Fault};
use clearair_imaging::ImagingError;
use clearair_runtime::RuntimeError;
use clearair_runtime::status::{client_fault, server_fault};
use tonic::Status;

/// Everything that can go wrong in the quality service.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// The server itself (config, transport).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The request's image is invalid.
    #[error("invalid image: {0}")]
    Image(#[from] ImagingError),
    /// The request carried no image.
    #[error("request has no `image`")]
    MissingImage,
    /// The backend failed to load, or refused or failed on the image.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<QualityError> for Status {
    fn from(error: QualityError) -> Self {
        let fault = match &error {
            QualityError::Image(_) | QualityError::MissingImage => Fault::Client,
            QualityError::Backend(backend) => backend.fault(),
            QualityError::Runtime(_) => Fault::Server,
        };
        match fault {
            Fault::Client => client_fault(&error),
            Fault::Server => server_fault(&error),
        }
    }
}
