//! `clearair eval`: the compact restorer, the degraded input and (for the noise rows) FFDNet
//! on the held-out photos under the fixed protocol of [`crate::protocol`], plus the encoder's
//! classification accuracy; a table, a JSON report and picture sheets.

pub mod ffdnet;
pub mod report;
pub mod sheets;

use std::time::Instant;

use clearair_imaging::Rgb8Image;
use indicatif::{ProgressBar, ProgressStyle};

use crate::encoder_eval::{EncoderAccuracy, encoder_accuracy};
use crate::error::Result;
use crate::mesh::MeshRestorer;
use crate::photos::{Photo, read_photo};
use crate::priors::PriorDropout;
use crate::protocol::{EvalRow, ROWS, RowPriors, centre_crop, degrade_for_row, psnr_ssim};

pub use ffdnet::FfdnetReference;

/// What to evaluate and what to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSettings {
    /// Evaluate centred crops of this side instead of the whole photos (quick checks).
    pub crop: Option<u32>,
    /// Rows to run, as indices into [`ROWS`].
    pub rows: Vec<usize>,
    /// Photos per row kept for the picture sheets.
    pub sheet_photos: usize,
    /// FFDNet on the noise rows; `None` leaves the reference out (the table says so).
    pub ffdnet: Option<FfdnetReference>,
    /// Degradations per kind and photo for the encoder's accuracy (0: skip it).
    pub encoder_repeats: u64,
    /// Draw a progress bar.
    pub show_progress: bool,
    /// Priors put on their neutral fallback in the served rows too (an ablation; the
    /// fallback rows have every prior neutral whatever this says).
    pub neutral: PriorDropout,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            crop: None,
            rows: (0..ROWS.len()).collect(),
            sheet_photos: 3,
            ffdnet: None,
            encoder_repeats: 4,
            show_progress: true,
            neutral: PriorDropout::default(),
        }
    }
}

/// PSNR (dB) and SSIM.
pub type Score = (f64, f64);

/// One photo's scores in one row.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageScore {
    /// Photo name.
    pub photo: String,
    /// The degraded input against the clean photo.
    pub input: Score,
    /// The restorer's output against the clean photo.
    pub restored: Score,
    /// FFDNet's output against the clean photo (noise rows, when run).
    pub reference: Option<Score>,
}

impl ImageScore {
    /// The photo's figure of merit: the PSNR gain over the input (dB), or for the clean
    /// row, whose input is the reference itself, the output's PSNR.
    pub fn merit(&self) -> f64 {
        if self.input.0.is_finite() {
            self.restored.0 - self.input.0
        } else {
            self.restored.0
        }
    }
}

/// Images kept for a row's picture sheet.
#[derive(Clone, Debug, PartialEq)]
pub struct RowExample {
    /// Photo name.
    pub photo: String,
    /// The degraded input.
    pub degraded: Rgb8Image,
    /// The restorer's output.
    pub restored: Rgb8Image,
    /// FFDNet's output, when run.
    pub reference: Option<Rgb8Image>,
    /// The clean photo.
    pub clean: Rgb8Image,
    /// Scores, for the captions.
    pub score: ImageScore,
    /// Shown because it is the row's worst photo (after the first few).
    pub worst: bool,
}

/// One row's results.
#[derive(Clone, Debug, PartialEq)]
pub struct RowResult {
    /// The row.
    pub row: EvalRow,
    /// Per photo.
    pub images: Vec<ImageScore>,
    /// The first photos, and the worst one when it is not among them, for the sheet.
    pub examples: Vec<RowExample>,
}

fn mean(scores: impl Iterator<Item = Score>) -> Option<Score> {
    let (mut psnr, mut ssim, mut count) = (0.0, 0.0, 0usize);
    for (p, s) in scores {
        psnr += p;
        ssim += s;
        count += 1;
    }
    (count > 0).then(|| (psnr / count as f64, ssim / count as f64))
}

impl RowResult {
    /// Mean scores of the degraded input.
    pub fn input(&self) -> Score {
        mean(self.images.iter().map(|i| i.input)).unwrap_or((f64::NAN, f64::NAN))
    }

    /// Mean scores of the restorer.
    pub fn restored(&self) -> Score {
        mean(self.images.iter().map(|i| i.restored)).unwrap_or((f64::NAN, f64::NAN))
    }

    /// Mean scores of FFDNet, when it ran on every photo of the row.
    pub fn reference(&self) -> Option<Score> {
        if self.images.iter().any(|i| i.reference.is_none()) {
            return None;
        }
        mean(self.images.iter().filter_map(|i| i.reference))
    }

    /// The median over photos of [`ImageScore::merit`]: what a typical photo gets, where
    /// one failure can pull the mean down by several dB.
    pub fn median(&self) -> f64 {
        let mut merits: Vec<f64> = self.images.iter().map(ImageScore::merit).collect();
        merits.sort_by(f64::total_cmp);
        match merits.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => merits[n / 2],
            n => (merits[n / 2 - 1] + merits[n / 2]) / 2.0,
        }
    }

    /// The photo the restorer served worst (smallest gain; for the clean row the lowest
    /// PSNR) and its figure.
    pub fn worst(&self) -> Option<(&ImageScore, f64)> {
        self.images
            .iter()
            .map(|image| (image, image.merit()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// PSNR gain of the restorer over the input, dB (not a number for the clean row, whose
    /// input is the reference itself).
    pub fn gain(&self) -> f64 {
        let input = self.input().0;
        if input.is_finite() {
            self.restored().0 - input
        } else {
            f64::NAN
        }
    }
}

/// Everything one evaluation produced.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    /// Per row.
    pub rows: Vec<RowResult>,
    /// Encoder accuracy per kind and on clean photos (empty when skipped).
    pub encoder: EncoderAccuracy,
    /// Photos evaluated.
    pub photos: usize,
    /// The centred crop, if any.
    pub crop: Option<u32>,
    /// Whether FFDNet ran.
    pub ffdnet: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs the evaluation of `mesh` on `photos`.
pub fn evaluate(
    mesh: &MeshRestorer<'_>,
    photos: &[Photo],
    settings: &EvalSettings,
) -> Result<EvalReport> {
    let started = Instant::now();
    let clean: Vec<Rgb8Image> = photos
        .iter()
        .map(|photo| match settings.crop {
            Some(side) => centre_crop(&photo.image, side),
            None => Ok(photo.image.clone()),
        })
        .collect::<Result<_>>()?;
    let bar = if settings.show_progress {
        let bar = ProgressBar::new((settings.rows.len() * photos.len()) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "eval [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} ETA {eta}",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut rows = Vec::new();
    for &row_index in &settings.rows {
        let row = ROWS[row_index];
        bar.set_message(row.label);
        let mut images = Vec::new();
        let mut examples = Vec::new();
        let mut degraded_images = Vec::new();
        // The worst photo past the first `sheet_photos`, its index and its panels.
        let mut worst: Option<(usize, RowExample)> = None;
        for (photo_index, (photo, clean)) in photos.iter().zip(&clean).enumerate() {
            let (_, degraded) = degrade_for_row(row_index, photo_index, clean)?;
            let neutral = match row.priors {
                RowPriors::Served => settings.neutral,
                RowPriors::Neutral => PriorDropout::ALL,
            };
            let output = mesh.restore_neutral(&degraded, neutral)?;
            let score = ImageScore {
                photo: photo.name.clone(),
                input: psnr_ssim(&degraded, clean)?,
                restored: psnr_ssim(&output.restored, clean)?,
                reference: None,
            };
            let example = || RowExample {
                photo: photo.name.clone(),
                degraded: degraded.clone(),
                restored: output.restored.clone(),
                reference: None,
                clean: clean.clone(),
                score: score.clone(),
                worst: false,
            };
            if photo_index < settings.sheet_photos {
                examples.push(example());
            } else if settings.sheet_photos > 0
                && worst
                    .as_ref()
                    .is_none_or(|(_, kept)| score.merit() < kept.score.merit())
            {
                worst = Some((photo_index, example()));
            }
            images.push(score);
            degraded_images.push(degraded);
            bar.inc(1);
            if bar.is_hidden() && settings.show_progress {
                eprintln!(
                    "eval {} {}: {}/{}",
                    row.label,
                    photo.name,
                    photo_index + 1,
                    photos.len()
                );
            }
        }
        let served = row.priors == RowPriors::Served;
        if let (Some(reference), Some(sigma), true) = (&settings.ffdnet, row.noise_sigma(), served)
        {
            bar.set_message(format!("{} FFDNet", row.label));
            let results = reference.denoise(row.key, sigma, &degraded_images, &clean)?;
            for (index, result) in results.into_iter().enumerate() {
                images[index].reference = Some(result.score);
                let example = match &mut worst {
                    Some((worst_index, example)) if *worst_index == index => Some(example),
                    _ => examples.get_mut(index),
                };
                if let Some(example) = example {
                    example.score.reference = Some(result.score);
                    example.reference = Some(read_photo(&result.output)?);
                }
            }
        }
        // The worst photo joins the sheet when it is worse than every photo shown.
        if let Some((_, mut example)) = worst {
            let shown = examples.iter().map(|e| e.score.merit());
            if shown.fold(f64::INFINITY, f64::min) > example.score.merit() {
                example.worst = true;
                examples.push(example);
            }
        }
        rows.push(RowResult {
            row,
            images,
            examples,
        });
    }
    bar.finish_and_clear();
    let encoder = if settings.encoder_repeats > 0 {
        encoder_accuracy(
            mesh.encoder,
            photos,
            mesh.device,
            mesh.view,
            settings.encoder_repeats,
        )?
    } else {
        EncoderAccuracy::default()
    };
    Ok(EvalReport {
        rows,
        encoder,
        photos: photos.len(),
        crop: settings.crop,
        ffdnet: settings.ffdnet.is_some(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests;
