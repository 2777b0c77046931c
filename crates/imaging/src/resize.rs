//! Resampling [`Rgb8Image`]: area averaging to shrink, bilinear interpolation to enlarge.
//!
//! Each axis is resampled on its own (separable), so a 4000×3000 → 1024×768 shrink touches
//! each source pixel a handful of times. Area averaging weighs every source pixel by the
//! fraction of it an output pixel covers, which is what makes downscaled noise and rain
//! streaks look like they would to a camera with bigger pixels (no aliasing). Enlarging uses
//! bilinear interpolation with pixel centres aligned (`align_corners = false` in PyTorch terms).

use crate::error::ImagingError;
use crate::rgb::{Rgb8Image, rgb_len};

/// For one output index: the first source index it reads and the weight of each source index
/// from there on (weights sum to 1).
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

/// The taps of every output index along one axis of `source` pixels resampled to `target`.
fn axis_taps(source: u32, target: u32) -> Vec<Taps> {
    let (source, target) = (u64::from(source), u64::from(target));
    if target < source {
        // Scaled by `target`, output i spans [i·s, (i+1)·s) and source j spans [j·t, (j+1)·t):
        // both are integers, so each overlap (and each weight, overlap / s) is exact.
        (0..target)
            .map(|i| {
                let (start, end) = (i * source, (i + 1) * source);
                let first = start / target;
                let last = (end - 1) / target;
                let weights = (first..=last)
                    .map(|j| {
                        let overlap = end.min((j + 1) * target) - start.max(j * target);
                        overlap as f32 / source as f32
                    })
                    .collect();
                Taps {
                    first: first as usize,
                    weights,
                }
            })
            .collect()
    } else {
        let scale = source as f64 / target as f64;
        let last = (source - 1) as f64;
        (0..target)
            .map(|i| {
                let centre = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, last);
                let first = centre.floor();
                let fraction = (centre - first) as f32;
                let weights = if fraction > 0.0 {
                    vec![1.0 - fraction, fraction]
                } else {
                    vec![1.0]
                };
                Taps {
                    first: first as usize,
                    weights,
                }
            })
            .collect()
    }
}

impl Rgb8Image {
    /// This image scaled down (area average, aspect kept, sides rounded) so its long side is
    /// at most `max_side`, or `None` when it already fits.
    pub fn shrunk_to(&self, max_side: u32) -> Result<Option<Rgb8Image>, ImagingError> {
        let long = self.width().max(self.height());
        if long <= max_side {
            return Ok(None);
        }
        let scale = f64::from(max_side) / f64::from(long);
        let width = ((f64::from(self.width()) * scale).round() as u32).max(1);
        let height = ((f64::from(self.height()) * scale).round() as u32).max(1);
        self.resize(width, height).map(Some)
    }

    /// Resizes to `width × height`: area-average where an axis shrinks, bilinear where it
    /// grows, a copy where neither changes. Results are rounded to the nearest byte.
    ///
    /// Streams row by row: besides the result it holds only the few horizontally resampled
    /// source rows the current output row reads.
    pub fn resize(&self, width: u32, height: u32) -> Result<Rgb8Image, ImagingError> {
        rgb_len(width, height)?;
        if (width, height) == (self.width(), self.height()) {
            return Ok(self.clone());
        }
        let columns = axis_taps(self.width(), width);
        let rows = axis_taps(self.height(), height);
        let source_row_len = self.width() as usize * 3;
        let row_len = width as usize * 3;
        let mut data = vec![0u8; height as usize * row_len];
        let mut accumulator = vec![0.0f32; row_len];
        // Resampled source rows still needed, ascending, and spare buffers to reuse.
        let mut cached: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut spare: Vec<Vec<f32>> = Vec::new();
        for (taps, out) in rows.iter().zip(data.chunks_exact_mut(row_len)) {
            // `first` never decreases, so rows above it are done with.
            while cached.first().is_some_and(|(row, _)| *row < taps.first) {
                spare.push(cached.remove(0).1);
            }
            accumulator.fill(0.0);
            for (k, &weight) in taps.weights.iter().enumerate() {
                let source_row = taps.first + k;
                let index = match cached.iter().position(|(row, _)| *row == source_row) {
                    Some(index) => index,
                    None => {
                        let mut resampled = spare.pop().unwrap_or_else(|| vec![0.0; row_len]);
                        let start = source_row * source_row_len;
                        let source = &self.as_bytes()[start..start + source_row_len];
                        resample_row(source, &columns, &mut resampled);
                        cached.push((source_row, resampled));
                        cached.len() - 1
                    }
                };
                for (sum, &value) in accumulator.iter_mut().zip(&cached[index].1) {
                    *sum += weight * value;
                }
            }
            for (byte, &sum) in out.iter_mut().zip(&accumulator) {
                // `+ 0.5` then truncation rounds non-negative values like `round`, without
                // the libm call `round` costs on baseline x86-64 (no SSE4.1).
                *byte = (sum.clamp(0.0, 255.0) + 0.5) as u8;
            }
        }
        Rgb8Image::new(width, height, data)
    }
}

/// Resamples one interleaved RGB row along x into `out` (target width × 3 floats).
fn resample_row(source: &[u8], columns: &[Taps], out: &mut [f32]) {
    for (taps, pixel) in columns.iter().zip(out.chunks_exact_mut(3)) {
        let mut sum = [0.0f32; 3];
        let start = taps.first * 3;
        let span = &source[start..start + taps.weights.len() * 3];
        for (&weight, rgb) in taps.weights.iter().zip(span.chunks_exact(3)) {
            sum[0] += weight * f32::from(rgb[0]);
            sum[1] += weight * f32::from(rgb[1]);
            sum[2] += weight * f32::from(rgb[2]);
        }
        pixel.copy_from_slice(&sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray_row(values: &[u8]) -> Rgb8Image {
        let data = values.iter().flat_map(|&v| [v, v, v]).collect();
        Rgb8Image::new(values.len() as u32, 1, data).unwrap()
    }

    fn reds(image: &Rgb8Image) -> Vec<u8> {
        image.as_bytes().iter().step_by(3).copied().collect()
    }

    #[test]
    fn halving_averages_pairs() {
        let image = gray_row(&[0, 100, 200, 250, 10, 11]);
        assert_eq!(reds(&image.resize(3, 1).unwrap()), [50, 225, 11]);
    }

    #[test]
    fn non_integer_shrink_weights_by_coverage() {
        // 3 → 2: output 0 covers source 0 fully and half of source 1.
        let image = gray_row(&[0, 90, 180]);
        let expected_first = (0.0f32 * (2.0 / 3.0) + 90.0 * (1.0 / 3.0)).round() as u8;
        assert_eq!(reds(&image.resize(2, 1).unwrap()), [expected_first, 150]);
    }

    #[test]
    fn enlarging_interpolates_between_pixel_centres() {
        let image = gray_row(&[0, 255]);
        // Centres map to -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
        assert_eq!(reds(&image.resize(4, 1).unwrap()), [0, 64, 191, 255]);
    }

    #[test]
    fn both_axes_and_constant_images() {
        let image = Rgb8Image::filled(7, 5, [12, 34, 56]).unwrap();
        for (width, height) in [(3, 2), (14, 11), (7, 9), (1, 1)] {
            let resized = image.resize(width, height).unwrap();
            assert_eq!((resized.width(), resized.height()), (width, height));
            assert!(resized.as_bytes().chunks(3).all(|p| p == [12, 34, 56]));
        }
        assert!(matches!(
            image.resize(0, 4),
            Err(ImagingError::ZeroDimension { .. })
        ));
    }

    #[test]
    fn area_shrink_preserves_the_mean() {
        let data: Vec<u8> = (0..30 * 20 * 3)
            .map(|i: u32| (i * 97 % 251) as u8)
            .collect();
        let image = Rgb8Image::new(30, 20, data).unwrap();
        let mean = |img: &Rgb8Image| {
            img.as_bytes().iter().map(|&v| f64::from(v)).sum::<f64>() / img.as_bytes().len() as f64
        };
        let small = image.resize(10, 5).unwrap();
        assert!(
            (mean(&small) - mean(&image)).abs() < 0.5,
            "{} vs {}",
            mean(&small),
            mean(&image)
        );
    }
}
