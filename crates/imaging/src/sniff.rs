//! Recognising a format from its first bytes.
//!
//! Clients' file names and media types are not trusted: the magic bytes decide, and anything
//! that is not one of the five supported formats is refused with a description of what it
//! looks like, so a client developer who sent a GIF or an HTML error page sees why.

use std::fmt;

use crate::error::ImagingError;

/// The encoded formats the mesh accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormatKind {
    /// Portable Network Graphics.
    Png,
    /// JPEG (JFIF or EXIF).
    Jpeg,
    /// WebP, lossy or lossless.
    WebP,
    /// TIFF, classic or BigTIFF.
    Tiff,
    /// Windows bitmap.
    Bmp,
}

impl ImageFormatKind {
    /// The registered media type, e.g. `"image/png"`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::WebP => "image/webp",
            Self::Tiff => "image/tiff",
            Self::Bmp => "image/bmp",
        }
    }

    /// The short name used in messages, e.g. `"PNG"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::WebP => "WebP",
            Self::Tiff => "TIFF",
            Self::Bmp => "BMP",
        }
    }

    pub(crate) fn to_image_format(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::WebP => image::ImageFormat::WebP,
            Self::Tiff => image::ImageFormat::Tiff,
            Self::Bmp => image::ImageFormat::Bmp,
        }
    }
}

impl fmt::Display for ImageFormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The 8-byte PNG signature.
pub(crate) const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Identifies the format of `bytes` from its magic number.
///
/// Errors: [`ImagingError::Empty`] for no bytes, [`ImagingError::UnsupportedFormat`] (with a
/// description of what the bytes look like) for anything else.
pub fn sniff_format(bytes: &[u8]) -> Result<ImageFormatKind, ImagingError> {
    if bytes.is_empty() {
        return Err(ImagingError::Empty);
    }
    let format = if bytes.starts_with(&PNG_SIGNATURE) {
        ImageFormatKind::Png
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ImageFormatKind::Jpeg
    } else if is_webp(bytes) {
        ImageFormatKind::WebP
    } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
        .iter()
        .any(|magic| bytes.starts_with(*magic))
    {
        ImageFormatKind::Tiff
    } else if bytes.starts_with(b"BM") {
        ImageFormatKind::Bmp
    } else {
        return Err(ImagingError::UnsupportedFormat {
            found: describe_unknown(bytes),
        });
    };
    Ok(format)
}

/// RIFF with form type WEBP. A RIFF cut before its form type is complete is taken as WebP
/// if what is there matches, so the header check reports it as truncated, not unsupported.
fn is_webp(bytes: &[u8]) -> bool {
    let form = &bytes[bytes.len().min(8)..bytes.len().min(12)];
    bytes.starts_with(b"RIFF") && b"WEBP".starts_with(form)
}

/// Says in words what unrecognised bytes appear to be, with their first bytes in hex.
fn describe_unknown(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(8)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02X}")).collect();
    let hex = hex.join(" ");
    let iso_brand = bytes
        .get(4..12)
        .filter(|b| &b[0..4] == b"ftyp")
        .map(|b| &b[4..8]);
    let guess = if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("a GIF image")
    } else if let Some(brand) = iso_brand {
        Some(match brand {
            b"avif" | b"avis" => "an AVIF image",
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc" => "a HEIC/HEIF image",
            _ => "an ISO media file (MP4/MOV/HEIF family)",
        })
    } else if bytes.starts_with(&[0xFF, 0x0A]) || bytes.starts_with(b"\0\0\0\x0cJXL ") {
        Some("a JPEG XL image")
    } else if bytes.starts_with(b"qoif") {
        Some("a QOI image")
    } else if bytes.starts_with(b"8BPS") {
        Some("a Photoshop document")
    } else if bytes.starts_with(b"%PDF") {
        Some("a PDF document")
    } else if bytes.starts_with(&[0, 0, 1, 0]) {
        Some("an ICO icon")
    } else if bytes.starts_with(b"RIFF") {
        Some("a RIFF file that is not WebP (WAV/AVI?)")
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        Some("a JPEG whose first marker is damaged")
    } else if looks_like_text(head) {
        Some(text_kind(bytes))
    } else {
        None
    };
    match guess {
        Some(what) => format!("looks like {what} (starts with {hex})"),
        None => format!("starts with {hex}, which is no known image signature"),
    }
}

fn looks_like_text(head: &[u8]) -> bool {
    head.iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
}

fn text_kind(bytes: &[u8]) -> &'static str {
    let start: Vec<u8> = bytes
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(16)
        .map(u8::to_ascii_lowercase)
        .collect();
    if start.starts_with(b"<svg") || start.starts_with(b"<?xml") {
        "SVG or XML text"
    } else if start.starts_with(b"<!doctype html") || start.starts_with(b"<html") {
        "an HTML page"
    } else if start.starts_with(b"{") || start.starts_with(b"[") {
        "JSON text"
    } else if start.starts_with(b"data:image/") || start.starts_with(b"ivborw0kggo") {
        "base64 or a data URL; send the raw bytes instead"
    } else {
        "plain text"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_supported_signature() {
        let cases: [(&[u8], ImageFormatKind); 6] = [
            (&PNG_SIGNATURE, ImageFormatKind::Png),
            (&[0xFF, 0xD8, 0xFF, 0xE0], ImageFormatKind::Jpeg),
            (b"RIFF\x10\0\0\0WEBPVP8L", ImageFormatKind::WebP),
            (b"II*\0\x08\0\0\0", ImageFormatKind::Tiff),
            (b"MM\0*\0\0\0\x08", ImageFormatKind::Tiff),
            (b"BM\0\0\0\0", ImageFormatKind::Bmp),
        ];
        for (bytes, expected) in cases {
            assert_eq!(sniff_format(bytes).unwrap(), expected, "{bytes:?}");
        }
    }

    #[test]
    fn describes_unsupported_inputs() {
        let found = |bytes: &[u8]| match sniff_format(bytes) {
            Err(ImagingError::UnsupportedFormat { found }) => found,
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        };
        assert_eq!(
            found(b"GIF89a\x01\0"),
            "looks like a GIF image (starts with 47 49 46 38 39 61 01 00)"
        );
        assert!(found(b"\0\0\0\x1cftypavif").contains("AVIF"));
        assert!(found(b"<!DOCTYPE html><html>").contains("an HTML page"));
        assert!(found(b"iVBORw0KGgoAAAA").contains("base64"));
        assert_eq!(
            found(&[0x00, 0x13, 0x37, 0x99]),
            "starts with 00 13 37 99, which is no known image signature"
        );
        assert_eq!(sniff_format(&[]), Err(ImagingError::Empty));
    }
}
