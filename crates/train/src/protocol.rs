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
    /// One degradation of this kind, parameters drawn from the evaluation's fixed ranges
    /// ([`Degradation::sample`]) with the row's fixed seed.
    Sampled(DegradationKind),
    /// Nothing: the clean photo goes in, and should come out unchanged.
    Clean,
}

/// Which priors steer the restorer in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowPriors {
    /// The priors the mesh's backends compute for the degraded image.
    Served,
    /// Every prior on the neutral value the orchestrator substitutes when its service fails:
    /// the restorer alone, which must never make the image worse.
    Neutral,
}

/// One row of the evaluation table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalRow {
    /// Key in metric names, e.g. `noise25`, `clean`, `fallback_haze`.
    pub key: &'static str,
    /// Label in the table, e.g. `noise σ=25`.
    pub label: &'static str,
    /// The degradation.
    pub degradation: RowDegradation,
    /// The priors.
    pub priors: RowPriors,
    /// Seed stream of the row's degradations: a fallback row shares its served row's, so
    /// both restore the very same degraded images.
    pub stream: u64,
}

impl EvalRow {
    /// The kind this row degrades with (none for the clean row).
    pub fn kind(&self) -> Option<DegradationKind> {
        match self.degradation {
            RowDegradation::Noise(_) => Some(DegradationKind::Noise),
            RowDegradation::Sampled(kind) => Some(kind),
            RowDegradation::Clean => None,
        }
    }

    /// The noise σ of a noise row.
    pub fn noise_sigma(&self) -> Option<f32> {
        match self.degradation {
            RowDegradation::Noise(sigma) => Some(sigma),
            _ => None,
        }
    }
}

const fn served(
    key: &'static str,
    label: &'static str,
    degradation: RowDegradation,
    stream: u64,
) -> EvalRow {
    EvalRow {
        key,
        label,
        degradation,
        priors: RowPriors::Served,
        stream,
    }
}

const fn fallback(
    key: &'static str,
    label: &'static str,
    degradation: RowDegradation,
    stream: u64,
) -> EvalRow {
    EvalRow {
        key,
        label,
        degradation,
        priors: RowPriors::Neutral,
        stream,
    }
}

/// The rows: noise σ = 15, 25, 50, haze, rain, blur, low light with the served priors; the
/// clean photos; and the seven degradations again with every prior on its neutral fallback.
pub const ROWS: [EvalRow; 15] = [
    served("noise15", "noise σ=15", RowDegradation::Noise(15.0), 0),
    served("noise25", "noise σ=25", RowDegradation::Noise(25.0), 1),
    served("noise50", "noise σ=50", RowDegradation::Noise(50.0), 2),
    served(
        "haze",
        "haze",
        RowDegradation::Sampled(DegradationKind::Haze),
        3,
    ),
    served(
        "rain",
        "rain",
        RowDegradation::Sampled(DegradationKind::Rain),
        4,
    ),
    served(
        "blur",
        "blur",
        RowDegradation::Sampled(DegradationKind::Blur),
        5,
    ),
    served(
        "low_light",
        "low light",
        RowDegradation::Sampled(DegradationKind::LowLight),
        6,
    ),
    served("clean", "clean (no degradation)", RowDegradation::Clean, 7),
    fallback(
        "fallback_noise15",
        "fallback: noise σ=15",
        RowDegradation::Noise(15.0),
        0,
    ),
    fallback(
        "fallback_noise25",
        "fallback: noise σ=25",
        RowDegradation::Noise(25.0),
        1,
    ),
    fallback(
        "fallback_noise50",
        "fallback: noise σ=50",
        RowDegradation::Noise(50.0),
        2,
    ),
    fallback(
        "fallback_haze",
        "fallback: haze",
        RowDegradation::Sampled(DegradationKind::Haze),
        3,
    ),
    fallback(
        "fallback_rain",
        "fallback: rain",
        RowDegradation::Sampled(DegradationKind::Rain),
        4,
    ),
    fallback(
        "fallback_blur",
        "fallback: blur",
        RowDegradation::Sampled(DegradationKind::Blur),
        5,
    ),
    fallback(
        "fallback_low_light",
        "fallback: low light",
        RowDegradation::Sampled(DegradationKind::LowLight),
        6,
    ),
];

/// The degradation of `row` for photo `photo_index` (none for the clean row) and the
/// degraded 8-bit image (noise is added in floating point, clipped and rounded, as
/// PromptIR's test set does).
pub fn degrade_for_row(
    row_index: usize,
    photo_index: usize,
    clean: &Rgb8Image,
) -> Result<(Option<Degradation>, Rgb8Image)> {
    let row = ROWS[row_index];
    let mut rng = keyed_rng(
        EVALUATION_SEED,
        Purpose::Evaluation,
        row.stream,
        photo_index as u64,
    );
    let degradation = match row.degradation {
        RowDegradation::Noise(sigma) => Degradation::Noise { sigma },
        RowDegradation::Sampled(kind) => Degradation::sample(kind, &mut rng),
        RowDegradation::Clean => return Ok((None, clean.clone())),
    };
    let degraded = apply_recipe(&[degradation], &image_to_tensor(clean), &mut rng)?;
    Ok((Some(degradation), tensor_to_image(&degraded)?))
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
            assert_eq!(first.map(|d| d.kind()), expected.kind());
            let (_, other) = degrade_for_row(row, 4, &clean).unwrap();
            if expected.degradation == RowDegradation::Clean {
                assert_eq!((&image, &other), (&clean, &clean));
            } else {
                assert_ne!(image, other, "row {row}");
            }
        }
        let (noise, _) = degrade_for_row(1, 0, &clean).unwrap();
        assert_eq!(noise, Some(Degradation::Noise { sigma: 25.0 }));
    }

    #[test]
    fn fallback_rows_restore_the_same_images_as_their_served_rows() {
        let clean = photo();
        let keys: Vec<&str> = ROWS.iter().map(|r| r.key).collect();
        let unique: std::collections::HashSet<&&str> = keys.iter().collect();
        assert_eq!(unique.len(), ROWS.len(), "keys are unique");
        let mut fallbacks = 0;
        for (index, row) in ROWS.iter().enumerate() {
            if row.priors != RowPriors::Neutral {
                continue;
            }
            fallbacks += 1;
            let served = ROWS
                .iter()
                .position(|r| r.priors == RowPriors::Served && r.degradation == row.degradation)
                .expect("every fallback row has a served twin");
            assert_eq!(format!("fallback_{}", ROWS[served].key), row.key);
            for photo_index in 0..3 {
                assert_eq!(
                    degrade_for_row(index, photo_index, &clean).unwrap(),
                    degrade_for_row(served, photo_index, &clean).unwrap()
                );
            }
        }
        assert_eq!(fallbacks, 7);
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
