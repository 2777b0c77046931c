//! The crate's error type.

use std::path::PathBuf;

/// Everything training, evaluation and the degradation tool can fail on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A photo could not be decoded or encoded.
    #[error("{path}: {source}")]
    Image {
        /// The photo.
        path: PathBuf,
        /// The underlying error.
        source: clearair_imaging::ImagingError,
    },
    /// A pixel operation on an in-memory image failed.
    #[error(transparent)]
    Imaging(#[from] clearair_imaging::ImagingError),
    /// A folder that should hold photos holds none.
    #[error("no PNG, JPEG, WebP, TIFF or BMP photos in {0} (run `make setup` to fetch them)")]
    NoPhotos(PathBuf),
    /// The network crate refused (shapes, weights, devices, manifests).
    #[error(transparent)]
    Model(#[from] clearair_model::ModelError),
    /// libtorch failed.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// A backend shared with the mesh failed (tiled restoration, a prior backend).
    #[error(transparent)]
    Backend(#[from] clearair_backends::BackendError),
    /// A prior backend could not be loaded.
    #[error("cannot load the {backend} prior backend: {reason}")]
    PriorBackend {
        /// `quality` or `segmentation`.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// A command-line value or configuration is unusable.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// A checkpoint is missing, unreadable or belongs to another run.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint's state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The FFDNet reference benchmark could not run.
    #[error("FFDNet reference: {0}")]
    Reference(String),
    /// A data worker thread stopped.
    #[error("data worker failed: {0}")]
    Worker(String),
    /// Training produced a non-finite loss.
    #[error("the loss became {value} at step {step}; lower the learning rate or check the data")]
    Diverged {
        /// Step at which it happened.
        step: u64,
        /// The loss.
        value: f64,
    },
    /// JSON could not be written or read.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}

/// Results of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// An [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
