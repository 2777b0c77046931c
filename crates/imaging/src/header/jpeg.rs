//! JPEG: walking marker segments to the frame header, and finding the end of the image.

use super::Header;
use crate::error::ImagingError;

/// What the header walk learns from the frame header.
pub(super) struct JpegFrame {
    /// Width and height as stored.
    pub(super) dimensions: (u32, u32),
    /// Offset just past the frame header, where the walk to the first scan resumes.
    pub(super) end: usize,
}

impl Header<'_> {
    /// Walks marker segments from SOI to the first start-of-frame.
    pub(super) fn jpeg_frame(&self) -> Result<JpegFrame, ImagingError> {
        let mut offset = 2;
        loop {
            let (marker, after_marker) = self.jpeg_marker(offset, "frame header (SOF)")?;
            match marker {
                // Stand-alone markers carry no length.
                0x01 | 0xD0..=0xD8 => offset = after_marker,
                0xD9 => return Err(self.corrupt("end-of-image marker before any frame header")),
                0xDA => return Err(self.corrupt("scan data before any frame header (SOF)")),
                _ => {
                    let length = usize::from(self.be_u16(after_marker, "segment length")?);
                    if length < 2 {
                        return Err(self.corrupt(format!(
                            "segment FF{marker:02X} at byte {offset} declares length {length}"
                        )));
                    }
                    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
                    if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                        let height = self.be_u16(after_marker + 3, "frame height")?;
                        let width = self.be_u16(after_marker + 5, "frame width")?;
                        return Ok(JpegFrame {
                            dimensions: (u32::from(width), u32::from(height)),
                            end: after_marker + length,
                        });
                    }
                    offset = after_marker + length;
                }
            }
        }
    }

    /// Reads the marker at `offset` (skipping fill bytes); returns it and the offset after it.
    fn jpeg_marker(&self, offset: usize, before: &str) -> Result<(u8, usize), ImagingError> {
        let first = self.take(offset, 1, before)?[0];
        if first != 0xFF {
            return Err(self.corrupt(format!(
                "expected a marker (FF) at byte {offset}, found {first:02X}"
            )));
        }
        let mut at = offset + 1;
        while self.take(at, 1, before)?[0] == 0xFF {
            at += 1;
        }
        Ok((self.bytes[at], at + 1))
    }

    /// Requires an end-of-image marker after the first scan begins. Entropy-coded data stuffs
    /// every FF with 00, so an FF D9 there can only be a real marker; searching from the end
    /// finds it at once in a normal file and tolerates trailers some cameras append.
    pub(super) fn jpeg_complete(&self) -> Result<(), ImagingError> {
        let mut offset = self.jpeg_frame()?.end;
        loop {
            let (marker, after_marker) = self.jpeg_marker(offset, "first scan (SOS)")?;
            if matches!(marker, 0x01 | 0xD0..=0xD8) {
                offset = after_marker;
                continue;
            }
            if marker == 0xD9 {
                return Err(self.corrupt("end-of-image marker before any scan data"));
            }
            let length = usize::from(self.be_u16(after_marker, "segment length")?);
            if marker == 0xDA {
                break;
            }
            offset = after_marker + length.max(2);
        }
        let scan = &self.bytes[offset..];
        if scan.windows(2).rev().any(|pair| pair == [0xFF, 0xD9]) {
            Ok(())
        } else {
            Err(self.truncated(format!(
                "the data ends after {} bytes, inside the compressed scan, without the \
                 end-of-image marker (FF D9)",
                self.bytes.len()
            )))
        }
    }
}
