//! Errors of the segmentation service and their gRPC status codes.

use clearair_backends::{BackendError, Fault};
use clearair_imaging::ImagingError;
use clearair_runtime::RuntimeError;
use clearair_runtime::status::{client_fault, server_fault};
use tonic::Status;

/// Everything that can go wrong in the segmentation service.
#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    /// The server itself (config, transport).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The request's image is invalid.
    #[error("invalid image: {0}")]
    Image(#[from] ImagingError),
    /// The request carried no image.
    #[error("request has no `image`")]
    MissingImage,
    /// `max_masks` is out of range.
    #[error(
        "max_masks must be between 0 (service default) and {max}, got {0}",
        max = clearair_imaging::MAX_MASKS
    )]
    MaskCount(u32),
    /// The backend failed to load, or refused or failed on the image.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<SegmentationError> for Status {
    fn from(error: SegmentationError) -> Self {
        let fault = match &error {
            SegmentationError::Image(_)
            | SegmentationError::MissingImage
            | SegmentationError::MaskCount(_) => Fault::Client,
            SegmentationError::Backend(backend) => backend.fault(),
            SegmentationError::Runtime(_) => Fault::Server,
        };
        match fault {
            Fault::Client => client_fault(&error),
            Fault::Server => server_fault(&error),
        }
    }
}
