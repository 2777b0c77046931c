//! Gaussian smoothing before the graph is built, as in Felzenszwalb–Huttenlocher's reference
//! code: a normalised kernel of radius ⌈4σ⌉, applied per channel along rows then columns, with
//! the border sample repeated.

use super::resample::RgbImage;

/// Normalised 1-D Gaussian taps `0..=radius` (the kernel is symmetric).
fn half_kernel(sigma: f32) -> Vec<f32> {
    let radius = (4.0 * sigma).ceil() as usize;
    let mut taps: Vec<f32> = (0..=radius)
        .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
        .collect();
    let total = taps[0] + 2.0 * taps[1..].iter().sum::<f32>();
    taps.iter_mut().for_each(|t| *t /= total);
    taps
}

/// One separable pass over `lines` lines of `length` samples each; `index(line, i)` is the
/// position of sample `i` of `line` in both buffers.
fn filter_lines(
    input: &[[f32; 3]],
    output: &mut [[f32; 3]],
    lines: usize,
    length: usize,
    index: impl Fn(usize, usize) -> usize,
    taps: &[f32],
) {
    let last = length - 1;
    for line in 0..lines {
        for i in 0..length {
            let mut sum = input[index(line, i)].map(|v| v * taps[0]);
            for (offset, &tap) in taps.iter().enumerate().skip(1) {
                let before = input[index(line, i.saturating_sub(offset))];
                let after = input[index(line, (i + offset).min(last))];
                for channel in 0..3 {
                    sum[channel] += tap * (before[channel] + after[channel]);
                }
            }
            output[index(line, i)] = sum;
        }
    }
}

/// `image` smoothed with a Gaussian of standard deviation `sigma` pixels (`sigma` = 0: copy).
pub(crate) fn gaussian_smooth(image: &RgbImage, sigma: f32) -> RgbImage {
    if sigma <= 0.0 {
        return image.clone();
    }
    let (width, height) = (image.width, image.height);
    let taps = half_kernel(sigma);
    let mut rows = vec![[0.0; 3]; width * height];
    filter_lines(
        &image.pixels,
        &mut rows,
        height,
        width,
        |y, x| y * width + x,
        &taps,
    );
    let mut pixels = vec![[0.0; 3]; width * height];
    filter_lines(
        &rows,
        &mut pixels,
        width,
        height,
        |x, y| y * width + x,
        &taps,
    );
    RgbImage {
        width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_the_reference_code_for_sigma_0_8() {
        let taps = half_kernel(0.8);
        assert_eq!(taps.len(), 5, "radius ceil(4 * 0.8) = 4");
        assert!((taps[0] + 2.0 * taps[1..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // exp(-0.5 (1/0.8)^2) relative to the centre.
        assert!((taps[1] / taps[0] - (-0.781_25f32).exp()).abs() < 1e-6);
    }

    #[test]
    fn smoothing_keeps_flat_images_and_spreads_a_step() {
        let flat = RgbImage {
            width: 5,
            height: 4,
            pixels: vec![[7.0, 8.0, 9.0]; 20],
        };
        let smoothed = gaussian_smooth(&flat, 0.8);
        assert!(
            smoothed
                .pixels
                .iter()
                .all(|p| (p[0] - 7.0).abs() < 1e-4 && (p[2] - 9.0).abs() < 1e-4)
        );

        let step = RgbImage {
            width: 8,
            height: 1,
            pixels: (0..8)
                .map(|x| if x < 4 { [0.0; 3] } else { [100.0; 3] })
                .collect(),
        };
        let smoothed = gaussian_smooth(&step, 0.8);
        let values: Vec<f32> = smoothed.pixels.iter().map(|p| p[0]).collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
        assert!(
            (values[3] + values[4] - 100.0).abs() < 1e-3,
            "symmetric about the step"
        );
        assert!(values[3] > 20.0 && values[3] < 30.0, "{values:?}");
        assert_eq!(gaussian_smooth(&step, 0.0), step);
    }
}
