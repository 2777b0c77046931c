//! The one error type of this crate.
//!
//! Every message is written for the developer of a client: it says what is wrong with the
//! input, with the numbers involved, and where it helps, what would be accepted instead.

use std::fmt;

use crate::sniff::ImageFormatKind;

/// Everything that can go wrong while decoding, validating, encoding, tiling or drawing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImagingError {
    /// The request carried no image bytes at all.
    #[error("the image is empty (0 bytes); send the encoded file contents in `image.data`")]
    Empty,

    /// The encoded file is larger than the server accepts before even looking inside.
    #[error("the encoded image is {bytes} bytes; the limit is {max_bytes} bytes")]
    EncodedTooLarge {
        /// Size of the encoded data.
        bytes: u64,
        /// The configured maximum.
        max_bytes: u64,
    },

    /// The bytes are not one of the supported formats.
    #[error(
        "unsupported image format: the data {found}; supported formats are PNG, JPEG, WebP, TIFF and BMP"
    )]
    UnsupportedFormat {
        /// What the first bytes look like, e.g. "looks like a GIF image (starts with 47 49 46 38)".
        found: String,
    },

    /// The format is supported but this file uses a feature the decoder cannot handle.
    #[error("the {format} image uses a feature that cannot be decoded: {detail}")]
    UnsupportedFeature {
        /// The container format.
        format: ImageFormatKind,
        /// The decoder's explanation.
        detail: String,
    },

    /// The data ends before the file is complete (an interrupted upload, a cut-off download).
    #[error("the {format} image is truncated: {detail}")]
    Truncated {
        /// The container format.
        format: ImageFormatKind,
        /// Where the data ends and what was still expected.
        detail: String,
    },

    /// The data is damaged or not a valid file of its format.
    #[error("the {format} image is corrupt: {detail}")]
    Corrupt {
        /// The container format.
        format: ImageFormatKind,
        /// What is invalid.
        detail: String,
    },

    /// A width or a height is zero.
    #[error("image size {width}×{height} is empty; width and height must both be at least 1")]
    ZeroDimension {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },

    /// The image is larger than a configured limit.
    #[error("image is {width}×{height}{suffix}", suffix = TooLargeSuffix::new(*.width, *.height, *.limit))]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Which limit it exceeds.
        limit: SizeLimit,
    },

    /// A raw RGB8 buffer does not hold `width * height * 3` bytes.
    #[error(
        "RGB8 data for a {width}×{height} image must be {expected} bytes (width × height × 3), got {actual}"
    )]
    RgbByteCount {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width * height * 3`.
        expected: u64,
        /// The length received.
        actual: u64,
    },

    /// A buffer other than RGB8 bytes has the wrong length.
    #[error("{what} must hold {expected} values, got {actual}")]
    LengthMismatch {
        /// What the buffer is, e.g. "planar RGB for a 4×4 image (3×4×4)".
        what: String,
        /// The expected number of values.
        expected: u64,
        /// The number received.
        actual: u64,
    },

    /// A crop rectangle reaches outside the image.
    #[error(
        "crop {width}×{height} at ({x}, {y}) reaches outside the {image_width}×{image_height} image"
    )]
    CropOutOfBounds {
        /// Left edge of the rectangle.
        x: u32,
        /// Top edge of the rectangle.
        y: u32,
        /// Rectangle width.
        width: u32,
        /// Rectangle height.
        height: u32,
        /// Width of the image being cropped.
        image_width: u32,
        /// Height of the image being cropped.
        image_height: u32,
    },

    /// `jpeg_quality` is outside 0..=100 (0 selects the default).
    #[error("jpeg_quality {0} is out of range; use 1..=100, or 0 for the default (92)")]
    InvalidJpegQuality(u32),

    /// The requested output format is not a known `clearair.v1.ImageFormat` value.
    #[error(
        "output_format {0} is not a known ImageFormat; use PNG (1), JPEG (2), WEBP (3), TIFF (4) or BMP (5)"
    )]
    UnknownOutputFormat(i32),

    /// The encoder failed (only I/O on an in-memory buffer or an internal limit can cause this).
    #[error("encoding {format} failed: {detail}")]
    Encode {
        /// The output format.
        format: &'static str,
        /// The encoder's explanation.
        detail: String,
    },

    /// More masks than the wire format and the restorer accept.
    #[error("{count} masks were sent; at most {max} are accepted")]
    TooManyMasks {
        /// Masks received.
        count: u32,
        /// The maximum (16).
        max: u32,
    },

    /// A field of a mask set disagrees with the image or with the other fields.
    #[error("masks: `{field}` must be {expected}, got {actual}")]
    InvalidMasks {
        /// The offending field, e.g. "bits.len" or "scores.len".
        field: String,
        /// The value the other fields imply.
        expected: u64,
        /// The value received.
        actual: u64,
    },

    /// A mask confidence score is NaN.
    #[error("masks: `scores[{index}]` is NaN; every score must be a number")]
    NanMaskScore {
        /// Index of the first NaN score.
        index: usize,
    },

    /// The tile size and overlap do not describe a usable tiling.
    #[error(
        "tile size {tile} with overlap {overlap} is invalid; the tile must be larger than the overlap and at least 1"
    )]
    InvalidTiling {
        /// Requested tile side.
        tile: u32,
        /// Requested overlap.
        overlap: u32,
    },

    /// A tile index does not belong to the plan the blender was built from.
    #[error("tile index {index} is out of range; the plan has {count} tiles")]
    TileIndexOutOfRange {
        /// The index given.
        index: usize,
        /// Tiles in the plan.
        count: usize,
    },

    /// `TileBlender::finish` found pixels that no tile contributed to.
    #[error("{missing} pixels were not covered by any blended tile (first at ({x}, {y}))")]
    UncoveredPixels {
        /// How many pixels have zero weight.
        missing: u64,
        /// Column of the first one.
        x: u32,
        /// Row of the first one.
        y: u32,
    },

    /// A contact sheet was rendered without any panel.
    #[error("a contact sheet needs at least one panel")]
    EmptySheet,
}

/// The limit an image exceeded; carried by [`ImagingError::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// The width limit.
    Width {
        /// Largest accepted width.
        max: u32,
    },
    /// The height limit.
    Height {
        /// Largest accepted height.
        max: u32,
    },
    /// The pixel-count limit (what stops decompression bombs).
    Pixels {
        /// Largest accepted `width * height`.
        max: u64,
    },
    /// Decoding would allocate more memory than allowed (deep colour, alpha, several buffers).
    DecodeMemory {
        /// Bytes the decode would need.
        needed: u64,
        /// Largest accepted allocation.
        max: u64,
    },
    /// A decoder's internal buffers would exceed the allocation limit.
    DecoderMemory {
        /// Largest accepted allocation.
        max: u64,
    },
}

/// Renders the part of a `TooLarge` message after "image is W×H".
struct TooLargeSuffix {
    width: u32,
    height: u32,
    limit: SizeLimit,
}

impl TooLargeSuffix {
    fn new(width: u32, height: u32, limit: SizeLimit) -> Self {
        Self {
            width,
            height,
            limit,
        }
    }
}

impl fmt::Display for TooLargeSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            SizeLimit::Width { max } => write!(f, "; the width limit is {max} pixels"),
            SizeLimit::Height { max } => write!(f, "; the height limit is {max} pixels"),
            SizeLimit::Pixels { max } => {
                let pixels = u64::from(self.width) * u64::from(self.height);
                write!(f, " = {pixels} pixels; the limit is {max} pixels")
            }
            SizeLimit::DecodeMemory { needed, max } => write!(
                f,
                "; decoding it needs {needed} bytes of memory and the limit is {max} bytes"
            ),
            SizeLimit::DecoderMemory { max } => write!(
                f,
                "; the decoder needs more than the {max}-byte memory limit for this file"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_message_names_pixels_and_limit() {
        let error = ImagingError::TooLarge {
            width: 100_000,
            height: 100_000,
            limit: SizeLimit::Pixels { max: 40_000_000 },
        };
        assert_eq!(
            error.to_string(),
            "image is 100000×100000 = 10000000000 pixels; the limit is 40000000 pixels"
        );
    }

    #[test]
    fn truncated_message_names_the_format() {
        let error = ImagingError::Truncated {
            format: ImageFormatKind::Png,
            detail: "the data ends".into(),
        };
        assert_eq!(
            error.to_string(),
            "the PNG image is truncated: the data ends"
        );
    }
}
