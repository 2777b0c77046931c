//! The crate's one error type, classified where it happens: whose fault an error is decides
//! the status a service answers with, and the error behind it stays attached as its source.

use clearair_batch::BatchError;
use clearair_imaging::ImagingError;
use clearair_model::ModelError;
use clearair_priors::PriorError;

/// Whose fault an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The caller sent something the backend cannot use: an invalid image, one the backend
    /// refuses (too small, textureless), priors that do not fit the network. The same
    /// request fails again.
    Client,
    /// The backend failed: loading, a model, its inference, the batching thread.
    Server,
}

/// A failure that is the backend's own, with its reason.
pub type Reason = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a backend or the restorer can fail on.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A model, its parameters or its manifest could not be loaded, or it failed its warm-up.
    #[error("cannot load {what}: {source}")]
    Load {
        /// The file or backend.
        what: String,
        /// Why.
        source: Reason,
    },
    /// An image could not be prepared or put back together (preprocessing, masks, tiles).
    #[error("invalid image: {0}")]
    Image(#[from] ImagingError),
    /// An output could not be put together from what the network returned (cutting or
    /// blending tiles after the plan accepted the image): a fault of ours, not the caller's.
    #[error("cannot assemble the restored image: {0}")]
    Assembly(#[source] ImagingError),
    /// An embedded prior backend (BRISQUE, graph segmentation) refused or failed on the image.
    #[error("{task} failed: {source}")]
    Prior {
        /// What was being computed (`quality assessment`, `segmentation`).
        task: &'static str,
        /// Why.
        source: PriorError,
    },
    /// A network or an exported module failed, or refused its inputs.
    #[error("{model} model failed: {source}")]
    Model {
        /// Which model (`segmentation`, `degradation`, `restoration`).
        model: &'static str,
        /// Why.
        source: ModelError,
    },
    /// A batched forward pass failed (the whole batch shares the reason).
    #[error("{model} model failed: {source}")]
    Batch {
        /// Which model (`quality`, `segmentation`, `degradation`).
        model: &'static str,
        /// Why.
        source: BatchError<ModelError>,
    },
}

impl BackendError {
    /// A [`BackendError::Load`] of `what`.
    pub fn load(what: impl Into<String>, source: impl Into<Reason>) -> Self {
        Self::Load {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Image(_) => Fault::Client,
            Self::Prior { source, .. } => match source {
                PriorError::BufferSize { .. }
                | PriorError::BadDimensions { .. }
                | PriorError::ImageTooSmall { .. }
                | PriorError::Textureless { .. }
                | PriorError::MaskCount { .. } => Fault::Client,
                PriorError::ParamsUnreadable { .. }
                | PriorError::ParamsMalformed { .. }
                | PriorError::ParamsInvalid { .. }
                | PriorError::SegmenterConfig(_) => Fault::Server,
            },
            Self::Model { source, .. } => match source {
                ModelError::PriorShape { .. }
                | ModelError::PriorNotFinite { .. }
                | ModelError::PriorPlacement { .. }
                | ModelError::ImageShape { .. } => Fault::Client,
                ModelError::Config(_)
                | ModelError::BackendMismatch { .. }
                | ModelError::WeightsMismatch { .. }
                | ModelError::Device { .. }
                | ModelError::Io { .. }
                | ModelError::Manifest { .. }
                | ModelError::Torch(_) => Fault::Server,
            },
            Self::Load { .. } | Self::Batch { .. } | Self::Assembly(_) => Fault::Server,
        }
    }

    /// Whether the caller is at fault (see [`Fault::Client`]).
    pub fn is_client_fault(&self) -> bool {
        self.fault() == Fault::Client
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn refused_images_and_unfitting_priors_are_the_clients_fault() {
        let client = [
            BackendError::Image(ImagingError::Empty),
            BackendError::Prior {
                task: "quality assessment",
                source: PriorError::ImageTooSmall {
                    width: 4,
                    height: 4,
                    min_side: 14,
                },
            },
            BackendError::Prior {
                task: "quality assessment",
                source: PriorError::Textureless {
                    scale: "full",
                    coefficients: "mscn",
                },
            },
            BackendError::Model {
                model: "restoration",
                source: ModelError::PriorNotFinite { prior: "quality" },
            },
        ];
        for error in client {
            assert_eq!(error.fault(), Fault::Client, "{error}");
        }
    }

    #[test]
    fn loading_and_model_failures_are_the_servers_fault() {
        let server = [
            BackendError::load("restorer x.safetensors", "no manifest"),
            BackendError::Prior {
                task: "segmentation",
                source: PriorError::SegmenterConfig("k must be positive".into()),
            },
            BackendError::Model {
                model: "degradation",
                source: ModelError::Config("NaN".into()),
            },
            BackendError::Batch {
                model: "quality",
                source: BatchError::Stopped("has stopped"),
            },
        ];
        for error in server {
            assert_eq!(error.fault(), Fault::Server, "{error}");
            assert!(!error.is_client_fault());
        }
    }

    #[test]
    fn messages_name_the_task_and_keep_the_source() {
        let error = BackendError::Model {
            model: "segmentation",
            source: ModelError::Config("the decoder returned 1 outputs".into()),
        };
        assert_eq!(
            error.to_string(),
            "segmentation model failed: invalid configuration: the decoder returned 1 outputs"
        );
        assert!(error.source().is_some());
        let load = BackendError::load(
            "DA-CLIP module m.pt",
            ModelError::Config("bad manifest".into()),
        );
        assert_eq!(
            load.to_string(),
            "cannot load DA-CLIP module m.pt: invalid configuration: bad manifest"
        );
        assert!(load.source().is_some());
    }
}
