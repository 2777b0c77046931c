//! Errors of the degradation service and their gRPC status codes.

use clearair_backends::{BackendError, Fault};
use clearair_imaging::ImagingError;
use clearair_runtime::RuntimeError;
use clearair_runtime::status::{client_fault, server_fault};
use tonic::Status;

/// Everything that can go wrong in the degradation service.
#[derive(Debug, thiserror::Error)]
pub enum DegradationError {
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

impl From<DegradationError> for Status {
    fn from(error: DegradationError) -> Self {
        let fault = match &error {
            DegradationError::Image(_) | DegradationError::MissingImage => Fault::Client,
            DegradationError::Backend(backend) => backend.fault(),
            DegradationError::Runtime(_) => Fault::Server,
        };
        match fault {
            Fault::Client => client_fault(&error),
            Fault::Server => server_fault(&error),
        }
    }
}
