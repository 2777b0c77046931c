//! BRISQUE's regression model: the feature scaling and the libsvm epsilon-SVR with an RBF
//! kernel, loaded from the JSON that `deploy/scripts/brisque_params.py` exports from the `brisque`
//! package. libsvm predicts `Σᵢ coefᵢ · exp(−γ ‖x − svᵢ‖²) − ρ`.

use std::path::Path;

use serde::Deserialize;

use super::BRISQUE_FEATURES;
use crate::PriorError;

/// The `format_version` this reader understands.
const FORMAT_VERSION: u32 = 1;

/// The parameter file as written by `deploy/scripts/brisque_params.py`.
#[derive(Debug, Deserialize)]
struct ParamsFile {
    format_version: u32,
    feature_count: usize,
    scale: ScaleSection,
    gamma: f64,
    rho: f64,
    coefficients: Vec<f64>,
    support_vectors: Vec<Vec<f64>>,
}

/// Per-feature min/max and the target interval (the package maps to [-1, 1]).
#[derive(Debug, Deserialize)]
struct ScaleSection {
    lower: f64,
    upper: f64,
    feature_min: Vec<f64>,
    feature_max: Vec<f64>,
}

/// Feature scaling plus the support-vector regression.
#[derive(Debug, Clone)]
pub(crate) struct SvrModel {
    lower: f64,
    upper: f64,
    feature_min: [f64; BRISQUE_FEATURES],
    feature_max: [f64; BRISQUE_FEATURES],
    gamma: f64,
    rho: f64,
    coefficients: Vec<f64>,
    /// Support vectors, [`BRISQUE_FEATURES`] values each, back to back.
    support_vectors: Vec<f64>,
}

impl SvrModel {
    /// Reads and validates the parameter file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, PriorError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PriorError::ParamsUnreadable {
                path: path.to_owned(),
                source,
            })?;
        let file: ParamsFile =
            serde_json::from_str(&text).map_err(|source| PriorError::ParamsMalformed {
                path: path.to_owned(),
                source,
            })?;
        Self::from_file(file).map_err(|reason| PriorError::ParamsInvalid {
            path: path.to_owned(),
            reason,
        })
    }

    fn from_file(file: ParamsFile) -> Result<Self, String> {
        if file.format_version != FORMAT_VERSION {
            return Err(format!(
                "format_version {} (this build reads {FORMAT_VERSION})",
                file.format_version
            ));
        }
        if file.feature_count != BRISQUE_FEATURES {
            return Err(format!(
                "feature_count {} (expected {BRISQUE_FEATURES})",
                file.feature_count
            ));
        }
        let as_features = |values: &[f64], what: &str| -> Result<[f64; BRISQUE_FEATURES], String> {
            values
                .try_into()
                .map_err(|_| format!("{what} has {} values", values.len()))
        };
        let feature_min = as_features(&file.scale.feature_min, "scale.feature_min")?;
        let feature_max = as_features(&file.scale.feature_max, "scale.feature_max")?;
        // JSON has no NaN, so plain comparisons decide these checks.
        if let Some(index) = (0..BRISQUE_FEATURES).find(|&i| feature_max[i] <= feature_min[i]) {
            return Err(format!(
                "feature {index} has max {} <= min {}",
                feature_max[index], feature_min[index]
            ));
        }
        if file.scale.upper <= file.scale.lower {
            return Err("scale.upper must exceed scale.lower".into());
        }
        if file.gamma <= 0.0 || !file.gamma.is_finite() || !file.rho.is_finite() {
            return Err(format!("gamma {} / rho {} unusable", file.gamma, file.rho));
        }
        if file.coefficients.is_empty() || file.coefficients.len() != file.support_vectors.len() {
            return Err(format!(
                "{} coefficients for {} support vectors",
                file.coefficients.len(),
                file.support_vectors.len()
            ));
        }
        if let Some(index) = file
            .support_vectors
            .iter()
            .position(|sv| sv.len() != BRISQUE_FEATURES)
        {
            return Err(format!(
                "support vector {index} does not have {BRISQUE_FEATURES} values"
            ));
        }
        let support_vectors: Vec<f64> = file.support_vectors.into_iter().flatten().collect();
        let all_finite = support_vectors
            .iter()
            .chain(&file.coefficients)
            .chain(&feature_min)
            .chain(&feature_max)
            .all(|v| v.is_finite());
        if !all_finite {
            return Err(
                "non-finite number among the support vectors, coefficients or scale".into(),
            );
        }
        Ok(Self {
            lower: file.scale.lower,
            upper: file.scale.upper,
            feature_min,
            feature_max,
            gamma: file.gamma,
            rho: file.rho,
            coefficients: file.coefficients,
            support_vectors,
        })
    }

    /// Number of support vectors.
    pub(crate) fn support_vector_count(&self) -> usize {
        self.coefficients.len()
    }

    /// Maps raw features to the interval the SVR was trained on.
    pub(crate) fn scale(&self, raw: &[f64; BRISQUE_FEATURES]) -> [f64; BRISQUE_FEATURES] {
        std::array::from_fn(|i| {
            let span = self.feature_max[i] - self.feature_min[i];
            self.lower + (self.upper - self.lower) * (raw[i] - self.feature_min[i]) / span
        })
    }

    /// The SVR's output for already scaled features: BRISQUE's raw score.
    pub(crate) fn predict(&self, scaled: &[f64; BRISQUE_FEATURES]) -> f64 {
        let kernel_sum: f64 = self
            .support_vectors
            .chunks_exact(BRISQUE_FEATURES)
            .zip(&self.coefficients)
            .map(|(support_vector, coefficient)| {
                let distance: f64 = support_vector
                    .iter()
                    .zip(scaled)
                    .map(|(s, x)| (s - x) * (s - x))
                    .sum();
                coefficient * (-self.gamma * distance).exp()
            })
            .sum();
        kernel_sum - self.rho
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_vector_file() -> ParamsFile {
        ParamsFile {
            format_version: 1,
            feature_count: BRISQUE_FEATURES,
            scale: ScaleSection {
                lower: -1.0,
                upper: 1.0,
                feature_min: vec![0.0; BRISQUE_FEATURES],
                feature_max: vec![2.0; BRISQUE_FEATURES],
            },
            gamma: 0.5,
            rho: -3.0,
            coefficients: vec![2.0, -1.0],
            support_vectors: vec![vec![0.0; BRISQUE_FEATURES], vec![1.0; BRISQUE_FEATURES]],
        }
    }

    #[test]
    fn scales_to_the_trained_interval_and_sums_rbf_kernels() {
        let model = SvrModel::from_file(two_vector_file()).unwrap();
        let scaled = model.scale(&[1.5; BRISQUE_FEATURES]);
        assert!(scaled.iter().all(|&v| (v - 0.5).abs() < 1e-15));
        // ‖x − 0‖² = 36·0.25 = 9, ‖x − 1‖² = 36·0.25 = 9.
        let expected = 2.0 * (-0.5f64 * 9.0).exp() - (-0.5f64 * 9.0).exp() + 3.0;
        assert!((model.predict(&scaled) - expected).abs() < 1e-12);
        let at_first_vector = model.predict(&[0.0; BRISQUE_FEATURES]);
        assert!((at_first_vector - (2.0 - (-0.5f64 * 36.0).exp() + 3.0)).abs() < 1e-12);
    }

    #[test]
    fn rejects_inconsistent_files_with_a_reason() {
        let mut file = two_vector_file();
        file.coefficients.pop();
        assert!(
            SvrModel::from_file(file)
                .unwrap_err()
                .contains("1 coefficients for 2")
        );

        let mut file = two_vector_file();
        file.scale.feature_max[4] = 0.0;
        assert!(SvrModel::from_file(file).unwrap_err().contains("feature 4"));

        let mut file = two_vector_file();
        file.support_vectors[1].pop();
        assert!(
            SvrModel::from_file(file)
                .unwrap_err()
                .contains("support vector 1")
        );

        let mut file = two_vector_file();
        file.format_version = 2;
        assert!(
            SvrModel::from_file(file)
                .unwrap_err()
                .contains("format_version 2")
        );
    }

    #[test]
    fn load_names_the_missing_file_and_points_at_setup() {
        let path = Path::new("/nonexistent/brisque_svr.json");
        let message = SvrModel::load(path).unwrap_err().to_string();
        assert!(
            message.contains("/nonexistent/brisque_svr.json"),
            "{message}"
        );
        assert!(message.contains("make setup"), "{message}");
    }
}
