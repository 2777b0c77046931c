//! Errors of the quality service and their gRPC status codes.

use clearair_imaging::ImagingError;
use clearair_priors::PriorError;
use clearair_runtime::RuntimeError;
use tonic::Status;

/// Everything that can go wrong in the quality service.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
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
    #[error("quality model failed: {0}")]
    Inference(String),
    /// The backend refused or failed on the image.
    #[error("quality assessment failed: {0}")]
    Backend(#[from] PriorError),
}

impl From<QualityError> for Status {
    fn from(error: QualityError) -> Self {
        match error {
            QualityError::Image(_) | QualityError::MissingImage => {
                Status::invalid_argument(error.to_string())
            }
            QualityError::Backend(
                PriorError::BufferSize { .. }
                | PriorError::BadDimensions { .. }
                | PriorError::ImageTooSmall { .. }
                | PriorError::Textureless { .. }
                | PriorError::MaskCount { .. },
            ) => Status::invalid_argument(error.to_string()),
            QualityError::Backend(_)
            | QualityError::Inference(_)
            | QualityError::Load { .. }
            | QualityError::Runtime(_) => Status::internal(error.to_string()),
        }
    }
}
