//! The two BRISQUE scales: the package's grayscale image and its half-scale copy.
//!
//! The `brisque` package converts with `skimage.color.rgb2gray` (not OpenCV): bytes become
//! floats in [0, 1] and are weighted with ITU-R BT.709 luma coefficients. It then halves the
//! image with `cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)` on float64
//! data, which is reproduced here bit for bit: the output size rounds half to even, every output
//! sample sits exactly between two inputs (fractional offset 0.5), so OpenCV's cubic kernel
//! (a = -0.75) reduces to the four weights in [`HALF_SCALE_TAPS`], and borders replicate.

/// `skimage.color.rgb2gray` weights for R, G and B.
const LUMA_WEIGHTS: [f64; 3] = [0.2125, 0.7154, 0.0721];

/// OpenCV's cubic weights at fractional offset 0.5 for source samples `2i-1, 2i, 2i+1, 2i+2`.
const HALF_SCALE_TAPS: [f64; 4] = [-0.09375, 0.59375, 0.59375, -0.09375];

/// A single-channel float64 image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GrayImage {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) pixels: Vec<f64>,
}

/// Luminance in [0, 1] as `skimage.color.rgb2gray` computes it for 8-bit RGB.
pub(crate) fn luminance(width: usize, height: usize, rgb: &[u8]) -> GrayImage {
    // One table per channel: each byte value's weighted contribution, as skimage forms it
    // (scale to [0, 1] first, then weight).
    let mut tables = [[0.0f64; 256]; 3];
    for (table, weight) in tables.iter_mut().zip(LUMA_WEIGHTS) {
        for (value, entry) in table.iter_mut().enumerate() {
            *entry = value as f64 / 255.0 * weight;
        }
    }
    let pixels = rgb
        .chunks_exact(3)
        .map(|p| tables[0][p[0] as usize] + tables[1][p[1] as usize] + tables[2][p[2] as usize])
        .collect();
    GrayImage {
        width,
        height,
        pixels,
    }
}

/// Output length of OpenCV's `fx = 0.5` resize: `cvRound(n * 0.5)`, which rounds half to even.
fn half_length(length: usize) -> usize {
    (length as f64 * 0.5).round_ties_even() as usize
}

/// Source indices `2i-1 ..= 2i+2`, clamped to the image like OpenCV's replicated border.
fn cubic_sources(output_index: usize, source_length: usize) -> [usize; 4] {
    let centre = 2 * output_index as isize;
    let last = source_length as isize - 1;
    [-1isize, 0, 1, 2].map(|offset| (centre + offset).clamp(0, last) as usize)
}

/// The image halved with OpenCV's `INTER_CUBIC`, horizontal pass first as OpenCV does.
pub(crate) fn half_scale(image: &GrayImage) -> GrayImage {
    let width = half_length(image.width);
    let height = half_length(image.height);
    let column_sources: Vec<[usize; 4]> =
        (0..width).map(|x| cubic_sources(x, image.width)).collect();

    let mut rows = vec![0.0; width * image.height];
    for (source_row, output_row) in image
        .pixels
        .chunks_exact(image.width)
        .zip(rows.chunks_exact_mut(width))
    {
        for (output, sources) in output_row.iter_mut().zip(&column_sources) {
            *output = source_row[sources[0]] * HALF_SCALE_TAPS[0]
                + source_row[sources[1]] * HALF_SCALE_TAPS[1]
                + source_row[sources[2]] * HALF_SCALE_TAPS[2]
                + source_row[sources[3]] * HALF_SCALE_TAPS[3];
        }
    }

    let mut pixels = vec![0.0; width * height];
    for (y, output_row) in pixels.chunks_exact_mut(width).enumerate() {
        let [r0, r1, r2, r3] =
            cubic_sources(y, image.height).map(|row| &rows[row * width..(row + 1) * width]);
        for (x, output) in output_row.iter_mut().enumerate() {
            *output = HALF_SCALE_TAPS[0] * r0[x]
                + HALF_SCALE_TAPS[1] * r1[x]
                + HALF_SCALE_TAPS[2] * r2[x]
                + HALF_SCALE_TAPS[3] * r3[x];
        }
    }
    GrayImage {
        width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luminance_matches_skimage_rgb2gray() {
        // skimage.color.rgb2gray(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]],
        // dtype=np.uint8)) = [0.2125, 0.7154, 0.0721, 0.577913725490196]
        let gray = luminance(4, 1, &[255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30]);
        let expected = [0.2125, 0.7154, 0.0721, 0.577_913_725_490_196];
        for (got, want) in gray.pixels.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
    }

    #[test]
    fn half_size_rounds_half_to_even_like_opencv() {
        // cv2.resize on 127x125 -> 64x62, 5x7 -> 2x4, 9 -> 4, 3 -> 2, 2 -> 1.
        assert_eq!(
            [127, 125, 5, 7, 9, 3, 2, 64].map(half_length),
            [64, 62, 2, 4, 4, 2, 1, 32]
        );
    }

    #[test]
    fn half_scale_matches_opencv_inter_cubic() {
        // g = np.arange(35, dtype=np.float64).reshape(5, 7) ** 2 / 1000
        // cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        let pixels: Vec<f64> = (0..35).map(|v| (v * v) as f64 / 1000.0).collect();
        let half = half_scale(&GrayImage {
            width: 7,
            height: 5,
            pixels,
        });
        let expected = [
            0.013248046875000002,
            0.031062500000000007,
            0.056437499999999995,
            0.082408203125,
            0.3145625,
            0.39375000000000004,
            0.47774999999999995,
            0.5504375,
        ];
        assert_eq!((half.width, half.height), (4, 2));
        for (got, want) in half.pixels.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }
}
