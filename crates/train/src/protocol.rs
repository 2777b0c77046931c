//! The evaluation protocol (PromptIR's): fixed degradations of the held-out photos — one per
//! photo and row, seeded by (row, photo) — scored with PSNR and SSIM on RGB in [0, 1],
//! averaged per image.

use clearair_imaging::Rgb8Image;
use clearair_model::{Degradation, DegradationKind};

use crate::error::Result;
use crate::mix::apply_recipe;
use crate::photos::{image_to_tensor, tensor_to_image};
use crate::seeding::{Purpose, keyed_rng};

/// Seed of every evaluation degradation (fixed: results are comparable across runs).
pub const EVALUATION_SEED: u64 = 2026;

/// What a row degrades with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowDegradation {
    /// Gaussian noise of this σ (0–255 scale), as in the denoising benchmarks.
    Noise(f32),
    /// One degradation of this kind, parameters drawn from the training ranges with the
    /// row's fixed seed.
    Sampled(DegradationKind),
}

/// One row of the evaluation table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalRow {
    /// Key in metric names, e.g. `noise25`.
    pub key: &'static str,
    /// Label in the table, e.g. `noise σ=25`.
    pub label: &'static str,
    /// The degradation.
    pub degradation: RowDegradation,
}

impl EvalRow {
    /// The kind this row degrades with.
    pub fn kind(&self) -> DegradationKind {
        match self.degradation {
            RowDegradation::Noise(_) => DegradationKind::Noise,
            RowDegradation::Sampled(kind) => kind,
        }
    }

    /// The noise σ of a noise row.
    pub fn noise_sigma(&self) -> Option<f32> {
        match self.degradation {
            RowDegradation::Noise(sigma) => Some(sigma),
            RowDegradation::Sampled(_) => None,
        }
    }
}

/// The seven rows: noise σ = 15, 25, 50, haze, rain, blur, low light.
pub const ROWS: [EvalRow; 7] = [
    EvalRow {
        key: "noise15",
        label: "noise σ=15",
        degradation: RowDegradation::Noise(15.0),
    },
    EvalRow {
        key: "noise25",
        label: "noise σ=25",
        degradation: RowDegradation::Noise(25.0),
    },
    EvalRow {
        key: "noise50",
        label: "noise σ=50",
        degradation: RowDegradation::Noise(50.0),
    },
    EvalRow {
        key: "haze",
        label: "haze",
        degradation: RowDegradation::Sampled(DegradationKind::Haze),
    },
    EvalRow {
        key: "rain",
        label: "rain",
        degradation: RowDegradation::Sampled(DegradationKind::Rain),
    },
    EvalRow {
        key: "blur",
        label: "blur",
        degradation: RowDegradation::Sampled(DegradationKind::Blur),
    },
    EvalRow {
        key: "low_light",
        label: "low light",
        degradation: RowDegradation::Sampled(DegradationKind::LowLight),
    },
];

/// The degradation of `row` for photo `photo_index` and the degraded 8-bit image (noise is
/// added in floating point, clipped and rounded, as PromptIR's test set does).
pub fn degrade_for_row(
    row_index: usize,
    photo_index: usize,
    clean: &Rgb8Image,
) -> Result<(Degradation, Rgb8Image)> {
    let mut rng = keyed_rng(
        EVALUATION_SEED,
        Purpose::Evaluation,
        row_index as u64,
        photo_index as u64,
    );
    let degradation = match ROWS[row_index].degradation {
        RowDegradation::Noise(sigma) => Degradation::Noise { sigma },
        RowDegradation::Sampled(kind) => Degradation::sample(kind, &mut rng),
    };
    let degraded = apply_recipe(&[degradation], &image_to_tensor(clean), &mut rng)?;
    Ok((degradation, tensor_to_image(&degraded)?))
}

/// A single degradation of `kind` for the encoder's accuracy check: photo `photo_index`,
/// repetition `repeat` (streams apart from the rows').
pub fn degrade_for_classification(
    kind: DegradationKind,
    repeat: u64,
    photo_index: usize,
    clean: &Rgb8Image,
) -> Result<Rgb8Image> {
    let stream = 1000 + 100 * kind.index() as u64 + repeat;
    let mut rng = keyed_rng(
        EVALUATION_SEED,
        Purpose::Evaluation,
        stream,
        photo_index as u64,
    );
    let degradation = Degradation::sample(kind, &mut rng);
    tensor_to_image(&apply_recipe(
        &[degradation],
        &image_to_tensor(clean),
        &mut rng,
    )?)
}

/// PSNR (dB) and SSIM of `image` against `reference`, both 8-bit, on RGB in [0, 1]
/// (scikit-image's definitions; see `clearair_model::metrics`).
pub fn psnr_ssim(image: &Rgb8Image, reference: &Rgb8Image) -> Result<(f64, f64)> {
    let (a, b) = (image_to_tensor(image), image_to_tensor(reference));
    Ok((clearair_model::psnr(&a, &b)?, clearair_model::ssim(&a, &b)?))
}

/// The centred `side × side` crop of `image` (or the whole image when it is smaller).
pub fn centre_crop(image: &Rgb8Image, side: u32) -> Result<Rgb8Image> {
    let (width, height) = (side.min(image.width()), side.min(image.height()));
    Ok(image.crop(
        (image.width() - width) / 2,
        (image.height() - height) / 2,
        width,
        height,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> Rgb8Image {
        let (width, height) = (40u32, 30u32);
        let data = (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8]
            })
            .collect();
        Rgb8Image::new(width, height, data).unwrap()
    }

    #[test]
    fn row_degradations_are_fixed_and_differ_between_photos() {
        let clean = photo();
        for (row, expected) in ROWS.iter().enumerate() {
            let (first, image) = degrade_for_row(row, 3, &clean).unwrap();
            let (again, repeat) = degrade_for_row(row, 3, &clean).unwrap();
            assert_eq!((first, &image), (again, &repeat));
            assert_eq!(first.kind(), expected.kind());
            let (_, other) = degrade_for_row(row, 4, &clean).unwrap();
            assert_ne!(image, other, "row {row}");
        }
        let (noise, _) = degrade_for_row(1, 0, &clean).unwrap();
        assert_eq!(noise, Degradation::Noise { sigma: 25.0 });
    }

    #[test]
    fn noise_rows_have_the_expected_input_psnr() {
        // σ = 25 on mid-range pixels: MSE ≈ (25/255)², PSNR ≈ 20.17 dB (clipping is rare here).
        let clean = Rgb8Image::filled(64, 64, [128, 120, 110]).unwrap();
        let (_, noisy) = degrade_for_row(1, 0, &clean).unwrap();
        let (psnr, ssim) = psnr_ssim(&noisy, &clean).unwrap();
        assert!((psnr - 20.17).abs() < 0.3, "psnr {psnr}");
        assert!(ssim < 0.5, "ssim {ssim}");
        assert_eq!(psnr_ssim(&clean, &clean).unwrap().0, f64::INFINITY);
    }
}
