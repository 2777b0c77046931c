//! Flattening any decoded colour type to interleaved RGB8.
//!
//! Integer arithmetic throughout, so a sample converts the same way on every machine: 16-bit
//! values round to the nearest 8-bit level, and alpha composites over white exactly
//! (opaque pixels keep their colour bit for bit).

use image::DynamicImage;

/// Converts a decoded image to interleaved RGB8 bytes, moving the buffer when it already is.
pub(crate) fn flatten_to_rgb8(image: DynamicImage) -> Vec<u8> {
    const U8: u32 = u8::MAX as u32;
    const U16: u32 = u16::MAX as u32;
    match image {
        DynamicImage::ImageRgb8(buffer) => buffer.into_raw(),
        DynamicImage::ImageLuma8(buffer) => flatten(buffer.as_raw(), 1, u32::from, U8),
        DynamicImage::ImageLumaA8(buffer) => flatten(buffer.as_raw(), 2, u32::from, U8),
        DynamicImage::ImageRgba8(buffer) => flatten(buffer.as_raw(), 4, u32::from, U8),
        DynamicImage::ImageLuma16(buffer) => flatten(buffer.as_raw(), 1, u32::from, U16),
        DynamicImage::ImageLumaA16(buffer) => flatten(buffer.as_raw(), 2, u32::from, U16),
        DynamicImage::ImageRgb16(buffer) => flatten(buffer.as_raw(), 3, u32::from, U16),
        DynamicImage::ImageRgba16(buffer) => flatten(buffer.as_raw(), 4, u32::from, U16),
        DynamicImage::ImageRgb32F(buffer) => flatten(buffer.as_raw(), 3, float_level, U16),
        DynamicImage::ImageRgba32F(buffer) => flatten(buffer.as_raw(), 4, float_level, U16),
        // `DynamicImage` is non-exhaustive: route future colour types through RGBA16.
        other => flatten(other.to_rgba16().as_raw(), 4, u32::from, U16),
    }
}

/// A float sample as a 16-bit level, clamped to `[0, 1]`; NaN becomes 0.
fn float_level(value: f32) -> u32 {
    if value.is_nan() {
        0
    } else {
        (value.clamp(0.0, 1.0) * 65535.0).round() as u32
    }
}

/// Flattens `channels`-sample pixels (gray, gray+alpha, RGB or RGBA) whose samples map to
/// levels in `0..=max`.
fn flatten<S: Copy>(samples: &[S], channels: usize, level: impl Fn(S) -> u32, max: u32) -> Vec<u8> {
    let max = u64::from(max);
    // Nearest 8-bit level of `value / scale`.
    let to_byte = |value: u64, scale: u64| ((value * 255 + scale / 2) / scale) as u8;
    // Colour over white: c·a + max·(max − a), on a scale of max².
    let over_white =
        |colour: u64, alpha: u64| to_byte(colour * alpha + max * (max - alpha), max * max);
    let sample = |s: S| u64::from(level(s));
    let mut rgb = Vec::with_capacity(samples.len() / channels * 3);
    match channels {
        1 => {
            for &gray in samples {
                let g = to_byte(sample(gray), max);
                rgb.extend_from_slice(&[g, g, g]);
            }
        }
        2 => {
            for pixel in samples.chunks_exact(2) {
                let g = over_white(sample(pixel[0]), sample(pixel[1]));
                rgb.extend_from_slice(&[g, g, g]);
            }
        }
        3 => {
            for pixel in samples.chunks_exact(3) {
                rgb.extend_from_slice(&[
                    to_byte(sample(pixel[0]), max),
                    to_byte(sample(pixel[1]), max),
                    to_byte(sample(pixel[2]), max),
                ]);
            }
        }
        4 => {
            for pixel in samples.chunks_exact(4) {
                let alpha = sample(pixel[3]);
                rgb.extend_from_slice(&[
                    over_white(sample(pixel[0]), alpha),
                    over_white(sample(pixel[1]), alpha),
                    over_white(sample(pixel[2]), alpha),
                ]);
            }
        }
        _ => unreachable!("flatten is only called with 1 to 4 channels"),
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, LumaA, Rgb, Rgba};

    #[test]
    fn alpha_composites_over_white() {
        let pixels: Vec<u8> = [[200, 100, 0, 255], [200, 100, 0, 0], [0, 0, 0, 128]].concat();
        let image = ImageBuffer::<Rgba<u8>, _>::from_raw(3, 1, pixels).unwrap();
        let rgb = flatten_to_rgb8(DynamicImage::ImageRgba8(image));
        // Opaque keeps its colour, transparent is white, half-transparent black is mid gray.
        assert_eq!(rgb, [200, 100, 0, 255, 255, 255, 127, 127, 127]);
    }

    #[test]
    fn sixteen_bit_rounds_to_nearest_level() {
        let pixels = vec![0x8080, 0x8000, 0xFFFF, 0x0080, 0x0081, 0];
        let image = ImageBuffer::<Rgb<u16>, _>::from_raw(2, 1, pixels).unwrap();
        let rgb = flatten_to_rgb8(DynamicImage::ImageRgb16(image));
        // 0x8080 = 128·257; 0x8000 = 127.5·257 rounds up; 0x80 = 0.498·257 rounds down.
        assert_eq!(rgb, [128, 128, 255, 0, 1, 0]);
    }

    #[test]
    fn gray_alpha_sixteen_bit_composites_over_white() {
        let image = ImageBuffer::<LumaA<u16>, _>::from_raw(2, 1, vec![0, 0, 0, 0xFFFF]).unwrap();
        let rgb = flatten_to_rgb8(DynamicImage::ImageLumaA16(image));
        assert_eq!(rgb, [255, 255, 255, 0, 0, 0]);
    }

    #[test]
    fn float_samples_clamp_and_zero_nan() {
        let image =
            ImageBuffer::<Rgb<f32>, _>::from_raw(2, 1, vec![-1.0, 0.5, 2.0, f32::NAN, 1.0, 0.25])
                .unwrap();
        let rgb = flatten_to_rgb8(DynamicImage::ImageRgb32F(image));
        assert_eq!(rgb, [0, 128, 255, 0, 255, 64]);
    }
}
