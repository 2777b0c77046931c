//! Reading dimensions from container headers, and spotting files that end early.
//!
//! This runs before any decoder sees the bytes, so a 70-byte PNG that claims to be
//! 100000×100000 is refused on its header without a pixel buffer ever being allocated, and a
//! file cut in half is reported as truncated rather than as whatever a decoder happens to say
//! about the garbage at its end. Only the few fields needed are parsed; everything else is left
//! to the real decoders.

mod jpeg;
mod tiff;

use crate::error::ImagingError;
use crate::sniff::{ImageFormatKind, PNG_SIGNATURE, sniff_format};

/// Format and dimensions read from a file's header, without decoding any pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The sniffed container format.
    pub format: ImageFormatKind,
    /// Width as stored (before any EXIF rotation).
    pub width: u32,
    /// Height as stored (before any EXIF rotation).
    pub height: u32,
}

/// Sniffs the format and reads the stored dimensions from the header alone.
///
/// Cheap (a few dozen bytes for most formats, a marker walk for JPEG), so callers can refuse
/// oversized uploads before spending any memory on them.
pub fn probe(bytes: &[u8]) -> Result<Probe, ImagingError> {
    let format = sniff_format(bytes)?;
    let header = Header { format, bytes };
    let (width, height) = match format {
        ImageFormatKind::Png => header.png_dimensions()?,
        ImageFormatKind::Jpeg => header.jpeg_frame()?.dimensions,
        ImageFormatKind::WebP => header.webp_dimensions()?,
        ImageFormatKind::Tiff => tiff::Ifd::first(bytes)?.dimensions()?,
        ImageFormatKind::Bmp => header.bmp_layout()?.dimensions,
    };
    Ok(Probe {
        format,
        width,
        height,
    })
}

/// Checks that the container is complete: every PNG chunk present up to IEND, the whole RIFF
/// body of a WebP, the end-of-image marker of a JPEG, every TIFF strip and out-of-line field
/// of the first directory, and all uncompressed BMP rows.
pub(crate) fn check_complete(format: ImageFormatKind, bytes: &[u8]) -> Result<(), ImagingError> {
    let header = Header { format, bytes };
    match format {
        ImageFormatKind::Png => header.png_chunks_complete(),
        ImageFormatKind::Jpeg => header.jpeg_complete(),
        ImageFormatKind::WebP => header.webp_complete(),
        ImageFormatKind::Tiff => tiff::Ifd::first(bytes)?.check_pixel_data(),
        ImageFormatKind::Bmp => header.bmp_complete(),
    }
}

struct Header<'a> {
    format: ImageFormatKind,
    bytes: &'a [u8],
}

struct BmpLayout {
    dimensions: (u32, u32),
    pixel_offset: u64,
    bits_per_pixel: u16,
    compression: u32,
}

/// `BI_RGB`, `BI_BITFIELDS`, `BI_ALPHABITFIELDS`: row sizes are known from the header.
const BMP_UNCOMPRESSED: [u32; 3] = [0, 3, 6];

impl Header<'_> {
    fn truncated(&self, detail: impl Into<String>) -> ImagingError {
        ImagingError::Truncated {
            format: self.format,
            detail: detail.into(),
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> ImagingError {
        ImagingError::Corrupt {
            format: self.format,
            detail: detail.into(),
        }
    }

    /// `n` bytes at `offset`, or a truncation error naming `what` was being read.
    fn take(&self, offset: usize, n: usize, what: &str) -> Result<&[u8], ImagingError> {
        offset
            .checked_add(n)
            .and_then(|end| self.bytes.get(offset..end))
            .ok_or_else(|| {
                self.truncated(format!(
                    "the data ends after {} bytes, before the {what} (bytes {offset}..{})",
                    self.bytes.len(),
                    offset.saturating_add(n)
                ))
            })
    }

    fn be_u16(&self, offset: usize, what: &str) -> Result<u16, ImagingError> {
        let b = self.take(offset, 2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn be_u32(&self, offset: usize, what: &str) -> Result<u32, ImagingError> {
        let b = self.take(offset, 4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn le_u32(&self, offset: usize, what: &str) -> Result<u32, ImagingError> {
        let b = self.take(offset, 4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    // ---- PNG -------------------------------------------------------------------------------

    fn png_dimensions(&self) -> Result<(u32, u32), ImagingError> {
        let length = self.be_u32(8, "IHDR chunk")?;
        let kind = self.take(12, 4, "IHDR chunk")?;
        if kind != b"IHDR" || length != 13 {
            return Err(self.corrupt(format!(
                "the first chunk must be a 13-byte IHDR, found {:?} of {length} bytes",
                String::from_utf8_lossy(kind)
            )));
        }
        Ok((
            self.be_u32(16, "IHDR width")?,
            self.be_u32(20, "IHDR height")?,
        ))
    }

    fn png_chunks_complete(&self) -> Result<(), ImagingError> {
        let mut offset = PNG_SIGNATURE.len();
        loop {
            if offset == self.bytes.len() {
                return Err(self.truncated(format!(
                    "the data ends after {offset} bytes, at a chunk boundary before the IEND chunk"
                )));
            }
            let length = self.be_u32(offset, "next chunk header")?;
            let kind = self.take(offset + 4, 4, "next chunk header")?;
            let name = String::from_utf8_lossy(kind).into_owned();
            // 4 length + 4 type + data + 4 CRC.
            let end = offset as u64 + 12 + u64::from(length);
            if end > self.bytes.len() as u64 {
                return Err(self.truncated(format!(
                    "the data ends after {} bytes, inside the {name} chunk at byte {offset} that \
                     declares {length} data bytes (it would end at byte {end})",
                    self.bytes.len()
                )));
            }
            if name == "IEND" {
                return Ok(());
            }
            offset = end as usize;
        }
    }

    // ---- WebP ------------------------------------------------------------------------------

    fn webp_dimensions(&self) -> Result<(u32, u32), ImagingError> {
        let chunk = self.take(12, 4, "first WebP chunk")?;
        match chunk {
            b"VP8X" => {
                let canvas = self.take(24, 6, "VP8X canvas size")?;
                let width = u32::from_le_bytes([canvas[0], canvas[1], canvas[2], 0]) + 1;
                let height = u32::from_le_bytes([canvas[3], canvas[4], canvas[5], 0]) + 1;
                Ok((width, height))
            }
            b"VP8L" => {
                let header = self.take(20, 5, "VP8L header")?;
                if header[0] != 0x2F {
                    return Err(self.corrupt("VP8L chunk without its 0x2F signature"));
                }
                let packed = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
                Ok(((packed & 0x3FFF) + 1, ((packed >> 14) & 0x3FFF) + 1))
            }
            b"VP8 " => {
                let frame = self.take(20, 10, "VP8 frame header")?;
                if frame[3..6] != [0x9D, 0x01, 0x2A] {
                    return Err(self.corrupt("VP8 key frame without its 9D 01 2A start code"));
                }
                let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3FFF;
                let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3FFF;
                Ok((u32::from(width), u32::from(height)))
            }
            other => Err(self.corrupt(format!(
                "the first chunk is {:?}; expected VP8, VP8L or VP8X",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    fn webp_complete(&self) -> Result<(), ImagingError> {
        let declared = u64::from(self.le_u32(4, "RIFF size")?) + 8;
        if declared > self.bytes.len() as u64 {
            return Err(self.truncated(format!(
                "the data ends after {} bytes; its RIFF header declares {declared}",
                self.bytes.len()
            )));
        }
        Ok(())
    }

    // ---- BMP -------------------------------------------------------------------------------

    fn bmp_layout(&self) -> Result<BmpLayout, ImagingError> {
        let pixel_offset = u64::from(self.le_u32(10, "pixel data offset")?);
        let info_size = self.le_u32(14, "DIB header size")?;
        let b = self.take(18, 8, "BMP dimensions")?;
        if info_size == 12 {
            // OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes.
            let width = u16::from_le_bytes([b[0], b[1]]);
            let height = u16::from_le_bytes([b[2], b[3]]);
            let bpp = self.take(24, 2, "bits per pixel")?;
            return Ok(BmpLayout {
                dimensions: (u32::from(width), u32::from(height)),
                pixel_offset,
                bits_per_pixel: u16::from_le_bytes([bpp[0], bpp[1]]),
                compression: 0,
            });
        }
        let width = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        // A negative height marks a top-down bitmap.
        let height = i32::from_le_bytes([b[4], b[5], b[6], b[7]]).unsigned_abs();
        let width = u32::try_from(width)
            .map_err(|_| self.corrupt(format!("the header declares a negative width ({width})")))?;
        let bpp = self.take(28, 2, "bits per pixel")?;
        let compression = if info_size >= 20 {
            self.le_u32(30, "compression")?
        } else {
            0
        };
        Ok(BmpLayout {
            dimensions: (width, height),
            pixel_offset,
            bits_per_pixel: u16::from_le_bytes([bpp[0], bpp[1]]),
            compression,
        })
    }

    fn bmp_complete(&self) -> Result<(), ImagingError> {
        let layout = self.bmp_layout()?;
        let (width, height) = (
            u64::from(layout.dimensions.0),
            u64::from(layout.dimensions.1),
        );
        let bpp = u64::from(layout.bits_per_pixel);
        if !BMP_UNCOMPRESSED.contains(&layout.compression) || bpp == 0 || height == 0 {
            return Ok(());
        }
        // Rows are padded to 4 bytes; the last row's padding is sometimes omitted.
        // Saturating: a bogus bit depth must not overflow into a small, passing number.
        let row_bits = width.saturating_mul(bpp);
        let stride = row_bits.div_ceil(32).saturating_mul(4);
        let needed = stride
            .saturating_mul(height - 1)
            .saturating_add(layout.pixel_offset)
            .saturating_add(row_bits.div_ceil(8));
        if needed > self.bytes.len() as u64 {
            return Err(self.truncated(format!(
                "the data ends after {} bytes; {height} rows of {width} pixels at {bpp} bits \
                 starting at byte {} need {needed}",
                self.bytes.len(),
                layout.pixel_offset
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dimensions(bytes: &[u8]) -> (u32, u32) {
        let probe = probe(bytes).unwrap();
        (probe.width, probe.height)
    }

    #[test]
    fn webp_lossy_and_extended_headers() {
        // VP8: frame tag, start code 9D 01 2A, 14-bit width and height (top bits are scaling).
        let mut lossy = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0".to_vec();
        lossy.extend_from_slice(&[0x30, 0x01, 0x00, 0x9D, 0x01, 0x2A]);
        lossy.extend_from_slice(&(640u16 | 0x4000).to_le_bytes());
        lossy.extend_from_slice(&480u16.to_le_bytes());
        assert_eq!(dimensions(&lossy), (640, 480));
        // VP8X: flags, 3 reserved bytes, then canvas width − 1 and height − 1 in 24 bits each.
        let mut extended = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        extended.extend_from_slice(&[0x10, 0, 0, 0, 0xFF, 0x0F, 0x00, 0x1F, 0x00, 0x00]);
        assert_eq!(dimensions(&extended), (4096, 32));
    }

    #[test]
    fn jpeg_skips_segments_and_fill_bytes_to_a_progressive_frame() {
        let mut jpeg = vec![0xFF, 0xD8];
        // An APP1 segment containing bytes that look like a SOF marker must be skipped whole.
        jpeg.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x08, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01]);
        // Fill bytes, then SOF2: length 11, precision 8, height 300, width 200, 1 component
        // (id 1, sampling 1×1, table 0).
        jpeg.extend_from_slice(&[0xFF, 0xFF, 0xC2, 0x00, 0x0B, 0x08, 0x01, 0x2C, 0x00, 0xC8]);
        jpeg.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        assert_eq!(dimensions(&jpeg), (200, 300));
        // Without a scan and EOI after the frame, it is incomplete.
        assert!(matches!(
            check_complete(ImageFormatKind::Jpeg, &jpeg),
            Err(ImagingError::Truncated { .. })
        ));
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34, 0xFF, 0x00, 0xFF, 0xD9]);
        assert!(check_complete(ImageFormatKind::Jpeg, &jpeg).is_ok());
    }

    #[test]
    fn bmp_top_down_and_os2_headers() {
        let mut info = b"BM\0\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0".to_vec();
        info.extend_from_slice(&7i32.to_le_bytes());
        info.extend_from_slice(&(-5i32).to_le_bytes());
        info.extend_from_slice(&[1, 0, 24, 0, 0, 0, 0, 0]);
        assert_eq!(dimensions(&info), (7, 5));
        // 5 rows of 7 pixels at 24 bits: 4 rows of 24 bytes (padded) + 21 = 117 bytes after 54.
        assert!(matches!(
            check_complete(ImageFormatKind::Bmp, &info),
            Err(ImagingError::Truncated { .. })
        ));
        info.resize(54 + 117, 0);
        assert!(check_complete(ImageFormatKind::Bmp, &info).is_ok());

        let mut core = b"BM\0\0\0\0\0\0\0\0\x1a\0\0\0\x0c\0\0\0".to_vec();
        core.extend_from_slice(&[0x20, 0x03, 0x58, 0x02, 1, 0, 24, 0]);
        assert_eq!(dimensions(&core), (800, 600));
        let mut negative = info.clone();
        negative[18..22].copy_from_slice(&(-7i32).to_le_bytes());
        assert!(matches!(
            probe(&negative),
            Err(ImagingError::Corrupt { .. })
        ));
    }
}
