//! BRISQUE, the embedded quality prior; the public contract is documented on [`BrisqueModel`].

mod aggd;
mod features;
mod mscn;
mod pyramid;
mod svr;

use std::fmt;
use std::path::Path;

use self::features::{FEATURES_PER_SCALE, scale_features};
use self::pyramid::{half_scale, luminance};
use self::svr::SvrModel;
use crate::PriorError;
use crate::rgb::validate_rgb8;

/// Length of the BRISQUE feature vector (18 per scale, two scales): `D_q` of this backend.
pub const BRISQUE_FEATURES: usize = 36;

/// Smallest width and height accepted: the half-scale image is then at least 8 pixels a side,
/// wider than the 7×7 MSCN window.
pub const BRISQUE_MIN_SIDE: usize = 16;

/// Width of one level's bin on the 1..5 score scale (4 / 5, i.e. 20 raw BRISQUE points).
const LEVEL_WIDTH: f32 = 0.8;

/// BRISQUE (Mittal, Moorthy & Bovik, 2012) exactly as the `brisque` PyPI package 0.2.0
/// computes it, with the package's SVR and feature scaling loaded from a parameter file.
///
/// # Pipeline
/// 8-bit RGB → `skimage.color.rgb2gray` luminance in [0, 1] → at full and half scale (OpenCV
/// `INTER_CUBIC`): MSCN coefficients (7×7 Gaussian, σ = 7/6, zero padding, C = 1/255) → AGGD
/// moment-matching fits of the MSCN map and its four neighbour products → 2 × 18 features →
/// scaled to [-1, 1] with the package's min/max → RBF epsilon-SVR → raw score, 0 (best) to about
/// 100 (worst); it can leave that range slightly.
///
/// One rule is added: MSCN coefficients below 1e-11 in magnitude, which only arise as float
/// rounding inside exactly flat 7×7 windows, are set to exactly 0. The package leaves ±1e-14
/// there, whose signs (which depend on its summation order and even its BLAS kernel) move some
/// features by a few percent on images with flat areas (JPEG blocks, clipped highlights).
/// Elsewhere the port matches the package to float precision.
///
/// # Quality score and level
/// The raw score maps linearly onto the 1..5 scale DeQA-Score and Q-Align use (5 = excellent):
/// `score = clamp(5 − 4 · raw / 100, 1, 5)` ([`brisque_quality_score`]), so raw 0 → 5 and raw
/// 100 → 1. The level splits 1..5 into five equal bins of 0.8 ([`QualityLevel::from_score`]:
/// Excellent from 4.2, Good from 3.4, Fair from 2.6, Poor from 1.8), i.e. raw BRISQUE bins of
/// 20 points — Excellent below 20, Good to 40, Fair to 60, Poor to 80, Bad beyond: the
/// equal-interval reading of a 0..100 (D)MOS scale on the five ITU-R BT.500 categories.
#[derive(Debug, Clone)]
pub struct BrisqueModel {
    svr: SvrModel,
}

/// One image's BRISQUE result.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityAssessment {
    /// The 36 features scaled to [-1, 1] as the SVR sees them (values of unusual images may
    /// leave that interval): the quality representation `F_q`.
    pub features: Vec<f32>,
    /// BRISQUE's own score: 0 best, about 100 worst.
    pub raw_score: f32,
    /// Quality on 1..5, 5 excellent ([`brisque_quality_score`] of `raw_score`).
    pub score: f32,
    /// [`QualityLevel::from_score`] of `score`.
    pub level: QualityLevel,
}

/// Five-level quality label, worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QualityLevel {
    /// Score below 1.8 (raw BRISQUE above about 80).
    Bad,
    /// Score in [1.8, 2.6) (raw about 60..80).
    Poor,
    /// Score in [2.6, 3.4) (raw about 40..60).
    Fair,
    /// Score in [3.4, 4.2) (raw about 20..40).
    Good,
    /// Score 4.2 or more (raw below about 20).
    Excellent,
}

impl QualityLevel {
    /// The level of a 1..5 quality score: five equal bins of 0.8 (values outside 1..5 fall into
    /// the end bins).
    pub fn from_score(score: f32) -> Self {
        match score {
            s if s >= 1.0 + 4.0 * LEVEL_WIDTH => Self::Excellent,
            s if s >= 1.0 + 3.0 * LEVEL_WIDTH => Self::Good,
            s if s >= 1.0 + 2.0 * LEVEL_WIDTH => Self::Fair,
            s if s >= 1.0 + LEVEL_WIDTH => Self::Poor,
            _ => Self::Bad,
        }
    }

    /// Lower-case name, as in DeQA's prompt ("bad", "poor", "fair", "good", "excellent").
    pub fn label(self) -> &'static str {
        match self {
            Self::Bad => "bad",
            Self::Poor => "poor",
            Self::Fair => "fair",
            Self::Good => "good",
            Self::Excellent => "excellent",
        }
    }
}

impl fmt::Display for QualityLevel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.label())
    }
}

/// Maps a raw BRISQUE score (0 best … 100 worst) to quality on 1..5 (5 best), clamped.
pub fn brisque_quality_score(raw_score: f32) -> f32 {
    (5.0 - 4.0 * raw_score / 100.0).clamp(1.0, 5.0)
}

impl BrisqueModel {
    /// Loads the parameters that `deploy/scripts/brisque_params.py` exported from the package (see
    /// `data/brisque/brisque_svr.json` after `make setup`); errors name the file.
    pub fn load(path: &Path) -> Result<Self, PriorError> {
        Ok(Self {
            svr: SvrModel::load(path)?,
        })
    }

    /// The 36 raw (unscaled) BRISQUE features of an RGB8 image, full scale first.
    pub fn features(
        &self,
        width: usize,
        height: usize,
        rgb: &[u8],
    ) -> Result<[f32; BRISQUE_FEATURES], PriorError> {
        Ok(raw_features(width, height, rgb)?.map(|v| v as f32))
    }

    /// Scaled features (`F_q`), raw score, 1..5 score and level of an RGB8 image.
    ///
    /// Errors: a buffer that is not `width * height * 3` bytes, a side below
    /// [`BRISQUE_MIN_SIDE`], or an image without texture (e.g. one flat colour), for which
    /// BRISQUE's distribution fits are undefined ([`PriorError::Textureless`]).
    pub fn assess(
        &self,
        width: usize,
        height: usize,
        rgb: &[u8],
    ) -> Result<QualityAssessment, PriorError> {
        let scaled = self.svr.scale(&raw_features(width, height, rgb)?);
        let raw_score = self.svr.predict(&scaled) as f32;
        let score = brisque_quality_score(raw_score);
        Ok(QualityAssessment {
            features: scaled.iter().map(|&v| v as f32).collect(),
            raw_score,
            score,
            level: QualityLevel::from_score(score),
        })
    }

    /// Number of support vectors in the loaded SVR.
    pub fn support_vector_count(&self) -> usize {
        self.svr.support_vector_count()
    }
}

/// Validates the input and computes both scales' features in double precision.
fn raw_features(
    width: usize,
    height: usize,
    rgb: &[u8],
) -> Result<[f64; BRISQUE_FEATURES], PriorError> {
    validate_rgb8(width, height, rgb)?;
    if width < BRISQUE_MIN_SIDE || height < BRISQUE_MIN_SIDE {
        return Err(PriorError::ImageTooSmall {
            width,
            height,
            min_side: BRISQUE_MIN_SIDE,
        });
    }
    let full = luminance(width, height, rgb);
    let half = half_scale(&full);
    let mut features = [0.0; BRISQUE_FEATURES];
    features[..FEATURES_PER_SCALE].copy_from_slice(&scale_features(&full, "full")?);
    features[FEATURES_PER_SCALE..].copy_from_slice(&scale_features(&half, "half")?);
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_mapping_is_linear_and_clamped() {
        assert_eq!(brisque_quality_score(0.0), 5.0);
        assert_eq!(brisque_quality_score(100.0), 1.0);
        assert!((brisque_quality_score(50.0) - 3.0).abs() < 1e-6);
        assert_eq!(brisque_quality_score(-7.0), 5.0);
        assert_eq!(brisque_quality_score(130.0), 1.0);
    }

    #[test]
    fn levels_are_equal_bins_of_twenty_raw_points() {
        let level_of_raw = |raw: f32| QualityLevel::from_score(brisque_quality_score(raw));
        let cases = [
            (-5.0, QualityLevel::Excellent),
            (19.9, QualityLevel::Excellent),
            (20.1, QualityLevel::Good),
            (39.9, QualityLevel::Good),
            (40.1, QualityLevel::Fair),
            (59.9, QualityLevel::Fair),
            (60.1, QualityLevel::Poor),
            (79.9, QualityLevel::Poor),
            (80.1, QualityLevel::Bad),
            (150.0, QualityLevel::Bad),
        ];
        for (raw, level) in cases {
            assert_eq!(level_of_raw(raw), level, "raw {raw}");
        }
        assert_eq!(QualityLevel::from_score(4.2), QualityLevel::Excellent);
        assert_eq!(QualityLevel::from_score(1.8), QualityLevel::Poor);
        assert_eq!(QualityLevel::from_score(0.0), QualityLevel::Bad);
        assert_eq!(QualityLevel::from_score(9.0), QualityLevel::Excellent);
        assert_eq!(QualityLevel::Good.to_string(), "good");
        assert!(QualityLevel::Bad < QualityLevel::Excellent);
    }

    #[test]
    fn rejects_bad_buffers_small_and_flat_images() {
        let small = vec![128u8; 15 * 40 * 3];
        assert!(matches!(
            raw_features(15, 40, &small),
            Err(PriorError::ImageTooSmall {
                width: 15,
                height: 40,
                min_side: 16
            })
        ));
        assert!(matches!(
            raw_features(16, 16, &[0; 10]),
            Err(PriorError::BufferSize { .. })
        ));
        // A flat image: the MSCN map is zero inside and positive at the zero-padded border, so
        // nothing is negative and the fit is undefined.
        let flat = vec![90u8; 32 * 32 * 3];
        let error = raw_features(32, 32, &flat).unwrap_err();
        assert!(
            matches!(
                error,
                PriorError::Textureless {
                    scale: "full",
                    coefficients: "mscn"
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn smallest_accepted_image_has_finite_features() {
        let pixels: Vec<u8> = (0..16 * 16 * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let features = raw_features(16, 16, &pixels).unwrap();
        assert!(features.iter().all(|v| v.is_finite()));
        assert!(features[0] >= 0.2 && features[0] <= 10.0);
    }
}
