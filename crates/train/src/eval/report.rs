//! The evaluation's outputs in words and numbers: a markdown table, manifest metrics and a
//! JSON report.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::encoder_eval::{accuracy_metrics, accuracy_table};
use crate::eval::{EvalReport, Score};
use crate::protocol::RowPriors;

fn cell(score: Score) -> String {
    if score.0.is_infinite() {
        // The clean row's input is the reference itself.
        format!("identical / {:.4}", score.1)
    } else {
        format!("{:.2} / {:.4}", score.0, score.1)
    }
}

fn gain(row: &crate::eval::RowResult) -> String {
    let gain = row.gain();
    if gain.is_finite() {
        format!("{gain:+.2}")
    } else {
        "–".to_owned()
    }
}

/// The median photo's gain and the worst photo with its gain (for the clean row: PSNR).
fn spread(row: &crate::eval::RowResult) -> (String, String) {
    let clean = !row.input().0.is_finite();
    let figure = |value: f64| {
        if clean {
            format!("{value:.2} dB")
        } else {
            format!("{value:+.2}")
        }
    };
    let median = row.median();
    let median = if median.is_finite() {
        figure(median)
    } else {
        "–".to_owned()
    };
    let worst = row.worst().map_or_else(
        || "–".to_owned(),
        |(image, value)| format!("{} {}", image.photo, figure(value)),
    );
    (median, worst)
}

/// The results as markdown: one row per degradation with PSNR (dB) / SSIM of the degraded
/// input, the restorer (`model` names it) and FFDNet, the restorer's mean gain, the median
/// photo's gain and the worst photo (a mean hides one photo ruined among many helped); then
/// the encoder's accuracy.
pub fn markdown_table(report: &EvalReport, model: &str) -> String {
    let scope = match report.crop {
        Some(side) => format!(
            "centred {side}×{side} crops of {} held-out photos",
            report.photos
        ),
        None => format!("{} held-out photos, full size", report.photos),
    };
    let mut text = format!(
        "PSNR (dB) / SSIM on RGB in [0, 1], mean per image; {scope}; fixed seeds per row and photo. \
         Median and worst photo: gain in dB (clean row: the output's PSNR).\n\n\
         | Degradation | Degraded input | {model} | FFDNet (reference) | Gain (dB) | Median photo | Worst photo |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for row in &report.rows {
        let reference = match (row.row.noise_sigma(), row.reference()) {
            (Some(_), Some(score)) => cell(score),
            (Some(_), None) if !report.ffdnet => "not run".to_owned(),
            _ => "–".to_owned(),
        };
        let (median, worst) = spread(row);
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.row.label,
            cell(row.input()),
            cell(row.restored()),
            reference,
            gain(row),
            median,
            worst
        ));
    }
    let fallbacks: Vec<&crate::eval::RowResult> = report
        .rows
        .iter()
        .filter(|row| row.row.priors == RowPriors::Neutral)
        .collect();
    if let Some(worst) = fallbacks
        .iter()
        .min_by(|a, b| a.gain().total_cmp(&b.gain()))
    {
        text.push_str(&format!(
            "\nFallback rows (every prior neutral, as when every prior service is down): {}; \
             the smallest gain is {:+.2} dB ({}).\n",
            if worst.gain() >= 0.0 {
                "never below the input"
            } else {
                "BELOW the input"
            },
            worst.gain(),
            worst.row.label
        ));
    }
    if !report.encoder.is_empty() {
        text.push_str("\nDegradation encoder, single degradations of the held-out photos as the degradation service sees them (long side ≤ 256):\n\n");
        text.push_str(&accuracy_table(&report.encoder));
    }
    text
}

/// Manifest metrics: `psnr_<row>`, `ssim_<row>`, `input_psnr_<row>`, `input_ssim_<row>`,
/// `ffdnet_psnr_<row>` / `ffdnet_ssim_<row>` where run, `eval_photos`, `eval_crop` (0: whole
/// photos) and the encoder's accuracies.
pub fn metrics(report: &EvalReport) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    for row in &report.rows {
        let key = row.row.key;
        let (psnr, ssim) = row.restored();
        let (input_psnr, input_ssim) = row.input();
        metrics.insert(format!("psnr_{key}"), psnr);
        metrics.insert(format!("ssim_{key}"), ssim);
        // The clean row's input PSNR is infinite: JSON has no number for it.
        if input_psnr.is_finite() {
            metrics.insert(format!("input_psnr_{key}"), input_psnr);
        }
        metrics.insert(format!("input_ssim_{key}"), input_ssim);
        if let Some((psnr, ssim)) = row.reference() {
            metrics.insert(format!("ffdnet_psnr_{key}"), psnr);
            metrics.insert(format!("ffdnet_ssim_{key}"), ssim);
        }
    }
    metrics.insert("eval_photos".into(), report.photos as f64);
    metrics.insert("eval_crop".into(), f64::from(report.crop.unwrap_or(0)));
    if !report.encoder.is_empty() {
        for (key, value) in accuracy_metrics(&report.encoder) {
            metrics.insert(format!("encoder_{key}"), value);
        }
    }
    metrics
}

/// The full report as JSON, per-image scores included.
pub fn to_json(report: &EvalReport, model: &str) -> Value {
    let pair = |score: Score| json!({"psnr": score.0, "ssim": score.1});
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|row| {
            json!({
                "key": row.row.key,
                "label": row.row.label,
                "input": pair(row.input()),
                "restored": pair(row.restored()),
                "ffdnet": row.reference().map(pair),
                "gain_db": row.gain().is_finite().then(|| row.gain()),
                "median_photo": row.median().is_finite().then(|| row.median()),
                "worst_photo": row.worst().map(|(image, value)| json!({
                    "photo": image.photo,
                    "value": value,
                })),
                "images": row.images.iter().map(|image| json!({
                    "photo": image.photo,
                    "input": pair(image.input),
                    "restored": pair(image.restored),
                    "ffdnet": image.reference.map(pair),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let encoder: Vec<Value> = report
        .encoder
        .kinds
        .iter()
        .map(|kind| {
            json!({
                "kind": kind.kind.name(),
                "accuracy": kind.accuracy(),
                "exact_set_accuracy": kind.exact_set_accuracy(),
                "images": kind.total,
            })
        })
        .collect();
    json!({
        "model": model,
        "protocol": "PromptIR: RGB in [0, 1], PSNR and SSIM (scikit-image definitions) averaged per image; outputs clipped and rounded to 8 bits; one fixed-seed degradation per row and photo",
        "photos": report.photos,
        "crop": report.crop,
        "rows": rows,
        "encoder_accuracy": encoder,
        "encoder_accuracy_rule": "argmax over the five kinds; exact set: only the true kind has p >= 0.5",
        "encoder_clean": (report.encoder.clean.total > 0).then(|| json!({
            "quiet": report.encoder.clean.quiet_rate(),
            "mean_max_probability": report.encoder.clean.mean_max_probability(),
            "images": report.encoder.clean.total,
            "rule": "quiet: every kind has p < 0.5 on the undegraded photo",
        })),
        "seconds": report.seconds,
    })
}
