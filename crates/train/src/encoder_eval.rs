//! How well the degradation encoder names single degradations of the held-out photos, seen
//! as the degradation service sees them (8-bit, long side scaled to ≤ 256).
//!
//! A prediction is correct when the most probable kind is the true one (argmax over the
//! five kinds). The stricter "exact set" figure also requires the true kind, and only it, to
//! have probability ≥ 0.5.

use std::collections::BTreeMap;

use clearair_model::{DegradationEncoder, DegradationKind};
use tch::Device;

use crate::error::Result;
use crate::photos::{Photo, fit_long_side, image_to_tensor};
use crate::priors::ENCODER_MAX_SIDE;
use crate::protocol::degrade_for_classification;

/// Accuracy on one kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindAccuracy {
    /// The kind.
    pub kind: DegradationKind,
    /// Images whose argmax was this kind.
    pub correct: usize,
    /// Images whose thresholded set was exactly {kind}.
    pub exact_set: usize,
    /// Images of this kind.
    pub total: usize,
}

impl KindAccuracy {
    /// Argmax accuracy, 0 to 1.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// Exact-set accuracy, 0 to 1.
    pub fn exact_set_accuracy(&self) -> f64 {
        self.exact_set as f64 / self.total.max(1) as f64
    }
}

/// Classifies `repeats` single degradations of each kind on every photo.
pub fn encoder_accuracy(
    encoder: &DegradationEncoder,
    photos: &[Photo],
    device: Device,
    repeats: u64,
) -> Result<Vec<KindAccuracy>> {
    let mut results = Vec::new();
    for kind in DegradationKind::ALL {
        let mut accuracy = KindAccuracy {
            kind,
            correct: 0,
            exact_set: 0,
            total: 0,
        };
        for (photo_index, photo) in photos.iter().enumerate() {
            for repeat in 0..repeats {
                let degraded = degrade_for_classification(kind, repeat, photo_index, &photo.image)?;
                let view = fit_long_side(&degraded, ENCODER_MAX_SIDE)?;
                let input = image_to_tensor(&view).unsqueeze(0).to_device(device);
                let probabilities = tch::no_grad(|| encoder.forward(&input).probabilities());
                let probabilities =
                    Vec::<f32>::try_from(probabilities.to_device(Device::Cpu).view([-1]))?;
                let best = (0..probabilities.len())
                    .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
                    .unwrap_or(0);
                accuracy.total += 1;
                accuracy.correct += usize::from(best == kind.index());
                let exact = probabilities
                    .iter()
                    .enumerate()
                    .all(|(i, &p)| (p >= 0.5) == (i == kind.index()));
                accuracy.exact_set += usize::from(exact);
            }
        }
        results.push(accuracy);
    }
    Ok(results)
}

/// Manifest metrics: `accuracy_<kind>`, `accuracy_mean`, `exact_set_accuracy_mean`.
pub fn accuracy_metrics(results: &[KindAccuracy]) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    let (mut correct, mut exact, mut total) = (0, 0, 0);
    for result in results {
        metrics.insert(
            format!("accuracy_{}", result.kind.name()),
            result.accuracy(),
        );
        correct += result.correct;
        exact += result.exact_set;
        total += result.total;
    }
    metrics.insert("accuracy_mean".into(), correct as f64 / total.max(1) as f64);
    metrics.insert(
        "exact_set_accuracy_mean".into(),
        exact as f64 / total.max(1) as f64,
    );
    metrics.insert("accuracy_images".into(), total as f64);
    metrics
}

/// A markdown table of the accuracies.
pub fn accuracy_table(results: &[KindAccuracy]) -> String {
    let mut table = String::from(
        "| Kind | Accuracy (argmax) | Exact set (p ≥ 0.5) | Images |\n|---|---|---|---|\n",
    );
    for result in results {
        table.push_str(&format!(
            "| {} | {:.1}% | {:.1}% | {} |\n",
            result.kind.name().replace('_', " "),
            100.0 * result.accuracy(),
            100.0 * result.exact_set_accuracy(),
            result.total
        ));
    }
    let metrics = accuracy_metrics(results);
    table.push_str(&format!(
        "| **all** | **{:.1}%** | {:.1}% | {} |\n",
        100.0 * metrics["accuracy_mean"],
        100.0 * metrics["exact_set_accuracy_mean"],
        metrics["accuracy_images"]
    ));
    table
}
