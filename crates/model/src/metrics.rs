//! PSNR and SSIM on RGB images in [0, 1], computed exactly as scikit-image's
//! `peak_signal_noise_ratio(data_range=1)` and `structural_similarity(channel_axis=-1,
//! data_range=1)` with its defaults, in double precision. Callers clamp network outputs to
//! [0, 1] first, as the PromptIR evaluation protocol does.

use tch::{Kind, Tensor};

use crate::error::{ModelError, Result};

/// SSIM window side (scikit-image's default `win_size`).
const SSIM_WINDOW: i64 = 7;
/// SSIM stabilisers for a data range of 1.
const K1: f64 = 0.01;
const K2: f64 = 0.03;

fn check_pair(restored: &Tensor, reference: &Tensor, min_side: i64) -> Result<()> {
    let size = restored.size();
    let valid = size.len() == 3 && size[1] >= min_side && size[2] >= min_side;
    if !valid || reference.size() != size {
        return Err(ModelError::ImageShape {
            expected: format!(
                "two C×H×W images of equal shape with H, W ≥ {min_side}; reference is {:?}",
                reference.size()
            ),
            got: size,
        });
    }
    Ok(())
}

/// Peak signal-to-noise ratio in dB of two C×H×W images with data range 1; infinite for
/// identical images.
pub fn psnr(restored: &Tensor, reference: &Tensor) -> Result<f64> {
    check_pair(restored, reference, 1)?;
    let difference = restored.to_kind(Kind::Double) - reference.to_kind(Kind::Double);
    let mse = difference.square().mean(Kind::Double).double_value(&[]);
    Ok(10.0 * (1.0 / mse).log10())
}

/// Mean structural similarity of two C×H×W images: per channel, a 7×7 uniform window with
/// sample (N − 1) covariances, K1 = 0.01, K2 = 0.03, averaged over the pixels whose window
/// lies inside the image (scikit-image crops 3 pixels per side), then over channels.
pub fn ssim(restored: &Tensor, reference: &Tensor) -> Result<f64> {
    check_pair(restored, reference, SSIM_WINDOW)?;
    // Channels become the batch of a one-plane pooling; valid pooling is the crop.
    let x = restored.to_kind(Kind::Double).unsqueeze(1);
    let y = reference.to_kind(Kind::Double).unsqueeze(1);
    let window_mean = |t: &Tensor| {
        t.avg_pool2d(
            [SSIM_WINDOW, SSIM_WINDOW],
            [1, 1],
            [0, 0],
            false,
            true,
            None,
        )
    };
    let samples = (SSIM_WINDOW * SSIM_WINDOW) as f64;
    let covariance_norm = samples / (samples - 1.0);
    let (mean_x, mean_y) = (window_mean(&x), window_mean(&y));
    let var_x = (window_mean(&(&x * &x)) - &mean_x * &mean_x) * covariance_norm;
    let var_y = (window_mean(&(&y * &y)) - &mean_y * &mean_y) * covariance_norm;
    let cov_xy = (window_mean(&(&x * &y)) - &mean_x * &mean_y) * covariance_norm;
    let (c1, c2) = (K1 * K1, K2 * K2);
    let numerator = (&mean_x * &mean_y * 2.0 + c1) * (cov_xy * 2.0 + c2);
    let denominator = (mean_x.square() + mean_y.square() + c1) * (var_x + var_y + c2);
    Ok((numerator / denominator)
        .mean(Kind::Double)
        .double_value(&[]))
}

/// PSNR and SSIM averaged per image over a batch (N×C×H×W), the PromptIR protocol.
pub fn mean_psnr_ssim(restored: &Tensor, reference: &Tensor) -> Result<(f64, f64)> {
    let batch = restored.size().first().copied().unwrap_or(0);
    if restored.dim() != 4 || batch == 0 || reference.size() != restored.size() {
        return Err(ModelError::ImageShape {
            expected: format!(
                "two non-empty N×C×H×W batches of equal shape; reference is {:?}",
                reference.size()
            ),
            got: restored.size(),
        });
    }
    let (mut psnr_sum, mut ssim_sum) = (0.0, 0.0);
    for i in 0..batch {
        psnr_sum += psnr(&restored.get(i), &reference.get(i))?;
        ssim_sum += ssim(&restored.get(i), &reference.get(i))?;
    }
    Ok((psnr_sum / batch as f64, ssim_sum / batch as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The deterministic pair behind the reference numbers, built as in this Python (numpy
    /// 2, scikit-image 0.26.0 from the project venv):
    ///
    /// ```python
    /// import numpy as np
    /// from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    /// y, x = np.mgrid[0:16, 0:20].astype(np.float64)
    /// ref = np.stack([0.5 + 0.4*np.sin(0.3*x + 0.2*y + c) for c in range(3)], -1)
    /// ref = ref.astype(np.float32).astype(np.float64)
    /// dist = np.clip(ref + 0.08*np.sin(1.7*x - 0.9*y)[..., None]*np.array([1, -0.5, 0.25]), 0, 1)
    /// dist = dist.astype(np.float32).astype(np.float64)
    /// peak_signal_noise_ratio(ref, dist, data_range=1)              # 28.547644172960077
    /// structural_similarity(ref, dist, channel_axis=-1, data_range=1)  # 0.9744166854754686
    /// ```
    fn reference_pair() -> (Tensor, Tensor) {
        let (height, width) = (16usize, 20usize);
        let weights = [1.0, -0.5, 0.25];
        let mut reference = Vec::new();
        let mut distorted = Vec::new();
        for (c, weight) in weights.iter().enumerate() {
            for y in 0..height {
                for x in 0..width {
                    let (xf, yf) = (x as f64, y as f64);
                    let r = (0.5 + 0.4 * (0.3 * xf + 0.2 * yf + c as f64).sin()) as f32;
                    let d = (f64::from(r) + 0.08 * (1.7 * xf - 0.9 * yf).sin() * weight)
                        .clamp(0.0, 1.0);
                    reference.push(r);
                    distorted.push(d as f32);
                }
            }
        }
        let shape = [3, height as i64, width as i64];
        (
            Tensor::from_slice(&distorted).view(shape),
            Tensor::from_slice(&reference).view(shape),
        )
    }

    #[test]
    fn matches_scikit_image() {
        let (distorted, reference) = reference_pair();
        let psnr = psnr(&distorted, &reference).unwrap();
        let ssim = ssim(&distorted, &reference).unwrap();
        assert!((psnr - 28.547644172960077).abs() < 1e-4, "psnr {psnr}");
        assert!((ssim - 0.9744166854754686).abs() < 1e-4, "ssim {ssim}");
        let batch = |t: &Tensor| Tensor::stack(&[t, t], 0);
        let (mean_psnr, mean_ssim) =
            mean_psnr_ssim(&batch(&distorted), &batch(&reference)).unwrap();
        assert!((mean_psnr - psnr).abs() < 1e-12 && (mean_ssim - ssim).abs() < 1e-12);
    }

    #[test]
    fn identical_images_are_perfect() {
        let image = Tensor::rand([3, 9, 9], (Kind::Float, Device::Cpu));
        assert_eq!(psnr(&image, &image).unwrap(), f64::INFINITY);
        assert!((ssim(&image, &image).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_mismatched_or_tiny_images() {
        let a = Tensor::rand([3, 8, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::rand([3, 8, 9], (Kind::Float, Device::Cpu));
        assert!(psnr(&a, &b).is_err());
        let tiny = Tensor::rand([3, 6, 30], (Kind::Float, Device::Cpu));
        assert!(
            ssim(&tiny, &tiny).is_err(),
            "skimage refuses images smaller than the window"
        );
        assert!(psnr(&tiny, &tiny.copy()).is_ok());
    }
}
