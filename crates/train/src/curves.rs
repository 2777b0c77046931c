//! Learning curves as small multiples: one panel per evaluation row (the gain over the
//! degraded input in dB; the clean row as its PSNR), each training run a line, the project's
//! quality goal and an optional baseline (e.g. the committed weights evaluated the same way)
//! as dashed levels — and a table of where each run stands and how fast it still moves, so a
//! plateau below the goals is something to read off rather than to guess.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clearair_imaging::plot::{LinePlot, Series};
use clearair_imaging::{ContactSheet, Rgb8Image, SheetStyle};

use crate::error::{Result, TrainError};
use crate::history::{EVALS_FILE, EvalRecord, read_evals};

/// The quality goals per evaluation row (`clearair eval`'s held-out photos): gains in dB
/// over the degraded input, the clean row as the output's PSNR against the photo, and every
/// fallback row (all priors neutral) at least the input. The README states them.
pub const GOALS: [(&str, f64); 15] = [
    ("noise15", 4.0),
    ("noise25", 7.0),
    ("noise50", 8.0),
    ("haze", 6.0),
    ("rain", 4.0),
    ("blur", 1.0),
    ("low_light", 11.0),
    ("clean", 38.0),
    ("fallback_noise15", 0.0),
    ("fallback_noise25", 0.0),
    ("fallback_noise50", 0.0),
    ("fallback_haze", 0.0),
    ("fallback_rain", 0.0),
    ("fallback_blur", 0.0),
    ("fallback_low_light", 0.0),
];

/// Colour of the goal level.
const GOAL_COLOUR: [u8; 3] = [150, 150, 150];
/// Colour of the baseline level.
const BASELINE_COLOUR: [u8; 3] = [0, 0, 0];
/// Size of one panel.
const PANEL: (u32, u32) = (320, 200);

/// The goal of row `key`, if it has one.
pub fn goal(key: &str) -> Option<f64> {
    GOALS.iter().find(|(k, _)| *k == key).map(|(_, g)| *g)
}

/// A row's value: the restored PSNR minus the input's, or the restored PSNR itself where
/// the input's is infinite (the clean row, whose input is the photo).
pub fn row_value(restored: f64, input: f64) -> f64 {
    if input.is_finite() {
        restored - input
    } else {
        restored
    }
}

/// The progress evaluations of one training run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunCurves {
    /// Legend name.
    pub name: String,
    /// Its evaluations in step order.
    pub records: Vec<EvalRecord>,
}

impl RunCurves {
    /// Loads a run from its `eval-history.csv`, its checkpoint folder, or the folder above
    /// that; named after the run's folder.
    pub fn load(path: &Path) -> Result<Self> {
        let candidates = [
            path.to_path_buf(),
            path.join(EVALS_FILE),
            path.join("checkpoint").join(EVALS_FILE),
        ];
        let Some(csv) = candidates.iter().find(|p| p.is_file()) else {
            return Err(TrainError::Setting(format!(
                "{}: no {EVALS_FILE} there or in its checkpoint folder (a run writes one with \
                 --eval-every)",
                path.display()
            )));
        };
        let folder = csv.parent().map(Path::to_path_buf).unwrap_or_default();
        let run_folder = if folder.file_name().is_some_and(|n| n == "checkpoint") {
            folder.parent().map(Path::to_path_buf).unwrap_or(folder)
        } else {
            folder
        };
        let name = run_folder
            .file_name()
            .map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            name,
            records: read_evals(csv)?,
        })
    }

    /// The (step, value) points of row `key`.
    pub fn points(&self, key: &str) -> Vec<(f64, f64)> {
        self.records
            .iter()
            .filter_map(|record| {
                record
                    .rows
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .map(|&(_, restored, input)| (record.step as f64, row_value(restored, input)))
            })
            .collect()
    }
}

/// The rows to draw: those with a goal in [`GOALS`]' order, then any other row the runs
/// have, in the order first seen.
pub fn row_keys(runs: &[RunCurves]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for record in runs.iter().flat_map(|r| &r.records) {
        for (key, _, _) in &record.rows {
            if !seen.contains(key) {
                seen.push(key.clone());
            }
        }
    }
    let mut keys: Vec<String> = GOALS
        .iter()
        .map(|(k, _)| (*k).to_owned())
        .filter(|k| seen.contains(k))
        .collect();
    keys.extend(seen.into_iter().filter(|k| goal(k).is_none()));
    keys
}

/// Least-squares slope of the last `last` points (at least two), in value per 1000 steps.
pub fn slope_per_1000(points: &[(f64, f64)], last: usize) -> Option<f64> {
    let tail: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let tail = &tail[tail.len().saturating_sub(last.max(2))..];
    if tail.len() < 2 {
        return None;
    }
    let n = tail.len() as f64;
    let mean_x = tail.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = tail.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = tail.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = tail.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    Some(1000.0 * sxy / sxx)
}

/// Reads a baseline from `clearair eval`'s `eval.json`: each row's gain in dB, the clean
/// row's restored PSNR.
pub fn baseline_from_report(path: &Path) -> Result<BTreeMap<String, f64>> {
    let setting = |why: String| TrainError::Setting(format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| setting(e.to_string()))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| setting(format!("not JSON: {e}")))?;
    let rows = report["rows"]
        .as_array()
        .ok_or_else(|| setting("no `rows` list (is it an eval.json of clearair eval?)".into()))?;
    let mut baseline = BTreeMap::new();
    for row in rows {
        let Some(key) = row["key"].as_str() else {
            return Err(setting("a row without a `key`".into()));
        };
        let value = row["gain_db"]
            .as_f64()
            .or_else(|| row["restored"]["psnr"].as_f64());
        if let Some(value) = value {
            baseline.insert(key.to_owned(), value);
        }
    }
    if baseline.is_empty() {
        return Err(setting("no row has a value".into()));
    }
    Ok(baseline)
}

/// Draws the runs' curves, a panel per row (five to a line), with the goals and
/// `baseline` (named `baseline_name`) as dashed levels.
pub fn sheet(
    runs: &[RunCurves],
    baseline: Option<(&str, &BTreeMap<String, f64>)>,
) -> Result<Rgb8Image> {
    let keys = row_keys(runs);
    if keys.is_empty() {
        return Err(TrainError::Setting(
            "no progress evaluation to draw yet".into(),
        ));
    }
    let steps: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.records.iter().map(|e| e.step as f64))
        .collect();
    let first = steps.iter().copied().fold(f64::INFINITY, f64::min);
    let last = steps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Captions at the plots' own text size: a goal and a baseline fit under a panel.
    let mut sheet = ContactSheet::new(5).with_style(SheetStyle {
        text_scale: 1,
        ..SheetStyle::default()
    });
    for key in &keys {
        let mut series: Vec<Series> = runs
            .iter()
            .map(|run| Series::new(run.name.clone(), run.points(key)))
            .collect();
        let mut caption = Vec::new();
        if let Some(goal) = goal(key) {
            series.push(Series::level("goal", goal, first, last, GOAL_COLOUR));
            caption.push(format!("goal {}", format_value(key, goal)));
        }
        if let Some((name, value)) = baseline.and_then(|(n, b)| b.get(key).map(|v| (n, *v))) {
            series.push(Series::level(name, value, first, last, BASELINE_COLOUR));
            caption.push(format!("{name} {}", format_value(key, value)));
        }
        let plot = LinePlot {
            title: if key == "clean" {
                "clean: PSNR (dB)".to_owned()
            } else {
                format!("{key}: gain (dB)")
            },
            x_label: "step".into(),
            y_label: "dB".into(),
            log_x: false,
            series,
        };
        sheet.add_panel(plot.render(PANEL.0, PANEL.1)?, caption.join(", "));
    }
    sheet
        .add_line("progress evaluations: gain over the degraded input (clean: PSNR of the output)");
    sheet.add_line("dashed: the goal (grey) and the baseline (black)");
    Ok(sheet.render()?)
}

/// A row's value as text: the clean row as dB, the others as a signed gain.
fn format_value(key: &str, value: f64) -> String {
    if key == "clean" {
        format!("{value:.2}")
    } else {
        format!("{value:+.2}")
    }
}

/// A Markdown table: per row the goal, the baseline, and per run its last value (with the
/// step) and its slope over the last `trend_over` evaluations in dB per 1000 steps.
pub fn table(
    runs: &[RunCurves],
    baseline: Option<&BTreeMap<String, f64>>,
    trend_over: usize,
) -> String {
    let mut header = vec!["row".to_owned(), "goal".to_owned()];
    if baseline.is_some() {
        header.push("baseline".into());
    }
    for run in runs {
        header.push(format!("{} (last)", run.name));
        header.push(format!("{} (dB per 1000 steps)", run.name));
    }
    let mut text = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for key in row_keys(runs) {
        let mut cells = vec![
            key.clone(),
            goal(&key).map_or("–".into(), |g| format_value(&key, g)),
        ];
        if let Some(baseline) = baseline {
            cells.push(
                baseline
                    .get(&key)
                    .map_or("–".into(), |v| format_value(&key, *v)),
            );
        }
        for run in runs {
            let points = run.points(&key);
            cells.push(points.last().map_or("–".into(), |(step, value)| {
                format!("{} @ {step}", format_value(&key, *value))
            }));
            cells.push(
                slope_per_1000(&points, trend_over).map_or("–".into(), |s| format!("{s:+.2}")),
            );
        }
        text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    text
}

/// Loads the runs at `paths` (renamed by `names` where given: one name per run, or none),
/// draws [`sheet`] to `out` and returns [`table`].
pub fn write_curves(
    paths: &[PathBuf],
    names: &[String],
    baseline: Option<&Path>,
    trend_over: usize,
    out: &Path,
) -> Result<String> {
    // A comma inside a name splits it in two on the command line; a legend that silently
    // shifts every name onto the wrong run is worse than no legend.
    if !names.is_empty() && names.len() != paths.len() {
        return Err(TrainError::Setting(format!(
            "--names: {} name(s) for {} run(s) (names are separated by commas, so a name \
             cannot contain one)",
            names.len(),
            paths.len()
        )));
    }
    let mut runs = paths
        .iter()
        .map(|p| RunCurves::load(p))
        .collect::<Result<Vec<_>>>()?;
    for (run, name) in runs.iter_mut().zip(names) {
        run.name.clone_from(name);
    }
    let baseline = baseline
        .map(|path| {
            let name = path.parent().and_then(Path::file_name).map_or_else(
                || "baseline".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            baseline_from_report(path).map(|b| (name, b))
        })
        .transpose()?;
    let image = sheet(&runs, baseline.as_ref().map(|(n, b)| (n.as_str(), b)))?;
    if let Some(folder) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .map_err(|e| TrainError::Setting(format!("{}: {e}", folder.display())))?;
    }
    crate::photos::write_png(&image, out)?;
    Ok(table(&runs, baseline.as_ref().map(|(_, b)| b), trend_over))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64, noise: f64, clean: f64) -> EvalRecord {
        EvalRecord {
            step,
            rows: vec![
                ("noise25".into(), 20.0 + noise, 20.0),
                ("clean".into(), clean, f64::INFINITY),
                ("fallback_blur".into(), 27.0, 28.0),
            ],
        }
    }

    #[test]
    fn slopes_are_fitted_over_the_last_points() {
        let rising = [(1000.0, 1.0), (2000.0, 2.0), (3000.0, 3.0)];
        assert!((slope_per_1000(&rising, 3).unwrap() - 1.0).abs() < 1e-12);
        // A run that rose and then stalled reads as flat over its last two evaluations.
        let stalled = [(1000.0, 1.0), (2000.0, 4.0), (3000.0, 4.0)];
        assert!(slope_per_1000(&stalled, 2).unwrap().abs() < 1e-12);
        assert!((slope_per_1000(&stalled, 3).unwrap() - 1.5).abs() < 1e-12);
        assert_eq!(slope_per_1000(&[(1.0, 1.0)], 3), None);
        assert_eq!(slope_per_1000(&[(1.0, 1.0), (1.0, 2.0)], 3), None);
    }

    #[test]
    fn runs_load_from_their_folders_and_draw_with_goals_and_a_baseline() {
        let folder = crate::test_support::scratch_dir("curves");
        let run = folder.path().join("run-a");
        let history = crate::history::History::open(&run.join("checkpoint"), 0).unwrap();
        for (step, noise, clean) in [(2000, 3.0, 36.0), (4000, 4.0, 38.5), (6000, 4.5, 39.0)] {
            history.record_eval(&record(step, noise, clean)).unwrap();
        }
        let loaded = RunCurves::load(&run).unwrap();
        assert_eq!(loaded.name, "run-a");
        assert_eq!(loaded.records.len(), 3);
        assert_eq!(
            loaded.points("noise25"),
            [(2000.0, 3.0), (4000.0, 4.0), (6000.0, 4.5)]
        );
        assert_eq!(loaded.points("clean")[2], (6000.0, 39.0));
        assert_eq!(loaded.points("fallback_blur")[0], (2000.0, -1.0));
        // The goal order, not the file's.
        assert_eq!(row_keys(&[loaded]), ["noise25", "clean", "fallback_blur"]);

        let report = folder.path().join("committed").join("eval.json");
        std::fs::create_dir_all(report.parent().unwrap()).unwrap();
        std::fs::write(
            &report,
            r#"{"rows": [{"key": "noise25", "gain_db": 2.5, "restored": {"psnr": 23.2}},
                        {"key": "clean", "gain_db": null, "restored": {"psnr": 32.4}}]}"#,
        )
        .unwrap();
        let out = folder.path().join("plots").join("curves.png");
        let table = write_curves(
            std::slice::from_ref(&run),
            &["K".to_owned()],
            Some(&report),
            2,
            &out,
        )
        .unwrap();
        assert!(out.is_file());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| row | goal | baseline | K (last) | K (dB per 1000 steps) |"
        );
        assert_eq!(
            lines[2],
            "| noise25 | +7.00 | +2.50 | +4.50 @ 6000 | +0.25 |"
        );
        assert_eq!(lines[3], "| clean | 38.00 | 32.40 | 39.00 @ 6000 | +0.25 |");
        assert_eq!(
            lines[4],
            "| fallback_blur | +0.00 | – | -1.00 @ 6000 | +0.00 |"
        );

        // Five panels to a line: three rows fit in one line of cells.
        let image = sheet(&[RunCurves::load(&run).unwrap()], None).unwrap();
        assert!(image.width() > 3 * PANEL.0 && image.height() > PANEL.1);
    }

    #[test]
    fn wrong_inputs_are_named() {
        let folder = crate::test_support::scratch_dir("curves-errors");
        let error = RunCurves::load(folder.path()).unwrap_err().to_string();
        assert!(error.contains(EVALS_FILE), "{error}");
        let report = folder.path().join("eval.json");
        std::fs::write(&report, "{\"model\": \"x\"}").unwrap();
        let error = baseline_from_report(&report).unwrap_err().to_string();
        assert!(error.contains("rows"), "{error}");
        std::fs::write(&report, "not json").unwrap();
        let error = baseline_from_report(&report).unwrap_err().to_string();
        assert!(error.contains("not JSON"), "{error}");
        assert!(sheet(&[], None).is_err());
        // "cycle 8 (stopped at 2,750)" split at its comma: three names for two runs.
        let runs = [folder.path().join("a"), folder.path().join("b")];
        let names = ["cycle 8 (stopped at 2", "750)", "cycle 9"].map(str::to_owned);
        let out = folder.path().join("curves.png");
        let error = write_curves(&runs, &names, None, 2, &out)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--names: 3 name(s) for 2 run(s)"), "{error}");
        assert!(!out.exists());
    }
}
