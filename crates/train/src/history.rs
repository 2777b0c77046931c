//! A training run's history, kept beside its checkpoint so it survives resumes: one CSV line
//! per step (`history.csv`: step, learning rate, loss, pixel loss, ICRM term, seconds) and
//! one per progress evaluation (`eval-history.csv`: step and the PSNR gain of every row),
//! with both drawn as plots (`history.png`, `eval-history.png`) at every checkpoint — the
//! learning curves that show whether more hours still pay.

use std::io::Write;
use std::path::{Path, PathBuf};

use clearair_imaging::plot::{LinePlot, Series};

use crate::error::{Result, TrainError};
use crate::photos::write_png;
use crate::step::StepLosses;

const STEPS_FILE: &str = "history.csv";
/// The progress evaluations' file.
pub(crate) const EVALS_FILE: &str = "eval-history.csv";
const STEPS_HEADER: &str = "step,lr,loss,pixel,consistency,seconds";

/// One progress evaluation: the step and each row's (key, restored PSNR, input PSNR).
#[derive(Clone, Debug, PartialEq)]
pub struct EvalRecord {
    /// The step after which it ran.
    pub step: u64,
    /// Per row: key, restored PSNR, input PSNR (infinite for the clean row).
    pub rows: Vec<(String, f64, f64)>,
}

/// The history files of one run.
#[derive(Debug)]
pub struct History {
    folder: PathBuf,
    pending: Vec<String>,
}

fn io_error(path: &Path, error: std::io::Error) -> TrainError {
    TrainError::Setting(format!("{}: {error}", path.display()))
}

/// Keeps the lines of `path` whose first field (a step) is at most `last_step`, dropping
/// what an interrupted run wrote after its last checkpoint (those steps run again).
fn truncate_after(path: &Path, last_step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.split(',')
                .next()
                .and_then(|step| step.parse::<u64>().ok())
                .is_none_or(|step| step <= last_step)
        })
        .collect();
    std::fs::write(path, kept.join("\n") + "\n").map_err(|e| io_error(path, e))
}

impl History {
    /// The history in `folder`, continuing after step `start` (earlier lines are kept, later
    /// ones dropped); a run from step 0 starts it afresh.
    pub fn open(folder: &Path, start: u64) -> Result<Self> {
        std::fs::create_dir_all(folder).map_err(|e| io_error(folder, e))?;
        let steps = folder.join(STEPS_FILE);
        if start == 0 {
            for file in [STEPS_FILE, EVALS_FILE] {
                let _ = std::fs::remove_file(folder.join(file));
            }
        } else {
            truncate_after(&steps, start)?;
            truncate_after(&folder.join(EVALS_FILE), start)?;
        }
        if !steps.is_file() {
            std::fs::write(&steps, format!("{STEPS_HEADER}\n")).map_err(|e| io_error(&steps, e))?;
        }
        Ok(Self {
            folder: folder.to_path_buf(),
            pending: Vec::new(),
        })
    }

    /// Records step `step` (1-based: the step just finished).
    pub fn record_step(&mut self, step: u64, lr: f64, loss: &StepLosses, seconds: f64) {
        self.pending.push(format!(
            "{step},{lr:.6e},{:.6},{:.6},{},{seconds:.1}",
            loss.total,
            loss.pixel,
            loss.consistency
                .map_or(String::new(), |c| format!("{c:.6}"))
        ));
    }

    /// Appends the recorded steps to `history.csv`.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.folder.join(STEPS_FILE);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        writeln!(file, "{}", self.pending.join("\n")).map_err(|e| io_error(&path, e))?;
        self.pending.clear();
        Ok(())
    }

    /// Appends a progress evaluation to `eval-history.csv`.
    pub fn record_eval(&self, record: &EvalRecord) -> Result<()> {
        let path = self.folder.join(EVALS_FILE);
        let new = !path.is_file();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        if new {
            let header: Vec<String> = record
                .rows
                .iter()
                .flat_map(|(key, _, _)| [format!("psnr_{key}"), format!("input_psnr_{key}")])
                .collect();
            writeln!(file, "step,{}", header.join(",")).map_err(|e| io_error(&path, e))?;
        }
        let values: Vec<String> = record
            .rows
            .iter()
            .flat_map(|(_, psnr, input)| [format!("{psnr:.4}"), format!("{input:.4}")])
            .collect();
        writeln!(file, "{},{}", record.step, values.join(",")).map_err(|e| io_error(&path, e))
    }

    /// Draws `history.png` (the loss, smoothed over 100 steps) and, when there are
    /// evaluations, `eval-history.png` (a panel per row with its goal: see [`crate::curves`]).
    pub fn plot(&self) -> Result<()> {
        let steps = std::fs::read_to_string(self.folder.join(STEPS_FILE)).unwrap_or_default();
        let mut points = Vec::new();
        let mut smoothed: Option<f64> = None;
        for line in steps.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let (Some(step), Some(loss)) = (
                fields.first().and_then(|f| f.parse::<f64>().ok()),
                fields.get(2).and_then(|f| f.parse::<f64>().ok()),
            ) else {
                continue;
            };
            let value = smoothed.map_or(loss, |s| 0.99 * s + 0.01 * loss);
            smoothed = Some(value);
            points.push((step, value));
        }
        let thinned = thin(&points, 2000);
        let plot = LinePlot {
            title: "restorer training loss (exponential average, 100 steps)".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            log_x: false,
            series: vec![Series::new("loss", thinned)],
        };
        write_png(&plot.render(720, 360)?, &self.folder.join("history.png"))?;

        // A picture is not worth stopping a run of hours for: a damaged history (a line cut
        // short by a crash before the checkpoint it belongs to) is reported and skipped.
        let evals = match read_evals(&self.folder.join(EVALS_FILE)) {
            Ok(evals) => evals,
            Err(error) => {
                eprintln!("history: eval-history.png not drawn: {error}");
                return Ok(());
            }
        };
        if evals.is_empty() {
            return Ok(());
        }
        let run = crate::curves::RunCurves {
            name: "this run".into(),
            records: evals,
        };
        write_png(
            &crate::curves::sheet(&[run], None)?,
            &self.folder.join("eval-history.png"),
        )
    }
}

/// Reads an `eval-history.csv` (step, then each row's restored and input PSNR); a missing
/// file has no evaluations.
pub fn read_evals(path: &Path) -> Result<Vec<EvalRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path, e)),
    };
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let keys: Vec<&str> = header
        .split(',')
        .skip(1)
        .step_by(2)
        .map(|k| k.trim_start_matches("psnr_"))
        .collect();
    let mut records = Vec::new();
    for (number, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let values: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>().unwrap_or(f64::NAN))
            .collect();
        let step = values.first().copied().unwrap_or(f64::NAN);
        if !(step.is_finite() && step >= 0.0) || values.len() != 1 + 2 * keys.len() {
            return Err(TrainError::Setting(format!(
                "{}: line {} is not a step and {} PSNR pairs",
                path.display(),
                number + 2,
                keys.len()
            )));
        }
        let rows = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                (
                    (*key).to_owned(),
                    values[1 + 2 * index],
                    values[2 + 2 * index],
                )
            })
            .collect();
        records.push(EvalRecord {
            step: step as u64,
            rows,
        });
    }
    Ok(records)
}

/// At most about `most` of `points`, evenly spaced.
fn thin(points: &[(f64, f64)], most: usize) -> Vec<(f64, f64)> {
    let stride = points.len().div_ceil(most.max(1)).max(1);
    points.iter().step_by(stride).copied().collect()
}

/// Writes a learning-rate range test: `lr-range.csv` (step, lr, loss) and `lr-range.png`
/// (loss against the rate, log axis) into `folder`.
pub fn write_range_test(folder: &Path, rates: &[f64], losses: &[f64]) -> Result<PathBuf> {
    std::fs::create_dir_all(folder).map_err(|e| io_error(folder, e))?;
    let mut csv = String::from("step,lr,loss,smoothed\n");
    let mut points = Vec::new();
    let mut smoothed: Option<f64> = None;
    for (step, (&lr, &loss)) in rates.iter().zip(losses).enumerate() {
        let value = smoothed.map_or(loss, |s| 0.9 * s + 0.1 * loss);
        smoothed = Some(value);
        csv.push_str(&format!("{step},{lr:.6e},{loss:.6},{value:.6}\n"));
        points.push((lr, value));
    }
    let path = folder.join("lr-range.csv");
    std::fs::write(&path, csv).map_err(|e| io_error(&path, e))?;
    // Once the loss has diverged (4× its best, the usual cut) the rest only squashes the
    // interesting part of the curve.
    let best = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    if let Some(diverged) = points.iter().position(|p| p.1 > 4.0 * best) {
        points.truncate(diverged + 1);
    }
    let plot = LinePlot {
        title: "learning-rate range test: loss (exponential average, 10 steps)".into(),
        x_label: "learning rate".into(),
        y_label: "loss".into(),
        log_x: true,
        series: vec![Series::new("loss", points)],
    };
    let image = folder.join("lr-range.png");
    write_png(&plot.render(720, 360)?, &image)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_history_drops_what_came_after_the_checkpoint() {
        let folder = crate::test_support::scratch_dir("history");
        let losses = |total| StepLosses {
            total,
            pixel: total,
            consistency: None,
        };
        let mut history = History::open(folder.path(), 0).unwrap();
        for step in 1..=5 {
            history.record_step(step, 1e-3, &losses(step as f64), 1.0);
        }
        history.flush().unwrap();
        history
            .record_eval(&EvalRecord {
                step: 4,
                rows: vec![
                    ("noise25".into(), 25.0, 20.0),
                    ("clean".into(), 39.0, f64::INFINITY),
                ],
            })
            .unwrap();
        history.plot().unwrap();
        let read = read_evals(&folder.path().join(EVALS_FILE)).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].rows[0], ("noise25".to_owned(), 25.0, 20.0));
        assert_eq!(read[0].rows[1].2, f64::INFINITY);
        assert!(folder.path().join("history.png").is_file());
        assert!(folder.path().join("eval-history.png").is_file());
        // A damaged line is named when read and does not stop the run's plotting.
        let evals_path = folder.path().join(EVALS_FILE);
        let intact = std::fs::read_to_string(&evals_path).unwrap();
        std::fs::write(&evals_path, format!("{intact}5,24.1\n")).unwrap();
        let error = read_evals(&evals_path).unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
        history.plot().unwrap();
        std::fs::write(&evals_path, intact).unwrap();

        // Resume from the checkpoint at step 3: steps 4 and 5 and the evaluation after step
        // 4 are dropped.
        let mut resumed = History::open(folder.path(), 3).unwrap();
        resumed.record_step(4, 1e-3, &losses(0.5), 2.0);
        resumed.flush().unwrap();
        let text = std::fs::read_to_string(folder.path().join(STEPS_FILE)).unwrap();
        let steps: Vec<&str> = text.lines().map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(steps, ["step", "1", "2", "3", "4"]);
        assert!(text.contains("4,1.000000e-3,0.500000"));
        let evals = std::fs::read_to_string(folder.path().join(EVALS_FILE)).unwrap();
        assert_eq!(evals.lines().count(), 1, "only the header is left: {evals}");

        // A fresh run starts over.
        History::open(folder.path(), 0).unwrap();
        let text = std::fs::read_to_string(folder.path().join(STEPS_FILE)).unwrap();
        assert_eq!(text, format!("{STEPS_HEADER}\n"));
    }

    #[test]
    fn range_tests_are_written_as_csv_and_plot() {
        let folder = crate::test_support::scratch_dir("range");
        let rates: Vec<f64> = (0..20).map(|i| 1e-5 * 1.5f64.powi(i)).collect();
        let losses: Vec<f64> = (0..20).map(|i| 1.0 / f64::from(i + 1)).collect();
        let image = write_range_test(folder.path(), &rates, &losses).unwrap();
        assert!(image.is_file());
        let csv = std::fs::read_to_string(folder.path().join("lr-range.csv")).unwrap();
        assert_eq!(csv.lines().count(), 21);
    }
}
