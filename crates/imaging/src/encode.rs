//! Encoding [`Rgb8Image`] for responses.

use std::io::Cursor;

use clearair_proto::v1::ImageFormat;
use image::codecs::webp::WebPEncoder;
use image::codecs::{bmp::BmpEncoder, jpeg::JpegEncoder, png::PngEncoder, tiff::TiffEncoder};
use image::{ExtendedColorType, ImageEncoder};

use crate::error::ImagingError;
use crate::rgb::Rgb8Image;

/// JPEG quality used when a request leaves `jpeg_quality` at 0.
pub const DEFAULT_JPEG_QUALITY: u8 = 92;

/// Output encodings, mirroring `clearair.v1.ImageFormat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Lossless PNG, fast compression (the default).
    #[default]
    Png,
    /// Baseline JPEG at the requested quality.
    Jpeg,
    /// Lossless WebP.
    WebP,
    /// Uncompressed TIFF.
    Tiff,
    /// Uncompressed 24-bit BMP.
    Bmp,
}

impl OutputFormat {
    /// The media type of the encoded bytes, e.g. `"image/png"`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::WebP => "image/webp",
            Self::Tiff => "image/tiff",
            Self::Bmp => "image/bmp",
        }
    }

    /// Reads the raw `output_format` field of a request; `UNSPECIFIED` (0) means PNG and
    /// values this build does not know are refused.
    pub fn from_proto(value: i32) -> Result<Self, ImagingError> {
        ImageFormat::try_from(value)
            .map(Self::from)
            .map_err(|_| ImagingError::UnknownOutputFormat(value))
    }

    fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::WebP => "WebP",
            Self::Tiff => "TIFF",
            Self::Bmp => "BMP",
        }
    }
}

impl From<ImageFormat> for OutputFormat {
    fn from(format: ImageFormat) -> Self {
        match format {
            ImageFormat::Unspecified | ImageFormat::Png => Self::Png,
            ImageFormat::Jpeg => Self::Jpeg,
            ImageFormat::Webp => Self::WebP,
            ImageFormat::Tiff => Self::Tiff,
            ImageFormat::Bmp => Self::Bmp,
        }
    }
}

/// Resolves a request's `jpeg_quality`: 0 selects [`DEFAULT_JPEG_QUALITY`], 1..=100 is used as
/// given, anything larger is an error.
pub fn jpeg_quality(requested: u32) -> Result<u8, ImagingError> {
    match requested {
        0 => Ok(DEFAULT_JPEG_QUALITY),
        1..=100 => Ok(requested as u8),
        _ => Err(ImagingError::InvalidJpegQuality(requested)),
    }
}

/// Encodes `image` and returns the bytes with their media type.
///
/// `jpeg_quality` takes the request's raw field (see [`jpeg_quality`]) and is validated for
/// every format, so a bad request fails the same way whatever format it asked for.
pub fn encode(
    image: &Rgb8Image,
    format: OutputFormat,
    jpeg_quality: u32,
) -> Result<(Vec<u8>, &'static str), ImagingError> {
    let quality = self::jpeg_quality(jpeg_quality)?;
    let (width, height, pixels) = (image.width(), image.height(), image.as_bytes());
    // Lossless formats end up near the raw size; JPEG far below it.
    let capacity = match format {
        OutputFormat::Jpeg => pixels.len() / 8,
        _ => pixels.len() + 1024,
    };
    let mut out = Cursor::new(Vec::with_capacity(capacity));
    let color = ExtendedColorType::Rgb8;
    let result = match format {
        OutputFormat::Png => PngEncoder::new(&mut out).write_image(pixels, width, height, color),
        OutputFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, quality)
            .write_image(pixels, width, height, color),
        OutputFormat::WebP => {
            WebPEncoder::new_lossless(&mut out).write_image(pixels, width, height, color)
        }
        OutputFormat::Tiff => TiffEncoder::new(&mut out).write_image(pixels, width, height, color),
        OutputFormat::Bmp => BmpEncoder::new(&mut out).write_image(pixels, width, height, color),
    };
    result.map_err(|error| ImagingError::Encode {
        format: format.name(),
        detail: error.to_string(),
    })?;
    Ok((out.into_inner(), format.media_type()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_formats_map_with_png_as_default() {
        assert_eq!(OutputFormat::from_proto(0).unwrap(), OutputFormat::Png);
        assert_eq!(OutputFormat::from_proto(2).unwrap(), OutputFormat::Jpeg);
        assert_eq!(OutputFormat::from_proto(3).unwrap(), OutputFormat::WebP);
        assert_eq!(OutputFormat::from_proto(5).unwrap(), OutputFormat::Bmp);
        assert_eq!(
            OutputFormat::from_proto(42),
            Err(ImagingError::UnknownOutputFormat(42))
        );
    }

    #[test]
    fn jpeg_quality_defaults_and_bounds() {
        assert_eq!(jpeg_quality(0).unwrap(), 92);
        assert_eq!(jpeg_quality(1).unwrap(), 1);
        assert_eq!(jpeg_quality(100).unwrap(), 100);
        assert_eq!(
            jpeg_quality(101),
            Err(ImagingError::InvalidJpegQuality(101))
        );
        let image = Rgb8Image::filled(2, 2, [1, 2, 3]).unwrap();
        assert!(matches!(
            encode(&image, OutputFormat::Png, 300),
            Err(ImagingError::InvalidJpegQuality(300))
        ));
    }

    #[test]
    fn each_format_produces_its_signature_and_media_type() {
        let image = Rgb8Image::filled(7, 5, [10, 200, 30]).unwrap();
        let cases: [(OutputFormat, &[u8], &str); 5] = [
            (OutputFormat::Png, b"\x89PNG", "image/png"),
            (OutputFormat::Jpeg, b"\xFF\xD8\xFF", "image/jpeg"),
            (OutputFormat::WebP, b"RIFF", "image/webp"),
            (OutputFormat::Tiff, b"II*\0", "image/tiff"),
            (OutputFormat::Bmp, b"BM", "image/bmp"),
        ];
        for (format, magic, media_type) in cases {
            let (bytes, media) = encode(&image, format, 0).unwrap();
            assert!(bytes.starts_with(magic), "{format:?}");
            assert_eq!(media, media_type);
        }
    }

    #[test]
    fn higher_jpeg_quality_costs_more_bytes() {
        let data = (0..64 * 64 * 3)
            .map(|i: u32| ((i * 37) ^ (i / 192 * 11)) as u8)
            .collect();
        let image = Rgb8Image::new(64, 64, data).unwrap();
        let (low, _) = encode(&image, OutputFormat::Jpeg, 20).unwrap();
        let (high, _) = encode(&image, OutputFormat::Jpeg, 95).unwrap();
        assert!(high.len() > low.len(), "{} <= {}", high.len(), low.len());
    }
}
