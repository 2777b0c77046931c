//! The priors' summary returned to clients.

use clearair_proto::v1::{DegradationKind, PriorSummary, QualityLevel};

use crate::priors::PriorSet;

/// Summarises the priors: quality score and level, degradation probabilities, mask count and
/// the most probable degradation.
/// A prior that fell back contributes nothing (score 0, level unspecified, no
/// probabilities, one mask: the restorer's neutral whole-image mask).
pub(crate) fn summarize(priors: &PriorSet) -> PriorSummary {
    let degradations = priors
        .degradation
        .as_ref()
        .map(|d| d.probabilities.clone())
        .unwrap_or_default();
    let dominant = degradations
        .iter()
        .filter(|p| p.probability.is_finite())
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .map_or(DegradationKind::Unspecified as i32, |p| p.kind);
    PriorSummary {
        quality_score: priors.quality.as_ref().map_or(0.0, |q| q.score),
        quality_level: priors
            .quality
            .as_ref()
            .map_or(QualityLevel::Unspecified as i32, |q| q.level),
        degradations,
        mask_count: priors.masks.as_ref().map_or(1, |m| m.count),
        dominant_degradation: dominant,
    }
}

#[cfg(test)]
mod tests {
    use clearair_proto::v1::{DegradationPrior, DegradationProbability};

    use super::*;

    #[test]
    fn dominant_is_the_most_probable_kind() {
        let priors = PriorSet {
            degradation: Some(DegradationPrior {
                probabilities: vec![
                    DegradationProbability {
                        kind: DegradationKind::Noise as i32,
                        probability: 0.2,
                    },
                    DegradationProbability {
                        kind: DegradationKind::Haze as i32,
                        probability: 0.7,
                    },
                ],
                ..DegradationPrior::default()
            }),
            ..PriorSet::default()
        };
        let summary = summarize(&priors);
        assert_eq!(summary.dominant_degradation, DegradationKind::Haze as i32);
        assert_eq!(summary.mask_count, 1);
        let fell_back = summarize(&PriorSet::default());
        assert_eq!(fell_back.dominant_degradation, 0);
        assert_eq!(fell_back.mask_count, 1, "the restorer's whole-image mask");
    }
}
