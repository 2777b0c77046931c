//! The priors' summary returned to clients.

use clearair_proto::v1::{DegradationKind, PriorSummary};

use crate::priors::PriorSet;

/// Summarises the priors: quality score and level, degradation probabilities, mask count and
/// the most probable degradation.
pub(crate) fn summarize(priors: &PriorSet) -> PriorSummary {
    let degradations = priors.degradation.probabilities.clone();
    let dominant = degradations
        .iter()
        .filter(|p| p.probability.is_finite())
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .map_or(DegradationKind::Unspecified as i32, |p| p.kind);
    PriorSummary {
        quality_score: priors.quality.score,
        quality_level: priors.quality.level,
        degradations,
        mask_count: priors.masks.count,
        dominant_degradation: dominant,
    }
}

#[cfg(test)]
mod tests {
    use clearair_proto::v1::DegradationProbability;

    use super::*;

    #[test]
    fn dominant_is_the_most_probable_kind() {
        let mut priors = PriorSet::neutral(36, 4, 4);
        priors.degradation.probabilities = vec![
            DegradationProbability {
                kind: DegradationKind::Noise as i32,
                probability: 0.2,
            },
            DegradationProbability {
                kind: DegradationKind::Haze as i32,
                probability: 0.7,
            },
        ];
        let summary = summarize(&priors);
        assert_eq!(summary.dominant_degradation, DegradationKind::Haze as i32);
        assert_eq!(summary.mask_count, 1);
        assert_eq!(
            summarize(&PriorSet::neutral(36, 4, 4)).dominant_degradation,
            0
        );
    }
}
