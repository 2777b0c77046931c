//! Mean-subtracted contrast-normalised (MSCN) coefficients, as the `brisque` package computes
//! them: a normalised 7x7 Gaussian window with σ = 7/6, `scipy.signal.convolve2d(.., 'same')`
//! (so the image is zero-padded, not mirrored), the local deviation
//! `sqrt(|μ² − (w * I²)|)` and the stabilising constant 1/255:
//! `MSCN = (I − μ) / (σ + 1/255)`.
//!
//! The window is the outer product of a 1-D Gaussian with itself, so the 2-D convolution is
//! done as a row pass and a column pass; zero padding separates the same way.
//!
//! One deliberate rule on top: a coefficient smaller than [`ROUNDING_FLOOR`] is set to exactly
//! 0. Inside an exactly flat window (JPEG blocks, clipped highlights, black borders) the
//! coefficient is 0 in exact arithmetic, and what floating point leaves there (about ±1e-14)
//! depends on summation order — in the package even on the CPU's BLAS kernel. Its sign still
//! decides which side of the AGGD fits the sample counts on, so without the rule such images
//! would score differently from one implementation or machine to the next. Genuine coefficients
//! are at least about 1e-9 (grey levels differ by multiples of 1e-4/255), noise stays below
//! 1e-13, so 1e-11 separates them.

use super::pyramid::GrayImage;

/// Taps of the window (the package's `kernel_size = 7`).
const WINDOW_TAPS: usize = 7;
const WINDOW_RADIUS: usize = WINDOW_TAPS / 2;
/// The package's `sigma = 7 / 6`.
const WINDOW_SIGMA: f64 = 7.0 / 6.0;
/// The package's `C = 1 / 255`, which keeps flat areas from dividing by zero.
const STABILISER: f64 = 1.0 / 255.0;
/// Coefficients below this magnitude are rounding noise and become exactly 0.
const ROUNDING_FLOOR: f64 = 1e-11;

/// The normalised 1-D factor of the package's 2-D Gaussian window.
fn gaussian_window() -> [f64; WINDOW_TAPS] {
    let mut taps = [0.0; WINDOW_TAPS];
    for (index, tap) in taps.iter_mut().enumerate() {
        let offset = index as f64 - WINDOW_RADIUS as f64;
        *tap = (-(offset * offset) / (2.0 * WINDOW_SIGMA * WINDOW_SIGMA)).exp();
    }
    let total: f64 = taps.iter().sum();
    taps.map(|tap| tap / total)
}

/// Filters one row with `taps`, treating samples outside it as zero. Tap by tap over the whole
/// row, so every pixel still sums its products in tap order but neighbouring pixels are
/// independent and vectorise.
fn filter_row(row: &[f64], taps: &[f64; WINDOW_TAPS], output: &mut [f64]) {
    let width = row.len();
    output.fill(0.0);
    for (k, &tap) in taps.iter().enumerate() {
        // Output x reads row[x + k - radius]; keep both indices inside the row.
        let (output_start, source_start) = if k < WINDOW_RADIUS {
            (WINDOW_RADIUS - k, 0)
        } else {
            (0, k - WINDOW_RADIUS)
        };
        let length = width.saturating_sub(output_start.max(source_start));
        let targets = &mut output[output_start..output_start + length];
        for (target, value) in targets
            .iter_mut()
            .zip(&row[source_start..source_start + length])
        {
            *target += tap * value;
        }
    }
}

/// Row `y` of the column-filtered image: `taps` applied down the columns of `source`
/// (`width` wide, `height` tall), rows outside the image counting as zero.
fn filter_columns_at(
    source: &[f64],
    width: usize,
    height: usize,
    y: usize,
    taps: &[f64; WINDOW_TAPS],
    output: &mut [f64],
) {
    output.fill(0.0);
    for (k, tap) in taps.iter().enumerate() {
        let Some(source_y) = (y + k).checked_sub(WINDOW_RADIUS).filter(|&r| r < height) else {
            continue;
        };
        let source_row = &source[source_y * width..(source_y + 1) * width];
        for (output, value) in output.iter_mut().zip(source_row) {
            *output += tap * value;
        }
    }
}

/// The MSCN coefficient map of `image`, same size, row-major.
pub(crate) fn mscn_coefficients(image: &GrayImage) -> Vec<f64> {
    let (width, height) = (image.width, image.height);
    let taps = gaussian_window();

    // Row pass over the image and its square; the column pass then runs one output row at a
    // time, so only these two full-size buffers and the result are allocated.
    let mut rows = vec![0.0; width * height];
    let mut square_rows = vec![0.0; width * height];
    let mut squares = vec![0.0; width];
    for ((row, filtered), filtered_squares) in image
        .pixels
        .chunks_exact(width)
        .zip(rows.chunks_exact_mut(width))
        .zip(square_rows.chunks_exact_mut(width))
    {
        filter_row(row, &taps, filtered);
        squares
            .iter_mut()
            .zip(row)
            .for_each(|(square, v)| *square = v * v);
        filter_row(&squares, &taps, filtered_squares);
    }

    let mut mscn = vec![0.0; width * height];
    let (mut local_mean, mut local_square_mean) = (vec![0.0; width], vec![0.0; width]);
    for (y, output_row) in mscn.chunks_exact_mut(width).enumerate() {
        filter_columns_at(&rows, width, height, y, &taps, &mut local_mean);
        filter_columns_at(
            &square_rows,
            width,
            height,
            y,
            &taps,
            &mut local_square_mean,
        );
        let input_row = &image.pixels[y * width..(y + 1) * width];
        for (((output, &value), &mean), &square_mean) in output_row
            .iter_mut()
            .zip(input_row)
            .zip(&local_mean)
            .zip(&local_square_mean)
        {
            let deviation = (mean * mean - square_mean).abs().sqrt();
            let coefficient = (value - mean) / (deviation + STABILISER);
            *output = if coefficient.abs() < ROUNDING_FLOOR {
                0.0
            } else {
                coefficient
            };
        }
    }
    mscn
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 2-D zero-padded convolution with the outer-product window, as scipy does it.
    fn convolve2d_same(image: &[f64], width: usize, height: usize) -> Vec<f64> {
        let taps = gaussian_window();
        let mut output = vec![0.0; width * height];
        for y in 0..height as isize {
            for x in 0..width as isize {
                let mut sum = 0.0;
                for (ky, ty) in taps.iter().enumerate() {
                    for (kx, tx) in taps.iter().enumerate() {
                        let (sy, sx) = (y + ky as isize - 3, x + kx as isize - 3);
                        if (0..height as isize).contains(&sy) && (0..width as isize).contains(&sx) {
                            sum += ty * tx * image[sy as usize * width + sx as usize];
                        }
                    }
                }
                output[y as usize * width + x as usize] = sum;
            }
        }
        output
    }

    #[test]
    fn window_is_the_packages_normalised_gaussian() {
        let taps = gaussian_window();
        assert!((taps.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // brisque.BRISQUE().gaussian_kernel2d(7, 7/6)[3, 3] == 0.11739635539001349; the 2-D centre
        // weight is the square of the 1-D centre tap.
        assert!(
            (taps[3] * taps[3] - 0.117_396_355_390_013_49).abs() < 1e-15,
            "{}",
            taps[3]
        );
        assert_eq!(taps[0], taps[6]);
    }

    #[test]
    fn separable_filter_equals_direct_zero_padded_convolution() {
        let (width, height) = (11, 9);
        let image: Vec<f64> = (0..width * height)
            .map(|i| ((i * 37) % 17) as f64 / 17.0)
            .collect();
        let taps = gaussian_window();
        let mut rows = vec![0.0; width * height];
        for (row, filtered) in image.chunks_exact(width).zip(rows.chunks_exact_mut(width)) {
            filter_row(row, &taps, filtered);
        }
        let mut separable = vec![0.0; width * height];
        for (y, output) in separable.chunks_exact_mut(width).enumerate() {
            filter_columns_at(&rows, width, height, y, &taps, output);
        }
        for (a, b) in separable.iter().zip(convolve2d_same(&image, width, height)) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
    }

    #[test]
    fn flat_windows_give_exact_zero_and_zero_padding_lifts_the_border() {
        for level in [0.1, 0.3, 0.5, 0.577_913_725_490_196, 0.7154, 1.0] {
            let image = GrayImage {
                width: 16,
                height: 16,
                pixels: vec![level; 256],
            };
            let mscn = mscn_coefficients(&image);
            // Exactly +0, not rounding noise of either sign, wherever the window is flat.
            for y in 3..13 {
                for x in 3..13 {
                    assert_eq!(
                        mscn[y * 16 + x].to_bits(),
                        0.0f64.to_bits(),
                        "level {level}"
                    );
                }
            }
            // The zero padding drags the local mean down at the border: positive there.
            assert!(mscn[0] > 1.0, "{}", mscn[0]);
        }
    }
}
