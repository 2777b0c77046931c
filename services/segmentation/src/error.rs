//! Errors of the segmentation service and their gRPC status codes.

use clearair_imaging::ImagingError;
use clearair_priors::PriorError;
use clearair_runtime::RuntimeError;
use tonic::Status;

/// Everything that can go wrong in the segmentation service.
#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    /// The server itself (config, transport).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The backend could not be set up or failed its warm-up.
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
    /// `max_masks` is out of range.
    #[error("max_masks must be between 0 (service default) and 16, got {0}")]
    MaskCount(u32),
    /// The SAM2 modules failed.
    #[error("segmentation model failed: {0}")]
    Model(#[from] clearair_model::ModelError),
    /// The backend refused or failed on the image.
    #[error("segmentation failed: {0}")]
    Backend(#[from] PriorError),
}

impl From<SegmentationError> for Status {
    fn from(error: SegmentationError) -> Self {
        match error {
            SegmentationError::Image(_)
            | SegmentationError::MissingImage
            | SegmentationError::MaskCount(_)
            | SegmentationError::Backend(
                PriorError::BufferSize { .. }
                | PriorError::BadDimensions { .. }
                | PriorError::ImageTooSmall { .. }
                | PriorError::Textureless { .. }
                | PriorError::MaskCount { .. },
            ) => Status::invalid_argument(error.to_string()),
            SegmentationError::Backend(_)
            | SegmentationError::Model(_)
            | SegmentationError::Load { .. }
            | SegmentationError::Runtime(_) => Status::internal(error.to_string()),
        }
    }
}
