//! Which degradations a training sample gets: one kind most of the time, sometimes a mixture
//! of two, occasionally none (so the restorer learns to leave clean pixels alone and the
//! encoder learns what "nothing wrong" looks like).

use clearair_model::{Degradation, DegradationKind};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use crate::error::Result;

/// Where a degradation's parameters are drawn from.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ParameterRanges {
    /// The evaluation's fixed ranges ([`Degradation::sample`]).
    #[default]
    Evaluation,
    /// The wider training ranges around them ([`Degradation::sample_training`]).
    Training,
    /// Each degradation from the evaluation's ranges with probability `evaluation_share`,
    /// otherwise from the wide ones: most of the data where the rows are measured, the rest
    /// around it so degradations made by other code are no surprise.
    Mixed {
        /// Probability of the evaluation's ranges, in [0, 1].
        evaluation_share: f64,
    },
}

impl ParameterRanges {
    /// Parses `training`, `evaluation` or `mixed:P` (P the evaluation's share; `mixed`
    /// alone is `mixed:0.5`).
    pub fn parse(text: &str) -> Result<Self> {
        let setting = |why: String| crate::error::TrainError::Setting(why);
        match text {
            "training" => Ok(Self::Training),
            "evaluation" => Ok(Self::Evaluation),
            "mixed" => Ok(Self::Mixed {
                evaluation_share: 0.5,
            }),
            other => {
                let share = other
                    .strip_prefix("mixed:")
                    .ok_or_else(|| {
                        setting(format!(
                            "--ranges `{other}`: expected training, evaluation or mixed:P"
                        ))
                    })?
                    .parse::<f64>()
                    .map_err(|e| setting(format!("--ranges `{other}`: {e}")))?;
                if !(0.0..=1.0).contains(&share) {
                    return Err(setting(format!(
                        "--ranges `{other}`: the evaluation's share must be within [0, 1]"
                    )));
                }
                Ok(Self::Mixed {
                    evaluation_share: share,
                })
            }
        }
    }

    /// Draws the parameters of one degradation of `kind`.
    pub fn sample(self, kind: DegradationKind, rng: &mut ChaCha8Rng) -> Degradation {
        let evaluation = match self {
            Self::Evaluation => true,
            Self::Training => false,
            Self::Mixed { evaluation_share } => rng.gen_bool(evaluation_share),
        };
        if evaluation {
            Degradation::sample(kind, rng)
        } else {
            Degradation::sample_training(kind, rng)
        }
    }
}

/// Probabilities of a clean sample and of a two-kind mixture; the rest are single kinds,
/// drawn with the given weights.
#[derive(Clone, Debug, PartialEq)]
pub struct DegradationMix {
    /// Probability that a sample is left clean.
    pub clean: f64,
    /// Probability that a sample gets two different kinds (when the pool has two).
    pub mixture: f64,
    /// The kinds drawn from (all five by default; fewer for ablations and tests).
    pub kinds: Vec<DegradationKind>,
    /// Relative weight of each kind of `kinds` (same length; empty: equal weights).
    pub weights: Vec<f64>,
    /// Where parameters come from.
    pub ranges: ParameterRanges,
}

impl Default for DegradationMix {
    fn default() -> Self {
        Self {
            clean: 0.05,
            mixture: 0.15,
            kinds: DegradationKind::ALL.to_vec(),
            weights: Vec::new(),
            ranges: ParameterRanges::Evaluation,
        }
    }
}

impl DegradationMix {
    /// Draws a recipe: zero, one or two degradations with their parameters.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<Degradation> {
        let draw: f64 = rng.r#gen();
        let count = if draw < self.clean {
            0
        } else if draw < self.clean + self.mixture {
            2
        } else {
            1
        };
        let kinds: Vec<DegradationKind> = if self.weights.is_empty() {
            self.kinds.choose_multiple(rng, count).copied().collect()
        } else {
            let weighted: Vec<(DegradationKind, f64)> = self
                .kinds
                .iter()
                .copied()
                .zip(self.weights.iter().copied())
                .collect();
            weighted
                .choose_multiple_weighted(rng, count, |(_, weight)| *weight)
                .expect("kind weights are finite and non-negative")
                .map(|(kind, _)| *kind)
                .collect()
        };
        kinds
            .into_iter()
            .map(|kind| self.ranges.sample(kind, rng))
            .collect()
    }
}

/// The multi-hot label of a recipe over [`DegradationKind::ALL`].
pub fn multi_hot(recipe: &[Degradation]) -> [f32; 5] {
    let mut label = [0.0; 5];
    for degradation in recipe {
        label[degradation.kind().index()] = 1.0;
    }
    label
}

/// Applies a recipe (possibly empty) to a 3×H×W image in [0, 1].
pub fn apply_recipe(
    recipe: &[Degradation],
    clean: &Tensor,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    if recipe.is_empty() {
        return Ok(clean.copy());
    }
    Ok(Degradation::apply_all(recipe, clean, rng)?)
}

/// A short description, e.g. `noise σ25 + haze`, for sheets and logs.
pub fn describe(recipe: &[Degradation]) -> String {
    if recipe.is_empty() {
        return "clean".to_owned();
    }
    recipe
        .iter()
        .map(|d| match d {
            Degradation::Noise { sigma } => format!("noise σ{sigma}"),
            other => other.kind().name().replace('_', " "),
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn proportions_follow_the_mix() {
        let mix = DegradationMix {
            clean: 0.1,
            mixture: 0.2,
            ..DegradationMix::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = [0usize; 3];
        let mut per_kind = [0usize; 5];
        for _ in 0..5000 {
            let recipe = mix.sample(&mut rng);
            counts[recipe.len()] += 1;
            let label = multi_hot(&recipe);
            assert_eq!(
                label.iter().sum::<f32>() as usize,
                recipe.len(),
                "kinds differ"
            );
            if recipe.len() == 1 {
                per_kind[recipe[0].kind().index()] += 1;
            }
        }
        let rate = |n: usize| n as f64 / 5000.0;
        assert!((rate(counts[0]) - 0.1).abs() < 0.02);
        assert!((rate(counts[2]) - 0.2).abs() < 0.02);
        for n in per_kind {
            assert!((n as f64 / counts[1] as f64 - 0.2).abs() < 0.03);
        }
        let haze_only = DegradationMix {
            clean: 0.0,
            mixture: 0.5,
            kinds: vec![DegradationKind::Haze],
            ..DegradationMix::default()
        };
        for _ in 0..50 {
            assert_eq!(
                multi_hot(&haze_only.sample(&mut rng)),
                [0.0, 1.0, 0.0, 0.0, 0.0]
            );
        }
    }
}

#[cfg(test)]
mod weight_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn kind_weights_shift_the_draws() {
        let mix = DegradationMix {
            clean: 0.0,
            mixture: 0.0,
            weights: vec![1.0, 1.0, 3.0, 3.0, 2.0],
            ranges: ParameterRanges::Training,
            ..DegradationMix::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut per_kind = [0usize; 5];
        for _ in 0..5000 {
            let recipe = mix.sample(&mut rng);
            per_kind[recipe[0].kind().index()] += 1;
        }
        let share = |i: usize| per_kind[i] as f64 / 5000.0;
        assert!((share(0) - 0.1).abs() < 0.02 && (share(2) - 0.3).abs() < 0.03);
        assert!((share(4) - 0.2).abs() < 0.03);
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;
    use rand::SeedableRng;

    /// Share of noise draws off the benchmarks' σ grid (only the wide ranges make those).
    fn off_grid_share(ranges: ParameterRanges) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws = 4000;
        let off = (0..draws)
            .filter(|_| match ranges.sample(DegradationKind::Noise, &mut rng) {
                Degradation::Noise { sigma } => {
                    !clearair_model::synthesis::NOISE_SIGMAS.contains(&sigma)
                }
                other => panic!("noise asked, {other:?} drawn"),
            })
            .count();
        off as f64 / f64::from(draws)
    }

    #[test]
    fn mixed_ranges_draw_from_both_in_proportion() {
        assert_eq!(off_grid_share(ParameterRanges::Evaluation), 0.0);
        // The wide ranges put 30% of noise on the grid themselves.
        let wide = off_grid_share(ParameterRanges::Training);
        assert!((wide - 0.7).abs() < 0.03, "{wide}");
        let mixed = off_grid_share(ParameterRanges::parse("mixed:0.75").unwrap());
        assert!((mixed - 0.25 * 0.7).abs() < 0.03, "{mixed}");
        assert_eq!(
            ParameterRanges::parse("mixed").unwrap(),
            ParameterRanges::Mixed {
                evaluation_share: 0.5
            }
        );
        assert_eq!(
            ParameterRanges::parse("evaluation").unwrap(),
            ParameterRanges::Evaluation
        );
        for bad in ["mixed:1.5", "mixed:x", "wide", "mixed:-0.1"] {
            let error = ParameterRanges::parse(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}
