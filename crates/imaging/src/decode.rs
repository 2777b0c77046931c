//! Decoding untrusted uploads into [`Rgb8Image`] with bounded memory.
//!
//! Three lines of defence, in order: the encoded size; the header dimensions, read by
//! [`crate::header`] before any decoder runs (stops decompression bombs); and `image::Limits`
//! inside the decoders, in case a header parser and a decoder ever disagree.

use std::io::{self, Cursor};

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};

use crate::error::{ImagingError, SizeLimit};
use crate::header::{Probe, check_complete, probe};
use crate::pixels::flatten_to_rgb8;
use crate::rgb::{Rgb8Image, check_not_empty};
use crate::sniff::ImageFormatKind;

/// Size limits for untrusted images. Also applied to raw `RgbImage`s from peers.
///
/// Width and height limits apply to the dimensions as stored, before EXIF rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width in pixels (default 16384).
    pub max_width: u32,
    /// Largest accepted height in pixels (default 16384).
    pub max_height: u32,
    /// Largest accepted `width * height` (default 40 megapixels).
    pub max_pixels: u64,
    /// Largest accepted encoded file (default 64 MiB).
    pub max_encoded_bytes: u64,
    /// Largest total allocation a decode may make: the decoder's native buffer plus the RGB8
    /// result (default 512 MiB).
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: 16_384,
            max_height: 16_384,
            max_pixels: 40_000_000,
            max_encoded_bytes: 64 << 20,
            max_alloc_bytes: 512 << 20,
        }
    }
}

impl DecodeLimits {
    /// Refuses empty sizes and sizes above the width, height or pixel limits.
    pub fn check_dimensions(&self, width: u32, height: u32) -> Result<(), ImagingError> {
        check_not_empty(width, height)?;
        // Pixels first: for a decompression bomb the pixel count is the telling number.
        let limit = if u64::from(width) * u64::from(height) > self.max_pixels {
            SizeLimit::Pixels {
                max: self.max_pixels,
            }
        } else if width > self.max_width {
            SizeLimit::Width {
                max: self.max_width,
            }
        } else if height > self.max_height {
            SizeLimit::Height {
                max: self.max_height,
            }
        } else {
            return Ok(());
        };
        Err(ImagingError::TooLarge {
            width,
            height,
            limit,
        })
    }

    fn image_limits(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc_bytes);
        limits
    }
}

/// A decoded upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The pixels, upright (EXIF orientation applied) and flattened to RGB8.
    pub image: Rgb8Image,
    /// The format the bytes were in.
    pub format: ImageFormatKind,
}

/// Decodes PNG, JPEG, WebP, TIFF or BMP bytes into RGB8.
///
/// - The format is sniffed from the magic bytes, never from a name or media type.
/// - Dimensions are read from the header and checked against `limits` before decoding.
/// - Gray becomes R = G = B; 16-bit and float samples are rounded to 8 bits; **alpha is
///   composited over white**, so transparent regions come out white (what a viewer on a
///   light page shows), not as whatever colour happens to sit under alpha 0.
/// - EXIF orientation (JPEG, PNG, WebP, TIFF) is applied, so the result is upright.
///
/// Every failure is a typed [`ImagingError`]; truncated files are reported as
/// [`ImagingError::Truncated`], malformed ones as [`ImagingError::Corrupt`].
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, ImagingError> {
    if bytes.is_empty() {
        return Err(ImagingError::Empty);
    }
    if bytes.len() as u64 > limits.max_encoded_bytes {
        return Err(ImagingError::EncodedTooLarge {
            bytes: bytes.len() as u64,
            max_bytes: limits.max_encoded_bytes,
        });
    }
    let header = probe(bytes)?;
    let format = header.format;
    limits.check_dimensions(header.width, header.height)?;
    check_complete(format, bytes)?;

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image_format());
    reader.limits(limits.image_limits());
    let failure = DecodeFailure {
        header,
        max_alloc_bytes: limits.max_alloc_bytes,
    };
    let mut decoder = reader.into_decoder().map_err(|e| failure.explain(e))?;

    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height)?;
    // The decoder's native buffer and our RGB8 copy are alive at the same time.
    let needed = decoder
        .total_bytes()
        .saturating_add(u64::from(width) * u64::from(height) * 3);
    if needed > limits.max_alloc_bytes {
        let limit = SizeLimit::DecodeMemory {
            needed,
            max: limits.max_alloc_bytes,
        };
        return Err(ImagingError::TooLarge {
            width,
            height,
            limit,
        });
    }

    // A missing or unreadable EXIF block is not worth failing an upload over.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut decoded = DynamicImage::from_decoder(decoder).map_err(|e| failure.explain(e))?;
    decoded.apply_orientation(orientation);

    let (width, height) = (decoded.width(), decoded.height());
    let image = Rgb8Image::new(width, height, flatten_to_rgb8(decoded))?;
    Ok(Decoded { image, format })
}

/// What is needed to explain a decoder error in the crate's vocabulary.
struct DecodeFailure {
    header: Probe,
    max_alloc_bytes: u64,
}

impl DecodeFailure {
    /// An unexpected end of input anywhere in the error's source chain means truncation,
    /// whatever the decoder chose to wrap it in.
    fn explain(&self, error: ImageError) -> ImagingError {
        let Probe {
            format,
            width,
            height,
        } = self.header;
        if ends_early(&error) {
            return ImagingError::Truncated {
                format,
                detail: format!("the data ended while the decoder still expected more ({error})"),
            };
        }
        match error {
            ImageError::Limits(_) => ImagingError::TooLarge {
                width,
                height,
                limit: SizeLimit::DecoderMemory {
                    max: self.max_alloc_bytes,
                },
            },
            ImageError::Unsupported(unsupported) => ImagingError::UnsupportedFeature {
                format,
                detail: unsupported.to_string(),
            },
            other => ImagingError::Corrupt {
                format,
                detail: other.to_string(),
            },
        }
    }
}

fn ends_early(error: &ImageError) -> bool {
    let is_eof = |io: &io::Error| io.kind() == io::ErrorKind::UnexpectedEof;
    // `ImageError::IoError` reports its io::Error's own source, not the io::Error itself.
    if let ImageError::IoError(io) = error
        && is_eof(io)
    {
        return true;
    }
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        if current.downcast_ref::<io::Error>().is_some_and(is_eof) {
            return true;
        }
        cause = current.source();
    }
    false
}
