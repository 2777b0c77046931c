//! CLIP's image preprocessing, bit-exact with the Python pipeline the weights were trained
//! behind: torchvision's `Resize(size, BICUBIC)` on a PIL image (the shorter side to `size`,
//! the longer truncated as torchvision computes it), `CenterCrop(size)` and `Normalize`.
//!
//! PIL resamples 8-bit images in two separable passes, horizontal first, each rounding to a
//! byte, with Keys' bicubic kernel (a = −0.5) stretched by the downscale factor (so shrinking
//! antialiases) and 22-bit fixed-point weights. [`Rgb8Image::resize_bicubic_pil`] follows
//! `libImaging/Resample.c` step for step, which is what makes a DA-CLIP export served from
//! Rust see the same pixels as the same model in Python.

use crate::error::ImagingError;
use crate::rgb::Rgb8Image;

/// Fixed-point precision of PIL's 8-bit resampling weights (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// OpenAI CLIP's per-channel mean, on the 0–1 scale.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's per-channel standard deviation, on the 0–1 scale.
#[allow(clippy::excessive_precision)] // the digits as published; they round to the same f32
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Keys' cubic convolution kernel with a = −0.5 (PIL's `bicubic_filter`).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis of `source` pixels
/// resampled to `target`: per output index, the first source index and fixed-point weights.
fn coefficients(source: u32, target: u32) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(source) / f64::from(target);
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..target)
        .map(|out| {
            let centre = (f64::from(out) + 0.5) * scale;
            // C's (int) truncates toward zero; both bounds are clamped into the source.
            let min = ((centre - support + 0.5) as i64).max(0) as usize;
            let max = ((centre + support + 0.5) as i64).min(i64::from(source)) as usize;
            let weights: Vec<f64> = (min..max)
                .map(|x| bicubic((x as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total == 0.0 { *w } else { w / total };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
                })
                .collect();
            (min, fixed)
        })
        .collect()
}

/// PIL's `clip8`: drop the fraction (the sum started at one half, so this rounds) and clamp.
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

impl Rgb8Image {
    /// Resizes to `width × height` exactly as Pillow's `Image.resize(…, BICUBIC)` does for an
    /// RGB image (same bytes out).
    pub fn resize_bicubic_pil(&self, width: u32, height: u32) -> Result<Rgb8Image, ImagingError> {
        if width == 0 || height == 0 {
            return Err(ImagingError::ZeroDimension { width, height });
        }
        let (in_width, in_height) = (self.width() as usize, self.height() as usize);
        let source = self.as_bytes();
        let horizontal = width != self.width();
        let vertical = height != self.height();
        let rows = coefficients(self.height(), height);
        // Only the source rows some output row reads are resampled horizontally.
        let (first_row, last_row) = if vertical {
            let (first, _) = rows[0];
            let (start, ref weights) = rows[rows.len() - 1];
            (first, start + weights.len())
        } else {
            (0, in_height)
        };

        let mut temp_width = in_width;
        let mut temp: Vec<u8>;
        if horizontal {
            let columns = coefficients(self.width(), width);
            temp_width = width as usize;
            temp = vec![0; temp_width * (last_row - first_row) * 3];
            for (y, out_row) in temp.chunks_exact_mut(temp_width * 3).enumerate() {
                let row = &source[(y + first_row) * in_width * 3..][..in_width * 3];
                for (out, (start, weights)) in out_row.chunks_exact_mut(3).zip(&columns) {
                    for channel in 0..3 {
                        let mut sum = 1i32 << (PRECISION_BITS - 1);
                        for (k, weight) in weights.iter().enumerate() {
                            sum += i32::from(row[(start + k) * 3 + channel]) * weight;
                        }
                        out[channel] = clip8(sum);
                    }
                }
            }
        } else {
            temp = source[first_row * in_width * 3..last_row * in_width * 3].to_vec();
        }

        if !vertical {
            return Rgb8Image::new(width, height, temp);
        }
        let stride = temp_width * 3;
        let mut out = vec![0u8; stride * height as usize];
        for (out_row, (start, weights)) in out.chunks_exact_mut(stride).zip(&rows) {
            let start = start - first_row;
            for (x, value) in out_row.iter_mut().enumerate() {
                let mut sum = 1i32 << (PRECISION_BITS - 1);
                for (k, weight) in weights.iter().enumerate() {
                    sum += i32::from(temp[(start + k) * stride + x]) * weight;
                }
                *value = clip8(sum);
            }
        }
        Rgb8Image::new(width, height, out)
    }
}

/// CLIP's evaluation transform for square inputs of `size`: the shorter side resized to
/// `size` (bicubic, as PIL), a centre crop, then `(x / 255 − mean) / std` per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipPreprocess {
    /// Side of the square the network sees (224 for ViT-B/32).
    pub size: u32,
    /// Per-channel mean on the 0–1 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation on the 0–1 scale.
    pub std: [f32; 3],
}

impl Default for ClipPreprocess {
    fn default() -> Self {
        Self {
            size: 224,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }
}

impl ClipPreprocess {
    /// The resized (not yet cropped) dimensions: torchvision keeps the shorter side at
    /// `size` and truncates the longer one's `size · long / short`.
    pub fn resized_dimensions(&self, width: u32, height: u32) -> (u32, u32) {
        let size = u64::from(self.size);
        let (short, long) = (width.min(height), width.max(height));
        let long_out = (size * u64::from(long) / u64::from(short)) as u32;
        if width <= height {
            (self.size, long_out)
        } else {
            (long_out, self.size)
        }
    }

    /// The `size × size` byte image the network's input is made from.
    pub fn crop(&self, image: &Rgb8Image) -> Result<Rgb8Image, ImagingError> {
        let (width, height) = self.resized_dimensions(image.width(), image.height());
        let resized = image.resize_bicubic_pil(width, height)?;
        // torchvision: int(round((dim - size) / 2)), and Python rounds halves to even.
        let offset = |dim: u32| ((f64::from(dim) - f64::from(self.size)) / 2.0).round_ties_even();
        let (left, top) = (offset(width) as u32, offset(height) as u32);
        resized.crop(left, top, self.size, self.size)
    }

    /// The network input for `image`, planar (`3 × size × size`) and normalised.
    pub fn apply(&self, image: &Rgb8Image) -> Result<Vec<f32>, ImagingError> {
        let cropped = self.crop(image)?;
        let plane = (self.size as usize) * (self.size as usize);
        let mut planar = vec![0f32; 3 * plane];
        for (index, pixel) in cropped.as_bytes().chunks_exact(3).enumerate() {
            for channel in 0..3 {
                // ToTensor divides by 255 in float32; Normalize subtracts then divides.
                let value = f32::from(pixel[channel]) / 255.0;
                planar[channel * plane + index] = (value - self.mean[channel]) / self.std[channel];
            }
        }
        Ok(planar)
    }
}

#[cfg(test)]
mod tests;
