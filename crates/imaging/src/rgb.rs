//! [`Rgb8Image`]: the one in-memory image type of the mesh, and its wire form `RgbImage`.

use clearair_proto::v1::RgbImage;

use crate::decode::DecodeLimits;
use crate::error::ImagingError;

/// An 8-bit RGB image: interleaved R, G, B, row-major, no padding.
///
/// The fields are private so the invariant `data.len() == width * height * 3` with
/// `width, height > 0` holds for every value of this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8Image {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Rgb8Image {
    /// Wraps interleaved RGB bytes, checking the sizes.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, ImagingError> {
        let expected = rgb_len(width, height)?;
        if data.len() as u64 != expected {
            return Err(ImagingError::RgbByteCount {
                width,
                height,
                expected,
                actual: data.len() as u64,
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// An image of one colour.
    pub fn filled(width: u32, height: u32, colour: [u8; 3]) -> Result<Self, ImagingError> {
        let pixels =
            usize::try_from(rgb_len(width, height)? / 3).map_err(|_| too_big(width, height))?;
        Ok(Self {
            width,
            height,
            data: colour.repeat(pixels),
        })
    }

    /// Width in pixels (at least 1).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels (at least 1).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// `width * height`.
    pub fn pixel_count(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The interleaved bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The interleaved bytes, writable in place (the length cannot change).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives up the interleaved bytes without copying.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The colour at (`x`, `y`). Panics outside the image, like slice indexing.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let at = self.offset(x, y);
        [self.data[at], self.data[at + 1], self.data[at + 2]]
    }

    /// Sets the colour at (`x`, `y`). Panics outside the image, like slice indexing.
    pub fn set_pixel(&mut self, x: u32, y: u32, colour: [u8; 3]) {
        let at = self.offset(x, y);
        self.data[at..at + 3].copy_from_slice(&colour);
    }

    fn offset(&self, x: u32, y: u32) -> usize {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) is outside the {}×{} image",
            self.width,
            self.height
        );
        (y as usize * self.width as usize + x as usize) * 3
    }

    /// Planar `3×H×W` floats in `[0, 1]` (all R, then all G, then all B), the layout the
    /// networks take.
    pub fn to_planar_f32(&self) -> Vec<f32> {
        let plane = self.data.len() / 3;
        let mut planar = vec![0.0f32; plane * 3];
        let (red, rest) = planar.split_at_mut(plane);
        let (green, blue) = rest.split_at_mut(plane);
        let channels = red.iter_mut().zip(green.iter_mut()).zip(blue.iter_mut());
        for (((r, g), b), pixel) in channels.zip(self.data.chunks_exact(3)) {
            *r = f32::from(pixel[0]) / 255.0;
            *g = f32::from(pixel[1]) / 255.0;
            *b = f32::from(pixel[2]) / 255.0;
        }
        planar
    }

    /// Builds an image from planar `3×H×W` floats: values are clamped to `[0, 1]`, scaled and
    /// rounded to the nearest byte; NaN becomes 0 so a diverged network yields black, not noise.
    pub fn from_planar_f32(width: u32, height: u32, planar: &[f32]) -> Result<Self, ImagingError> {
        let expected = rgb_len(width, height)?;
        if planar.len() as u64 != expected {
            return Err(ImagingError::LengthMismatch {
                what: format!(
                    "planar RGB floats for a {width}×{height} image (3×{height}×{width})"
                ),
                expected,
                actual: planar.len() as u64,
            });
        }
        let plane = planar.len() / 3;
        let (red, rest) = planar.split_at(plane);
        let (green, blue) = rest.split_at(plane);
        let mut data = vec![0u8; planar.len()];
        let channels = red.iter().zip(green).zip(blue);
        for (((&r, &g), &b), pixel) in channels.zip(data.chunks_exact_mut(3)) {
            pixel[0] = unit_to_byte(r);
            pixel[1] = unit_to_byte(g);
            pixel[2] = unit_to_byte(b);
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Copies the `width × height` rectangle whose top-left corner is (`x`, `y`).
    pub fn crop(&self, x: u32, y: u32, width: u32, height: u32) -> Result<Self, ImagingError> {
        let inside = u64::from(x) + u64::from(width) <= u64::from(self.width)
            && u64::from(y) + u64::from(height) <= u64::from(self.height);
        if !inside {
            return Err(ImagingError::CropOutOfBounds {
                x,
                y,
                width,
                height,
                image_width: self.width,
                image_height: self.height,
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(rgb_len(width, height)?).unwrap_or(0));
        let row_bytes = width as usize * 3;
        for row in y..y + height {
            let start = self.offset(x, row);
            data.extend_from_slice(&self.data[start..start + row_bytes]);
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// The largest centred square (what the benchmarks resize to each size they measure).
    pub fn centre_square(&self) -> Self {
        let side = self.width.min(self.height);
        self.crop(
            (self.width - side) / 2,
            (self.height - side) / 2,
            side,
            side,
        )
        .expect("a centred square lies inside the image")
    }

    /// BLAKE3 over the dimensions and the bytes: equal hashes mean equal images, so the
    /// orchestrator keys its prior cache on this.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"clearair.rgb8.v1");
        hasher.update(&self.width.to_le_bytes());
        hasher.update(&self.height.to_le_bytes());
        hasher.update(&self.data);
        *hasher.finalize().as_bytes()
    }

    /// Validates an `RgbImage` from a peer against `limits` (sizes first, so a bogus
    /// 100000×100000 header is named as too large rather than as a byte-count mismatch) and
    /// copies its bytes.
    pub fn from_proto(message: &RgbImage, limits: &DecodeLimits) -> Result<Self, ImagingError> {
        limits.check_dimensions(message.width, message.height)?;
        Self::new(message.width, message.height, message.rgb.to_vec())
    }

    /// Like [`Rgb8Image::from_proto`] but takes the message, so the bytes move instead of
    /// being copied.
    pub fn from_proto_owned(
        message: RgbImage,
        limits: &DecodeLimits,
    ) -> Result<Self, ImagingError> {
        limits.check_dimensions(message.width, message.height)?;
        Self::new(message.width, message.height, message.rgb)
    }

    /// The wire form (copies the bytes; use `RgbImage::from` to move them).
    pub fn to_proto(&self) -> RgbImage {
        RgbImage {
            width: self.width,
            height: self.height,
            rgb: self.data.clone(),
        }
    }
}

/// Validates with [`DecodeLimits::default`]; use [`Rgb8Image::from_proto`] for other limits.
impl TryFrom<&RgbImage> for Rgb8Image {
    type Error = ImagingError;

    fn try_from(message: &RgbImage) -> Result<Self, Self::Error> {
        Self::from_proto(message, &DecodeLimits::default())
    }
}

/// Validates with [`DecodeLimits::default`] and moves the bytes.
impl TryFrom<RgbImage> for Rgb8Image {
    type Error = ImagingError;

    fn try_from(message: RgbImage) -> Result<Self, Self::Error> {
        Self::from_proto_owned(message, &DecodeLimits::default())
    }
}

impl From<Rgb8Image> for RgbImage {
    fn from(image: Rgb8Image) -> Self {
        RgbImage {
            width: image.width,
            height: image.height,
            rgb: image.data,
        }
    }
}

/// Refuses a zero width or height.
pub(crate) fn check_not_empty(width: u32, height: u32) -> Result<(), ImagingError> {
    if width == 0 || height == 0 {
        return Err(ImagingError::ZeroDimension { width, height });
    }
    Ok(())
}

/// `width * height * 3`, refusing empty sizes.
pub(crate) fn rgb_len(width: u32, height: u32) -> Result<u64, ImagingError> {
    check_not_empty(width, height)?;
    Ok(u64::from(width) * u64::from(height) * 3)
}

fn too_big(width: u32, height: u32) -> ImagingError {
    ImagingError::TooLarge {
        width,
        height,
        limit: crate::error::SizeLimit::Pixels {
            max: usize::MAX as u64 / 3,
        },
    }
}

/// `[0, 1]` to a byte with rounding; out-of-range values saturate and NaN maps to 0.
pub(crate) fn unit_to_byte(value: f32) -> u8 {
    if value.is_nan() {
        return 0;
    }
    // Rounds like `round` for non-negative values, but vectorises (see `resize`).
    (value.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(width: u32, height: u32) -> Rgb8Image {
        let data = (0..width * height * 3)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        Rgb8Image::new(width, height, data).unwrap()
    }

    #[test]
    fn new_names_the_sizes_it_rejects() {
        let error = Rgb8Image::new(4, 2, vec![0; 23]).unwrap_err();
        assert_eq!(
            error,
            ImagingError::RgbByteCount {
                width: 4,
                height: 2,
                expected: 24,
                actual: 23
            }
        );
        assert!(
            error.to_string().contains("4×2 image must be 24 bytes"),
            "{error}"
        );
        assert_eq!(
            Rgb8Image::new(0, 3, vec![]).unwrap_err(),
            ImagingError::ZeroDimension {
                width: 0,
                height: 3
            }
        );
    }

    #[test]
    fn proto_conversion_validates_what_a_peer_can_get_wrong() {
        let limits = DecodeLimits {
            max_width: 64,
            max_height: 64,
            max_pixels: 1000,
            ..Default::default()
        };
        let message = |width, height, len| RgbImage {
            width,
            height,
            rgb: vec![9; len],
        };
        assert!(matches!(
            Rgb8Image::from_proto(&message(0, 5, 0), &limits),
            Err(ImagingError::ZeroDimension {
                width: 0,
                height: 5
            })
        ));
        assert!(matches!(
            Rgb8Image::from_proto(&message(65, 1, 195), &limits),
            Err(ImagingError::TooLarge { width: 65, .. })
        ));
        assert!(matches!(
            Rgb8Image::from_proto(&message(40, 40, 4800), &limits),
            Err(ImagingError::TooLarge {
                limit: crate::error::SizeLimit::Pixels { max: 1000 },
                ..
            })
        ));
        assert!(matches!(
            Rgb8Image::from_proto(&message(3, 3, 26), &limits),
            Err(ImagingError::RgbByteCount {
                expected: 27,
                actual: 26,
                ..
            })
        ));
        let image = Rgb8Image::from_proto(&message(3, 3, 27), &limits).unwrap();
        let round_trip = Rgb8Image::try_from(RgbImage::from(image.clone())).unwrap();
        assert_eq!(round_trip, image);
        assert_eq!(image.to_proto(), message(3, 3, 27));
    }

    #[test]
    fn planar_round_trip_is_exact_and_ordered_by_channel() {
        let image = sample(5, 3);
        let planar = image.to_planar_f32();
        assert_eq!(planar.len(), 45);
        // Pixel (1, 0) is bytes 3..6; its green value sits in the second plane at index 1.
        assert!((planar[15 + 1] - f32::from(image.as_bytes()[4]) / 255.0).abs() < 1e-7);
        assert_eq!(Rgb8Image::from_planar_f32(5, 3, &planar).unwrap(), image);
    }

    #[test]
    fn from_planar_clamps_rounds_and_zeroes_nan() {
        let planar = [
            -0.5,
            0.5,
            2.0,
            f32::NAN,
            0.1,
            1.0,
            0.0,
            0.999,
            f32::INFINITY,
        ];
        let image = Rgb8Image::from_planar_f32(3, 1, &planar).unwrap();
        // R plane = [-0.5, 0.5, 2.0], G = [NaN, 0.1, 1.0], B = [0, 0.999, inf].
        assert_eq!(image.as_bytes(), &[0, 0, 0, 128, 26, 255, 255, 255, 255]);
        assert!(matches!(
            Rgb8Image::from_planar_f32(3, 1, &planar[..8]),
            Err(ImagingError::LengthMismatch {
                expected: 9,
                actual: 8,
                ..
            })
        ));
    }

    #[test]
    fn the_centre_square_is_the_middle_of_the_long_side() {
        let image = sample(6, 4);
        let square = image.centre_square();
        assert_eq!(square, image.crop(1, 0, 4, 4).unwrap());
        assert_eq!(
            sample(3, 5).centre_square(),
            sample(3, 5).crop(0, 1, 3, 3).unwrap()
        );
    }

    #[test]
    fn crop_copies_the_rectangle_and_checks_bounds() {
        let image = sample(6, 4);
        let crop = image.crop(2, 1, 3, 2).unwrap();
        assert_eq!((crop.width(), crop.height()), (3, 2));
        for y in 0..2 {
            for x in 0..3 {
                assert_eq!(crop.pixel(x, y), image.pixel(x + 2, y + 1));
            }
        }
        assert!(matches!(
            image.crop(4, 0, 3, 1),
            Err(ImagingError::CropOutOfBounds { .. })
        ));
        assert!(matches!(
            image.crop(0, 0, 0, 1),
            Err(ImagingError::ZeroDimension { .. })
        ));
    }

    #[test]
    fn content_hash_depends_on_dimensions_and_bytes() {
        let image = Rgb8Image::filled(4, 2, [1, 2, 3]).unwrap();
        let transposed = Rgb8Image::filled(2, 4, [1, 2, 3]).unwrap();
        let mut changed = image.clone();
        changed.set_pixel(3, 1, [1, 2, 4]);
        assert_eq!(image.content_hash(), image.clone().content_hash());
        assert_ne!(image.content_hash(), transposed.content_hash());
        assert_ne!(image.content_hash(), changed.content_hash());
    }
}
