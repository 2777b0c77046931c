//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in a prior backend.
#[derive(Debug, thiserror::Error)]
pub enum PriorError {
    /// The BRISQUE parameter file could not be read.
    #[error(
        "cannot read BRISQUE parameters from {path}: {source} \
         (generate it with `make setup`, which runs deploy/scripts/brisque_params.py)"
    )]
    ParamsUnreadable {
        /// The file that was opened.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The BRISQUE parameter file is not the JSON that deploy/scripts/brisque_params.py writes.
    #[error("BRISQUE parameters in {path} are not valid JSON of the expected shape: {source}")]
    ParamsMalformed {
        /// The file that was parsed.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The BRISQUE parameter file parsed but its contents are inconsistent.
    #[error("BRISQUE parameters in {path} are invalid: {reason}")]
    ParamsInvalid {
        /// The file that was checked.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// The pixel buffer does not hold `width * height * 3` bytes.
    #[error("RGB8 buffer for a {width}x{height} image must hold {expected} bytes, got {actual}")]
    BufferSize {
        /// Declared width in pixels.
        width: usize,
        /// Declared height in pixels.
        height: usize,
        /// `width * height * 3`.
        expected: usize,
        /// Length of the buffer passed.
        actual: usize,
    },
    /// The image has no pixels, or too many to address.
    #[error("image dimensions {width}x{height} are not usable (zero or overflowing)")]
    BadDimensions {
        /// Declared width in pixels.
        width: usize,
        /// Declared height in pixels.
        height: usize,
    },
    /// The image is too small for BRISQUE's two-scale pyramid.
    #[error(
        "image {width}x{height} is too small for BRISQUE: both sides must be at least {min_side} \
         pixels so that the half-scale image still covers its 7x7 window"
    )]
    ImageTooSmall {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The smallest side accepted.
        min_side: usize,
    },
    /// The image has too little texture for BRISQUE's distribution fits (e.g. a flat colour).
    #[error(
        "image has no texture at {scale} scale: its {coefficients} coefficients are all on one side \
         of zero, so BRISQUE's distribution fit (and score) is undefined"
    )]
    Textureless {
        /// `"full"` or `"half"`.
        scale: &'static str,
        /// Which coefficient map was degenerate (`"mscn"`, `"horizontal"`, …).
        coefficients: &'static str,
    },
    /// A segmentation call asked for an unusable number of masks.
    #[error("max_masks must be between 1 and {max}, got {requested}")]
    MaskCount {
        /// The number asked for.
        requested: usize,
        /// [`crate::MAX_REGION_MASKS`].
        max: usize,
    },
    /// A segmenter configuration value is out of range.
    #[error("invalid graph segmenter configuration: {0}")]
    SegmenterConfig(String),
}
