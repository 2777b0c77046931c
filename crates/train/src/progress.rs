//! Training progress: an indicatif bar with the smoothed loss, speed and ETA on a terminal,
//! and the same figures as periodic log lines when stderr is a file (nohup, CI), where
//! indicatif draws nothing.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Exponential moving average with bias correction (so the first values are not pulled
/// towards zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothedValue {
    decay: f64,
    average: f64,
    weight: f64,
}

impl SmoothedValue {
    /// An empty average that forgets at rate `1 − decay` per update.
    pub fn new(decay: f64) -> Self {
        Self {
            decay,
            average: 0.0,
            weight: 0.0,
        }
    }

    /// Restarts from a known value (after a resume).
    pub fn starting_at(decay: f64, value: f64) -> Self {
        Self {
            decay,
            average: value,
            weight: 1.0,
        }
    }

    /// Adds a value.
    pub fn update(&mut self, value: f64) {
        self.average = self.decay * self.average + (1.0 - self.decay) * value;
        self.weight = self.decay * self.weight + (1.0 - self.decay);
    }

    /// The bias-corrected average (NaN before the first value).
    pub fn value(&self) -> f64 {
        self.average / self.weight
    }
}

/// The progress display of one training run.
#[derive(Debug)]
pub struct TrainingProgress {
    bar: ProgressBar,
    started: Instant,
    start_step: u64,
    last_log: Instant,
    log_every: Duration,
}

impl TrainingProgress {
    /// A display for steps `start_step..total`, labelled `what`.
    pub fn new(what: &str, start_step: u64, total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} ETA {eta}",
            )
            .expect("valid template"),
        );
        bar.set_prefix(what.to_owned());
        bar.set_position(start_step);
        bar.reset_eta();
        Self {
            bar,
            started: Instant::now(),
            start_step,
            last_log: Instant::now(),
            log_every: Duration::from_secs(30),
        }
    }

    /// Reports step `step` (1-based count of steps done) with `message` (loss and friends).
    pub fn update(&mut self, step: u64, message: &str) {
        let done = step.saturating_sub(self.start_step) as f64;
        let speed = done / self.started.elapsed().as_secs_f64().max(1e-9);
        let line = format!("{message} {speed:.2} it/s");
        self.bar.set_position(step);
        if self.bar.is_hidden() {
            if self.last_log.elapsed() >= self.log_every {
                self.last_log = Instant::now();
                let remaining = self.bar.length().unwrap_or(step).saturating_sub(step) as f64;
                eprintln!(
                    "{} step {step}/{} {line} ETA {:.0}s",
                    self.bar.prefix(),
                    self.bar.length().unwrap_or(0),
                    remaining / speed.max(1e-9)
                );
            }
        } else {
            self.bar.set_message(line);
        }
    }

    /// Prints a line above the bar (or to stderr when there is no bar).
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothed_value_is_unbiased_from_the_start() {
        let mut average = SmoothedValue::new(0.9);
        average.update(2.0);
        assert!((average.value() - 2.0).abs() < 1e-12);
        for _ in 0..200 {
            average.update(1.0);
        }
        assert!((average.value() - 1.0).abs() < 1e-6);
        let resumed = SmoothedValue::starting_at(0.9, 0.5);
        assert_eq!(resumed.value(), 0.5);
    }
}
