//! The wire format of region masks (`clearair.v1.SemanticMasks.bits`).
//!
//! N masks of H×W pixels travel as one bit stream, mask-major then row-major: bit
//! `k = m·H·W + y·W + x` is pixel (x, y) of mask m, stored in byte `k / 8` at bit `7 − k % 8`
//! (most significant first), which is exactly `numpy.packbits` of the flattened N×H×W array,
//! so a Python peer can produce or read it in one call. The final byte's unused bits are zero
//! when packed here and ignored when read.

use clearair_proto::v1::SemanticMasks;

use crate::error::ImagingError;
use crate::rgb::check_not_empty;

/// Most masks one image may carry (the restorer's N_m).
pub const MAX_MASKS: u32 = clearair_proto::contract::MAX_MASKS;

/// Bytes needed for `count` masks of `width × height`: `ceil(count·height·width / 8)`.
pub fn packed_len(count: u32, width: u32, height: u32) -> u64 {
    (u64::from(count) * u64::from(width) * u64::from(height)).div_ceil(8)
}

/// Validated masks in wire layout, with one confidence score each.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedMasks {
    width: u32,
    height: u32,
    count: u32,
    bits: Vec<u8>,
    scores: Vec<f32>,
}

impl PackedMasks {
    /// Packs one boolean mask per region, each `width * height` long in row-major order.
    pub fn from_bool_masks<M: AsRef<[bool]>>(
        width: u32,
        height: u32,
        masks: &[M],
        scores: &[f32],
    ) -> Result<Self, ImagingError> {
        check_not_empty(width, height)?;
        let count = check_count(masks.len() as u64)?;
        check_scores(scores, count)?;
        let plane = u64::from(width) * u64::from(height);
        for (index, mask) in masks.iter().enumerate() {
            expect(
                format!("masks[{index}].len"),
                plane,
                mask.as_ref().len() as u64,
            )?;
        }
        let mut bits = vec![0u8; packed_len(count, width, height) as usize];
        let stream = masks.iter().flat_map(|mask| mask.as_ref().iter().copied());
        for (k, inside) in stream.enumerate() {
            if inside {
                bits[k / 8] |= 0x80 >> (k % 8);
            }
        }
        Ok(Self {
            width,
            height,
            count,
            bits,
            scores: scores.to_vec(),
        })
    }

    /// Packs a label map: a pixel labelled `m < count` belongs to mask m; any label
    /// `>= count` (e.g. a background or "unassigned" value) belongs to no mask.
    pub fn from_label_map<L: Copy + Into<u64>>(
        width: u32,
        height: u32,
        labels: &[L],
        count: u32,
        scores: &[f32],
    ) -> Result<Self, ImagingError> {
        check_not_empty(width, height)?;
        check_count(u64::from(count))?;
        check_scores(scores, count)?;
        let plane = u64::from(width) * u64::from(height);
        expect("labels.len".into(), plane, labels.len() as u64)?;
        let mut bits = vec![0u8; packed_len(count, width, height) as usize];
        let plane = plane as usize;
        for (pixel, &label) in labels.iter().enumerate() {
            let label: u64 = label.into();
            if label < u64::from(count) {
                let k = label as usize * plane + pixel;
                bits[k / 8] |= 0x80 >> (k % 8);
            }
        }
        Ok(Self {
            width,
            height,
            count,
            bits,
            scores: scores.to_vec(),
        })
    }

    /// Validates masks received from a peer for an image of `image_width × image_height`.
    ///
    /// Checked, each with an error naming the field and the expected and actual values:
    /// `count ≤ 16`, `width` and `height` equal to the image's, `bits` exactly
    /// `ceil(count·height·width / 8)` bytes, one score per mask, no NaN score.
    pub fn from_proto(
        message: &SemanticMasks,
        image_width: u32,
        image_height: u32,
    ) -> Result<Self, ImagingError> {
        let count = check_count(u64::from(message.count))?;
        expect(
            "width".into(),
            u64::from(image_width),
            u64::from(message.width),
        )?;
        expect(
            "height".into(),
            u64::from(image_height),
            u64::from(message.height),
        )?;
        let needed = packed_len(count, message.width, message.height);
        expect("bits.len".into(), needed, message.bits.len() as u64)?;
        check_scores(&message.scores, count)?;
        Ok(Self {
            width: message.width,
            height: message.height,
            count,
            bits: message.bits.to_vec(),
            scores: message.scores.clone(),
        })
    }

    /// The wire form, tagged with the backend that produced the masks.
    pub fn into_proto(self, backend: impl Into<String>) -> SemanticMasks {
        SemanticMasks {
            width: self.width,
            height: self.height,
            count: self.count,
            bits: self.bits,
            scores: self.scores,
            backend: backend.into(),
        }
    }

    /// Width of every mask.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height of every mask.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of masks.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The packed bits, in wire layout.
    pub fn bits(&self) -> &[u8] {
        &self.bits
    }

    /// One confidence score per mask.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// Whether pixel (`x`, `y`) belongs to mask `mask`. Panics on indices out of range.
    pub fn contains(&self, mask: u32, x: u32, y: u32) -> bool {
        assert!(
            mask < self.count && x < self.width && y < self.height,
            "mask index out of range"
        );
        let plane = u64::from(self.width) * u64::from(self.height);
        let k = u64::from(mask) * plane + u64::from(y) * u64::from(self.width) + u64::from(x);
        bit(&self.bits, k as usize)
    }

    /// The `width × height` window at (`x`, `y`) of every mask as `count × height × width`
    /// floats in {0, 1}: how the restorer takes masks, per tile in the service and per crop in
    /// training (one function, so both see the same thing). Panics if the window leaves the
    /// masks.
    pub fn window_planes(&self, x: u32, y: u32, width: u32, height: u32) -> Vec<f32> {
        assert!(
            x.checked_add(width)
                .is_some_and(|right| right <= self.width)
                && y.checked_add(height)
                    .is_some_and(|bottom| bottom <= self.height),
            "window {width}×{height} at ({x}, {y}) outside {}×{} masks",
            self.width,
            self.height
        );
        let mut values = Vec::with_capacity(self.count as usize * width as usize * height as usize);
        for mask in 0..self.count {
            for row in y..y + height {
                for column in x..x + width {
                    values.push(if self.contains(mask, column, row) {
                        1.0
                    } else {
                        0.0
                    });
                }
            }
        }
        values
    }

    /// Mask `mask` as one bool per pixel, row-major. Panics if `mask >= count`.
    pub fn mask_pixels(&self, mask: u32) -> Vec<bool> {
        assert!(mask < self.count, "mask {mask} of {}", self.count);
        let plane = self.width as usize * self.height as usize;
        let start = mask as usize * plane;
        (start..start + plane).map(|k| bit(&self.bits, k)).collect()
    }

    /// `count × height × width` floats, 1.0 inside a mask and 0.0 outside.
    pub fn to_planar_f32(&self) -> Vec<f32> {
        unpack(&self.bits, self.count, self.width, self.height)
    }

    /// Nearest-neighbour resize of every mask (see [`resize_masks`]).
    pub fn resized(&self, width: u32, height: u32) -> Result<Self, ImagingError> {
        resize_masks(self, width, height)
    }
}

/// Unpacks wire bits into `count × height × width` floats (1.0 inside, 0.0 outside), checking
/// the count and the byte length first.
pub fn masks_to_planar_f32(
    bits: &[u8],
    count: u32,
    width: u32,
    height: u32,
) -> Result<Vec<f32>, ImagingError> {
    check_count(u64::from(count))?;
    expect(
        "bits.len".into(),
        packed_len(count, width, height),
        bits.len() as u64,
    )?;
    Ok(unpack(bits, count, width, height))
}

/// Resizes every mask to `width × height` by nearest neighbour, sampling the source pixel
/// under each target pixel's centre, so masks stay binary and the regions keep their shapes.
pub fn resize_masks(
    masks: &PackedMasks,
    width: u32,
    height: u32,
) -> Result<PackedMasks, ImagingError> {
    check_not_empty(width, height)?;
    let nearest = |target: u32, source: u32| -> Vec<u32> {
        (0..u64::from(target))
            .map(|i| ((2 * i + 1) * u64::from(source) / (2 * u64::from(target))) as u32)
            .collect()
    };
    let columns = nearest(width, masks.width);
    let rows = nearest(height, masks.height);
    let mut bits = vec![0u8; packed_len(masks.count, width, height) as usize];
    let mut k = 0usize;
    for mask in 0..masks.count {
        for &y in &rows {
            for &x in &columns {
                if masks.contains(mask, x, y) {
                    bits[k / 8] |= 0x80 >> (k % 8);
                }
                k += 1;
            }
        }
    }
    Ok(PackedMasks {
        width,
        height,
        count: masks.count,
        bits,
        scores: masks.scores.clone(),
    })
}

fn bit(bits: &[u8], k: usize) -> bool {
    bits[k / 8] & (0x80 >> (k % 8)) != 0
}

fn unpack(bits: &[u8], count: u32, width: u32, height: u32) -> Vec<f32> {
    let total = u64::from(count) * u64::from(width) * u64::from(height);
    (0..total as usize)
        .map(|k| if bit(bits, k) { 1.0 } else { 0.0 })
        .collect()
}

fn check_count(count: u64) -> Result<u32, ImagingError> {
    match u32::try_from(count) {
        Ok(count) if count <= MAX_MASKS => Ok(count),
        _ => Err(ImagingError::TooManyMasks {
            count: count.min(u64::from(u32::MAX)) as u32,
            max: MAX_MASKS,
        }),
    }
}

fn check_scores(scores: &[f32], count: u32) -> Result<(), ImagingError> {
    expect("scores.len".into(), u64::from(count), scores.len() as u64)?;
    match scores.iter().position(|score| score.is_nan()) {
        Some(index) => Err(ImagingError::NanMaskScore { index }),
        None => Ok(()),
    }
}

fn expect(field: String, expected: u64, actual: u64) -> Result<(), ImagingError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ImagingError::InvalidMasks {
            field,
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two 3×2 masks; `numpy.packbits([1,0,1,0,0,1, 0,1,0,1,1,1])` is `[165, 112]`.
    fn example() -> PackedMasks {
        let first = [true, false, true, false, false, true];
        let second = [false, true, false, true, true, true];
        PackedMasks::from_bool_masks(3, 2, &[first, second], &[0.9, 0.5]).unwrap()
    }

    #[test]
    fn window_planes_crop_the_right_window() {
        let (width, height) = (6u32, 4u32);
        // Mask 0 is the left half, mask 1 the right half.
        let labels: Vec<u8> = (0..width * height)
            .map(|i| u8::from(i % width >= 3))
            .collect();
        let masks = PackedMasks::from_label_map(width, height, &labels, 2, &[1.0, 1.0]).unwrap();
        let crop = masks.window_planes(2, 1, 3, 2);
        assert_eq!(crop.len(), 2 * 3 * 2);
        // Columns 2, 3, 4 of rows 1 and 2: mask 0 covers column 2 only.
        assert_eq!(&crop[..6], &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(&crop[6..], &[0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(
            masks.window_planes(0, 0, 6, 4).len(),
            2 * 24,
            "the whole plane"
        );
    }

    #[test]
    #[should_panic(expected = "outside 6×4 masks")]
    fn window_planes_refuse_a_window_outside_the_masks() {
        let labels = vec![0u8; 24];
        let masks = PackedMasks::from_label_map(6, 4, &labels, 1, &[1.0]).unwrap();
        let _ = masks.window_planes(4, 0, 3, 1);
    }

    #[test]
    fn packs_like_numpy_packbits() {
        let masks = example();
        assert_eq!(masks.bits(), &[0b1010_0101, 0b0111_0000]);
        assert_eq!(masks.bits(), &[165, 112]);
        assert!(masks.contains(0, 2, 1) && !masks.contains(0, 1, 1) && masks.contains(1, 0, 1));
    }

    #[test]
    fn label_map_matches_bool_masks() {
        // Masks 101001 and 010110.
        let labels: [u8; 6] = [0, 1, 0, 1, 1, 0];
        let from_labels = PackedMasks::from_label_map(3, 2, &labels, 2, &[0.9, 0.5]).unwrap();
        assert_eq!(from_labels.bits(), &[0b1010_0101, 0b0110_0000]);
        let per_label: Vec<Vec<bool>> = (0..2)
            .map(|m| labels.iter().map(|&l| l == m).collect())
            .collect();
        let from_bools = PackedMasks::from_bool_masks(3, 2, &per_label, &[0.9, 0.5]).unwrap();
        assert_eq!(from_labels, from_bools);
        // Label 2 is outside `count = 2`, so the last pixel is in neither mask.
        let with_background: [u16; 6] = [0, 1, 0, 1, 1, 2];
        let masks = PackedMasks::from_label_map(3, 2, &with_background, 2, &[0.9, 0.5]).unwrap();
        assert_eq!(masks.bits(), &[0b1010_0001, 0b0110_0000]);
    }

    #[test]
    fn unpacks_to_planar_floats() {
        let planar = example().to_planar_f32();
        assert_eq!(planar, [1., 0., 1., 0., 0., 1., 0., 1., 0., 1., 1., 1.]);
        assert_eq!(masks_to_planar_f32(&[165, 112], 2, 3, 2).unwrap(), planar);
        assert!(matches!(
            masks_to_planar_f32(&[165], 2, 3, 2),
            Err(ImagingError::InvalidMasks {
                expected: 2,
                actual: 1,
                ..
            })
        ));
    }

    #[test]
    fn proto_round_trip_and_field_errors() {
        let message = example().into_proto("graph");
        assert_eq!(message.backend, "graph");
        assert_eq!(PackedMasks::from_proto(&message, 3, 2).unwrap(), example());

        let invalid = |edit: &dyn Fn(&mut SemanticMasks), w: u32, h: u32| {
            let mut message = message.clone();
            edit(&mut message);
            PackedMasks::from_proto(&message, w, h).unwrap_err()
        };
        let field_error = |field: &str, expected, actual| ImagingError::InvalidMasks {
            field: field.into(),
            expected,
            actual,
        };
        assert_eq!(invalid(&|_| {}, 4, 2), field_error("width", 4, 3));
        assert_eq!(invalid(&|_| {}, 3, 5), field_error("height", 5, 2));
        assert_eq!(
            invalid(&|m| m.bits.push(0), 3, 2),
            field_error("bits.len", 2, 3)
        );
        assert_eq!(
            invalid(&|m| m.scores.pop().map(drop).unwrap(), 3, 2),
            field_error("scores.len", 2, 1)
        );
        assert_eq!(
            invalid(&|m| m.scores[1] = f32::NAN, 3, 2),
            ImagingError::NanMaskScore { index: 1 }
        );
        assert_eq!(
            invalid(&|m| m.count = 17, 3, 2),
            ImagingError::TooManyMasks { count: 17, max: 16 }
        );
        let message_text = field_error("bits.len", 2, 3).to_string();
        assert_eq!(message_text, "masks: `bits.len` must be 2, got 3");
    }

    #[test]
    fn bool_masks_are_checked() {
        let none: [[bool; 0]; 0] = [];
        assert_eq!(
            PackedMasks::from_bool_masks(0, 2, &none, &[]).unwrap_err(),
            ImagingError::ZeroDimension {
                width: 0,
                height: 2
            }
        );
        let short = [true; 5];
        assert_eq!(
            PackedMasks::from_bool_masks(3, 2, &[short], &[1.0]).unwrap_err(),
            ImagingError::InvalidMasks {
                field: "masks[0].len".into(),
                expected: 6,
                actual: 5
            }
        );
        let many = vec![[false; 6]; 17];
        assert!(matches!(
            PackedMasks::from_bool_masks(3, 2, &many, &[0.0; 17]),
            Err(ImagingError::TooManyMasks { count: 17, .. })
        ));
    }

    #[test]
    fn nearest_resize_keeps_regions() {
        // A 4×2 mask whose left half is set; doubling and halving keep the left half.
        let left = [true, true, false, false, true, true, false, false];
        let masks = PackedMasks::from_bool_masks(4, 2, &[left], &[1.0]).unwrap();
        let up = masks.resized(8, 4).unwrap();
        for y in 0..4 {
            for x in 0..8 {
                assert_eq!(up.contains(0, x, y), x < 4, "({x}, {y})");
            }
        }
        let down = up.resized(2, 1).unwrap();
        assert_eq!(down.to_planar_f32(), [1.0, 0.0]);
        assert_eq!(down.scores(), &[1.0]);
        assert_eq!(up.resized(4, 2).unwrap(), masks);
    }
}
