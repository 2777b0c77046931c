//! The first image file directory (IFD) of a TIFF, classic or BigTIFF.
//!
//! TIFF keeps its directory and its pixel strips at arbitrary offsets, often with the
//! directory last, so "is this file complete?" means: does every out-of-line field value and
//! every strip or tile the directory points at lie inside the data.

use crate::error::ImagingError;
use crate::sniff::ImageFormatKind;

const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;
const STRIP_OFFSETS: u16 = 273;
const STRIP_BYTE_COUNTS: u16 = 279;
const TILE_OFFSETS: u16 = 324;
const TILE_BYTE_COUNTS: u16 = 325;

/// One directory entry: its tag, field type, value count, and where its values start.
struct Entry {
    tag: u16,
    field_type: u16,
    count: u64,
    values_at: u64,
}

/// The parsed first directory.
pub(super) struct Ifd<'a> {
    bytes: &'a [u8],
    little_endian: bool,
    entries: Vec<Entry>,
}

fn truncated(detail: String) -> ImagingError {
    ImagingError::Truncated {
        format: ImageFormatKind::Tiff,
        detail,
    }
}

fn corrupt(detail: String) -> ImagingError {
    ImagingError::Corrupt {
        format: ImageFormatKind::Tiff,
        detail,
    }
}

/// Bytes per value of a TIFF field type; `None` for types the spec says to skip.
fn type_size(field_type: u16) -> Option<u64> {
    match field_type {
        1 | 2 | 6 | 7 => Some(1),
        3 | 8 => Some(2),
        4 | 9 | 11 | 13 => Some(4),
        5 | 10 | 12 | 16 | 17 | 18 => Some(8),
        _ => None,
    }
}

impl<'a> Ifd<'a> {
    /// Reads the header and the first directory, checking that both and every out-of-line
    /// value array fit in `bytes`.
    pub(super) fn first(bytes: &'a [u8]) -> Result<Self, ImagingError> {
        let mut ifd = Ifd {
            bytes,
            little_endian: bytes.starts_with(b"II"),
            entries: Vec::new(),
        };
        let big = ifd.read(2, 2, "TIFF version")? == 43;
        // Classic: 4-byte offsets, 2-byte entry count, 12-byte entries with 4 inline bytes.
        // BigTIFF: 8-byte offsets, 8-byte entry count, 20-byte entries with 8 inline bytes.
        let (offset_len, count_len, entry_len, inline) =
            if big { (8, 8, 20, 8) } else { (4, 2, 12, 4) };
        let start = ifd.read(if big { 8 } else { 4 }, offset_len, "first IFD offset")?;
        let entry_count = ifd.read(start, count_len, "first IFD")?;
        // The entries are followed by the offset of the next directory.
        let table_end = entry_count
            .checked_mul(entry_len)
            .and_then(|table| table.checked_add(start + count_len + offset_len))
            .ok_or_else(|| corrupt(format!("the first IFD declares {entry_count} entries")))?;
        if table_end > bytes.len() as u64 {
            return Err(truncated(format!(
                "the data ends after {} bytes, inside the first IFD ({entry_count} entries at byte {start})",
                bytes.len()
            )));
        }
        for index in 0..entry_count {
            let at = start + count_len + index * entry_len;
            let field_type = ifd.read(at + 2, 2, "IFD entry")? as u16;
            let count = ifd.read(at + 4, if big { 8 } else { 4 }, "IFD entry")?;
            let tag = ifd.read(at, 2, "IFD entry")? as u16;
            let value_field = at + if big { 12 } else { 8 };
            let Some(size) = type_size(field_type) else {
                continue;
            };
            let total = count.saturating_mul(size);
            let values_at = if total <= inline {
                value_field
            } else {
                let offset = ifd.read(value_field, inline, "IFD entry")?;
                if offset.saturating_add(total) > bytes.len() as u64 {
                    return Err(truncated(format!(
                        "the data ends after {} bytes; tag {tag} stores {total} bytes at byte {offset}",
                        bytes.len()
                    )));
                }
                offset
            };
            ifd.entries.push(Entry {
                tag,
                field_type,
                count,
                values_at,
            });
        }
        Ok(ifd)
    }

    /// An unsigned integer of `n` bytes at `offset`, in the file's byte order.
    fn read(&self, offset: u64, n: u64, what: &str) -> Result<u64, ImagingError> {
        let slice = usize::try_from(offset)
            .ok()
            .and_then(|start| self.bytes.get(start..start.checked_add(n as usize)?))
            .ok_or_else(|| {
                truncated(format!(
                    "the data ends after {} bytes, before the {what} (bytes {offset}..{})",
                    self.bytes.len(),
                    offset.saturating_add(n)
                ))
            })?;
        let fold = |acc: u64, &byte: &u8| (acc << 8) | u64::from(byte);
        Ok(if self.little_endian {
            slice.iter().rev().fold(0, fold)
        } else {
            slice.iter().fold(0, fold)
        })
    }

    /// The integer values of `tag` (BYTE, SHORT, LONG or LONG8), or `None` if absent.
    fn values(&self, tag: u16) -> Result<Option<Vec<u64>>, ImagingError> {
        let Some(entry) = self.entries.iter().find(|entry| entry.tag == tag) else {
            return Ok(None);
        };
        let size = match entry.field_type {
            1 => 1,
            3 => 2,
            4 => 4,
            16 => 8,
            other => {
                return Err(corrupt(format!(
                    "tag {tag} has non-integer field type {other}"
                )));
            }
        };
        let values = (0..entry.count)
            .map(|i| self.read(entry.values_at + i * size, size, "IFD value"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(values))
    }

    /// ImageWidth and ImageLength.
    pub(super) fn dimensions(&self) -> Result<(u32, u32), ImagingError> {
        let first = |tag| -> Result<Option<u32>, ImagingError> {
            Ok(self
                .values(tag)?
                .and_then(|v| v.first().copied())
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
        };
        match (first(IMAGE_WIDTH)?, first(IMAGE_LENGTH)?) {
            (Some(width), Some(height)) => Ok((width, height)),
            _ => Err(corrupt(
                "the first IFD lacks ImageWidth or ImageLength".into(),
            )),
        }
    }

    /// Checks that every strip (or tile) of the first image lies inside the data.
    pub(super) fn check_pixel_data(&self) -> Result<(), ImagingError> {
        let (offsets, counts) = match self.values(STRIP_OFFSETS)? {
            Some(offsets) => (offsets, self.values(STRIP_BYTE_COUNTS)?),
            None => (
                self.values(TILE_OFFSETS)?.unwrap_or_default(),
                self.values(TILE_BYTE_COUNTS)?,
            ),
        };
        // Without byte counts the decoder computes sizes itself; leave that case to it.
        let Some(counts) = counts else { return Ok(()) };
        let end = offsets
            .iter()
            .zip(&counts)
            .map(|(&offset, &count)| offset.saturating_add(count))
            .max()
            .unwrap_or(0);
        if end > self.bytes.len() as u64 {
            return Err(truncated(format!(
                "the data ends after {} bytes; the image's strips extend to byte {end}",
                self.bytes.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic little-endian TIFF whose first IFD (at byte 8) holds `entries`
    /// (tag, type, count, inline value), followed by `tail` bytes.
    fn classic(entries: &[(u16, u16, u32, u32)], tail: usize) -> Vec<u8> {
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for &(tag, field_type, count, value) in entries {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&field_type.to_le_bytes());
            tiff.extend_from_slice(&count.to_le_bytes());
            tiff.extend_from_slice(&value.to_le_bytes());
        }
        tiff.extend_from_slice(&0u32.to_le_bytes());
        tiff.resize(tiff.len() + tail, 0);
        tiff
    }

    #[test]
    fn reads_dimensions_of_short_and_long_fields() {
        let tiff = classic(&[(256, 3, 1, 640), (257, 4, 1, 70_000)], 0);
        assert_eq!(
            Ifd::first(&tiff).unwrap().dimensions().unwrap(),
            (640, 70_000)
        );
    }

    #[test]
    fn reads_bigtiff() {
        let mut tiff = b"MM\0+\0\x08\0\0".to_vec();
        tiff.extend_from_slice(&16u64.to_be_bytes());
        tiff.extend_from_slice(&2u64.to_be_bytes());
        for (tag, value) in [(256u16, 3000u64), (257, 2000)] {
            tiff.extend_from_slice(&tag.to_be_bytes());
            tiff.extend_from_slice(&16u16.to_be_bytes());
            tiff.extend_from_slice(&1u64.to_be_bytes());
            tiff.extend_from_slice(&value.to_be_bytes());
        }
        tiff.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(
            Ifd::first(&tiff).unwrap().dimensions().unwrap(),
            (3000, 2000)
        );
    }

    #[test]
    fn strips_beyond_the_data_are_truncation() {
        // One strip of 100 bytes at byte 62 (right after the 54-byte IFD block): 40 are missing.
        let entries = [
            (256, 3, 1, 10),
            (257, 3, 1, 10),
            (273, 4, 1, 62),
            (279, 4, 1, 100),
        ];
        let complete = classic(&entries, 100);
        assert_eq!(complete.len(), 62 + 100);
        assert!(Ifd::first(&complete).unwrap().check_pixel_data().is_ok());
        let short = &complete[..complete.len() - 40];
        let error = Ifd::first(short).unwrap().check_pixel_data().unwrap_err();
        assert!(
            error.to_string().contains("strips extend to byte 162"),
            "{error}"
        );
    }

    #[test]
    fn out_of_line_values_beyond_the_data_are_truncation() {
        // Eight RATIONALs (64 bytes) stored at byte 1000 of a 70-byte file.
        let tiff = classic(&[(256, 3, 1, 1), (257, 3, 1, 1), (282, 5, 8, 1000)], 8);
        assert!(matches!(
            Ifd::first(&tiff),
            Err(ImagingError::Truncated { .. })
        ));
        let no_size = classic(&[(256, 3, 1, 1)], 0);
        assert!(matches!(
            Ifd::first(&no_size).unwrap().dimensions(),
            Err(ImagingError::Corrupt { .. })
        ));
    }
}
