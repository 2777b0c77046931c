//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate, typed so services can map each case to a
/// gRPC status (a prior of the wrong shape is the caller's fault, a torch error is ours).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A prior tensor has the wrong shape for the network's configuration.
    #[error("prior `{prior}` has shape {got:?}, expected {expected}")]
    PriorShape {
        /// Which prior (`quality`, `masks`, `content`, `degradation`).
        prior: &'static str,
        /// The expected shape, in words (e.g. `[1, 36]`).
        expected: String,
        /// The shape that was passed.
        got: Vec<i64>,
    },
    /// A prior holds NaN or infinite values, which would poison every pixel of the output.
    #[error("prior `{prior}` contains NaN or infinite values")]
    PriorNotFinite {
        /// Which prior.
        prior: &'static str,
    },
    /// A prior tensor is not a floating tensor of the image's kind on the image's device.
    #[error("prior `{prior}` {detail}")]
    PriorPlacement {
        /// Which prior.
        prior: &'static str,
        /// What differs from the image (kind or device).
        detail: String,
    },
    /// An image tensor has the wrong shape (not N×3×H×W, or too small for an operation).
    #[error("image has shape {got:?}, expected {expected}")]
    ImageShape {
        /// The expected shape, in words.
        expected: String,
        /// The shape that was passed.
        got: Vec<i64>,
    },
    /// A configuration is inconsistent (e.g. channels not divisible by heads).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Weights were trained with prior backends other than the running ones.
    #[error("restorer weights do not match the running prior backends: {}", .differences.join("; "))]
    BackendMismatch {
        /// One sentence per differing prior, saying what was trained and what is running.
        differences: Vec<String>,
    },
    /// A weights file does not fit the network it is loaded into.
    #[error("weights {path} do not fit this network: {detail}")]
    WeightsMismatch {
        /// The weights file.
        path: PathBuf,
        /// Which tensors are missing, unexpected or of another shape.
        detail: String,
    },
    /// A device string could not be honoured.
    #[error("device `{spec}`: {reason}")]
    Device {
        /// The string that was asked for.
        spec: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not valid JSON for [`crate::ModelManifest`].
    #[error("manifest {path}: {source}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// libtorch reported an error.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
