//! How well the degradation encoder names single degradations of the held-out photos, seen
//! as the degradation service sees them (8-bit, in the service's view: the whole image scaled
//! to a long side of ≤ 256, or its centred 256 square).
//!
//! A prediction is correct when the most probable kind is the true one (argmax over the
//! five kinds). The stricter "exact set" figure also requires the true kind, and only it, to
//! have probability ≥ 0.5.
//!
//! Clean photos are scored too: an encoder that names a kind on an undegraded photo makes the
//! restorer "restore" it (a clean night sky comes back grey when it reads as rain). A clean
//! photo is *quiet* when every kind's probability is below 0.5.

use std::collections::BTreeMap;

use clearair_backends::degradation::{EncoderView, GateView, encode, gate_probabilities};
use clearair_model::{DegradationEncoder, DegradationKind};
use tch::Device;

use crate::error::Result;
use crate::photos::Photo;
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

/// How the encoder reads the undegraded photos.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CleanAccuracy {
    /// Photos with every kind's probability below 0.5.
    pub quiet: usize,
    /// Sum over photos of the largest kind probability.
    pub max_probability_sum: f64,
    /// Photos.
    pub total: usize,
}

impl CleanAccuracy {
    /// Fraction of quiet clean photos, 0 to 1.
    pub fn quiet_rate(&self) -> f64 {
        self.quiet as f64 / self.total.max(1) as f64
    }

    /// Mean over photos of the largest kind probability.
    pub fn mean_max_probability(&self) -> f64 {
        self.max_probability_sum / self.total.max(1) as f64
    }
}

/// The encoder's accuracy on degraded and clean held-out photos.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncoderAccuracy {
    /// Per kind, single degradations.
    pub kinds: Vec<KindAccuracy>,
    /// The undegraded photos.
    pub clean: CleanAccuracy,
}

impl EncoderAccuracy {
    /// Whether nothing was measured (the evaluation skipped the encoder).
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.clean.total == 0
    }
}

/// The encoder's kind probabilities for `image`, seen as the degradation service sees it in
/// `view` (the service's own code).
fn kind_probabilities(
    encoder: &DegradationEncoder,
    image: &clearair_imaging::Rgb8Image,
    device: Device,
    view: EncoderView,
) -> Result<Vec<f32>> {
    Ok(encode(encoder, device, view, ENCODER_MAX_SIDE, image)?
        .probabilities
        .to_vec())
}

/// Classifies `repeats` single degradations of each kind on every photo, and every photo
/// undegraded, in the service's `view`.
pub fn encoder_accuracy(
    encoder: &DegradationEncoder,
    photos: &[Photo],
    device: Device,
    view: EncoderView,
    repeats: u64,
) -> Result<EncoderAccuracy> {
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
                let probabilities = kind_probabilities(encoder, &degraded, device, view)?;
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
    let mut clean = CleanAccuracy::default();
    for photo in photos {
        let probabilities = kind_probabilities(encoder, &photo.image, device, view)?;
        let largest = probabilities.iter().copied().fold(0.0f32, f32::max);
        clean.total += 1;
        clean.quiet += usize::from(largest < 0.5);
        clean.max_probability_sum += f64::from(largest);
    }
    Ok(EncoderAccuracy {
        kinds: results,
        clean,
    })
}

/// Manifest metrics: `accuracy_<kind>`, `accuracy_mean`, `exact_set_accuracy_mean` over the
/// degraded photos; `clean_quiet` and `clean_max_probability` over the clean ones.
pub fn accuracy_metrics(results: &EncoderAccuracy) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    let (mut correct, mut exact, mut total) = (0, 0, 0);
    for result in &results.kinds {
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
    if results.clean.total > 0 {
        metrics.insert("clean_quiet".into(), results.clean.quiet_rate());
        metrics.insert(
            "clean_max_probability".into(),
            results.clean.mean_max_probability(),
        );
    }
    metrics
}

/// A markdown table of the accuracies.
pub fn accuracy_table(results: &EncoderAccuracy) -> String {
    let mut table = String::from(
        "| Kind | Accuracy (argmax) | Exact set (p ≥ 0.5) | Images |\n|---|---|---|---|\n",
    );
    for result in &results.kinds {
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
    if results.clean.total > 0 {
        table.push_str(&format!(
            "| clean (every kind < 0.5) | — | {:.1}% (mean largest p {:.2}) | {} |\n",
            100.0 * results.clean.quiet_rate(),
            results.clean.mean_max_probability(),
            results.clean.total
        ));
    }
    table
}

/// The encoder's probability of one kind, read on photos degraded with each kind and on the
/// photos undegraded: what a refiner gate on that kind (`clearair train gate`) would see.
#[derive(Clone, Debug, PartialEq)]
pub struct KindReadings {
    /// The kind read.
    pub kind: DegradationKind,
    /// Per source (a kind the photos were degraded with, or None for undegraded), the
    /// probabilities read, one per image.
    pub sources: Vec<(Option<DegradationKind>, Vec<f32>)>,
}

/// Reads the encoder's probability of `kind` on `repeats` single degradations of each kind
/// of every photo (the evaluation's ranges and draws) and on every photo undegraded, as a
/// gate reads it in `gate_view` (in the service's `view` when that is `Served`).
pub fn kind_readings(
    encoder: &DegradationEncoder,
    photos: &[Photo],
    device: Device,
    (view, gate_view): (EncoderView, GateView),
    kind: DegradationKind,
    repeats: u64,
) -> Result<KindReadings> {
    let read = |image: &clearair_imaging::Rgb8Image| -> Result<f32> {
        let probabilities =
            match gate_probabilities(encoder, device, gate_view, ENCODER_MAX_SIDE, image)? {
                Some(probabilities) => probabilities.to_vec(),
                None => kind_probabilities(encoder, image, device, view)?,
            };
        Ok(probabilities[kind.index()])
    };
    let mut sources = Vec::new();
    for source in DegradationKind::ALL {
        let mut readings = Vec::new();
        for (photo_index, photo) in photos.iter().enumerate() {
            for repeat in 0..repeats {
                let degraded =
                    degrade_for_classification(source, repeat, photo_index, &photo.image)?;
                readings.push(read(&degraded)?);
            }
        }
        sources.push((Some(source), readings));
    }
    let clean = photos
        .iter()
        .map(|photo| read(&photo.image))
        .collect::<Result<Vec<_>>>()?;
    sources.push((None, clean));
    Ok(KindReadings { kind, sources })
}

/// The share of `values` at or above `threshold`, 0 to 1.
fn share_at_or_above(values: &[f32], threshold: f32) -> f64 {
    values.iter().filter(|&&p| p >= threshold).count() as f64 / values.len().max(1) as f64
}

/// A markdown table of the readings: per source, the median probability and the share of
/// images at or above each of `thresholds` (a gate's LOW lets those through in part, its
/// HIGH in full).
pub fn readings_table(readings: &KindReadings, thresholds: &[f32]) -> String {
    let mut table = format!("| photos | images | median p({}) |", readings.kind.name());
    for threshold in thresholds {
        table.push_str(&format!(" ≥ {threshold} |"));
    }
    table.push_str(&format!(
        "\n|---|---|---|{}\n",
        "---|".repeat(thresholds.len())
    ));
    for (source, values) in &readings.sources {
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f32::NAN);
        let name = source.map_or("undegraded", |kind| kind.name());
        let name = if *source == Some(readings.kind) {
            format!("**{name}**")
        } else {
            name.replace('_', " ")
        };
        table.push_str(&format!("| {name} | {} | {median:.2} |", values.len()));
        for &threshold in thresholds {
            table.push_str(&format!(
                " {:.0}% |",
                100.0 * share_at_or_above(values, threshold)
            ));
        }
        table.push('\n');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{exclusive_torch, small_encoder, synthetic_photos};

    #[test]
    fn readings_cover_every_kind_and_the_undegraded_photos_and_tabulate_shares() {
        let _torch = exclusive_torch();
        tch::manual_seed(5);
        let store = tch::nn::VarStore::new(Device::Cpu);
        let encoder = DegradationEncoder::new(&store.root(), &small_encoder());
        let photos = synthetic_photos(2, 64);
        let readings = kind_readings(
            &encoder,
            &photos,
            Device::Cpu,
            (EncoderView::Whole, GateView::Served),
            DegradationKind::Blur,
            2,
        )
        .unwrap();
        assert_eq!(readings.sources.len(), 6);
        for (source, values) in &readings.sources {
            assert_eq!(values.len(), if source.is_some() { 4 } else { 2 });
            assert!(values.iter().all(|p| (0.0..=1.0).contains(p)), "{values:?}");
        }
        // The undegraded photos read as the probability the service gives them.
        let (_, clean) = readings.sources.last().unwrap();
        let direct =
            kind_probabilities(&encoder, &photos[1].image, Device::Cpu, EncoderView::Whole)
                .unwrap()[DegradationKind::Blur.index()];
        assert_eq!(clean[1], direct);
        // Shares: 0.2 and 0.8 of four values at or above 0.5 is a half.
        let table = readings_table(
            &KindReadings {
                kind: DegradationKind::Blur,
                sources: vec![
                    (Some(DegradationKind::Blur), vec![0.9, 0.8, 0.6, 0.1]),
                    (None, vec![0.2, 0.8, 0.1, 0.5]),
                ],
            },
            &[0.5, 0.7],
        );
        assert!(
            table.contains("| **blur** | 4 | 0.80 | 75% | 50% |"),
            "{table}"
        );
        assert!(
            table.contains("| undegraded | 4 | 0.50 | 50% | 25% |"),
            "{table}"
        );
    }

    #[test]
    fn the_encoder_is_read_in_the_services_view() {
        let _torch = exclusive_torch();
        tch::manual_seed(5);
        let store = tch::nn::VarStore::new(Device::Cpu);
        let encoder = DegradationEncoder::new(&store.root(), &small_encoder());
        let image = synthetic_photos(1, 320)[0].image.clone();
        let read = |image: &clearair_imaging::Rgb8Image, view| {
            kind_probabilities(&encoder, image, Device::Cpu, view).unwrap()
        };
        let square = image.crop(32, 32, 256, 256).unwrap();
        assert_eq!(
            read(&image, EncoderView::Centre),
            read(&square, EncoderView::Whole)
        );
        assert_ne!(
            read(&image, EncoderView::Centre),
            read(&image, EncoderView::Whole)
        );
    }
}
