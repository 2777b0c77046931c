//! Training samples, drawn reproducibly from photos held in memory.
//!
//! A restorer sample is a crop of a cached window ([`crate::windows`]): a piece of a photo
//! degraded and rounded to 8 bits as an upload would be, whose priors the mesh's own backends
//! computed on the whole window; the restorer trains on a random crop of it, flipped or
//! turned, with the matching part of the masks, as the restoration service restores tiles of
//! an image whose priors were computed whole. An encoder sample is a photo window at a random scale, degraded at full
//! resolution and then scaled down (area average) as the degradation service scales its
//! input, twice with different degradations so F_c can learn to ignore them.
//!
//! Every random choice comes from [`keyed_rng`] with the sample's (iteration, index), so a
//! batch is a pure function of (photos, settings, seed, iteration).

use std::sync::Arc;

use clearair_imaging::Rgb8Image;
use clearair_model::DegradationKind;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::error::{Result, TrainError};
use crate::mix::{DegradationMix, apply_recipe, multi_hot};
use crate::photos::{Photo, PixelSymmetry, image_to_tensor, tensor_to_image};
use crate::priors::{PriorDropout, neutral_masks, stack_masks};
use crate::seeding::{Purpose, keyed_rng};
use crate::windows::{DARK_TARGET_MEAN, WindowCache};

/// A random flip/rot90.
fn random_symmetry(rng: &mut ChaCha8Rng) -> PixelSymmetry {
    PixelSymmetry {
        flip: rng.gen_bool(0.5),
        quarter_turns: rng.gen_range(0..4),
    }
}

/// A random `side × side` window of `image` (which must be at least that large).
fn random_window(image: &Rgb8Image, side: u32, rng: &mut ChaCha8Rng) -> Result<Rgb8Image> {
    let x = rng.gen_range(0..=image.width() - side);
    let y = rng.gen_range(0..=image.height() - side);
    Ok(image.crop(x, y, side, side)?)
}

/// The smallest side among `photos`.
fn smallest_side(photos: &[Photo]) -> u32 {
    photos
        .iter()
        .map(|p| p.image.width().min(p.image.height()))
        .min()
        .unwrap_or(0)
}

/// From `from_step` on, batches of `batch` crops of `crop`².
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CropStage {
    /// First step of the stage.
    pub from_step: u64,
    /// Side of the square crops.
    pub crop: u32,
    /// Crops per batch.
    pub batch: usize,
}

/// Progressive crop sizes: small crops (more, cheaper steps) early, larger ones (longer-range
/// context) later. Stages are sorted by their first step; the first starts at step 0.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CropSchedule(Vec<CropStage>);

impl CropSchedule {
    /// One stage for the whole run.
    pub fn fixed(crop: u32, batch: usize) -> Self {
        Self(vec![CropStage {
            from_step: 0,
            crop,
            batch,
        }])
    }

    /// Stages as given; they must start at step 0, increase, and have batches of at least
    /// one crop of at least 16².
    pub fn new(stages: Vec<CropStage>) -> Result<Self> {
        let valid = stages.first().is_some_and(|s| s.from_step == 0)
            && stages.windows(2).all(|w| w[0].from_step < w[1].from_step)
            && stages.iter().all(|s| s.batch > 0 && s.crop >= 16);
        if !valid {
            return Err(TrainError::Setting(format!(
                "crop stages must start at step 0, be in increasing order, and have batches of                  at least one crop of at least 16²: {stages:?}"
            )));
        }
        Ok(Self(stages))
    }

    /// Parses `STEP:CROPxBATCH,…`, e.g. `0:64x16,3000:128x4`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |part: &str| {
            TrainError::Setting(format!(
                "crop stage `{part}` is not STEP:CROPxBATCH (e.g. 0:64x16,3000:128x4)"
            ))
        };
        let stages = text
            .split(',')
            .map(|part| {
                let (step, shape) = part.trim().split_once(':').ok_or_else(|| bad(part))?;
                let (crop, batch) = shape.split_once('x').ok_or_else(|| bad(part))?;
                Ok(CropStage {
                    from_step: step.parse().map_err(|_| bad(part))?,
                    crop: crop.parse().map_err(|_| bad(part))?,
                    batch: batch.parse().map_err(|_| bad(part))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(stages)
    }

    /// The stage of step `step`.
    pub fn at(&self, step: u64) -> CropStage {
        *self
            .0
            .iter()
            .rev()
            .find(|stage| stage.from_step <= step)
            .unwrap_or(&self.0[0])
    }

    /// The largest crop of any stage.
    pub fn largest_crop(&self) -> u32 {
        self.0.iter().map(|s| s.crop).max().unwrap_or(0)
    }

    /// The stages.
    pub fn stages(&self) -> &[CropStage] {
        &self.0
    }
}

/// Settings of restorer samples (crops of cached windows).
#[derive(Clone, Debug, PartialEq)]
pub struct RestorerSampling {
    /// Crop sides and batch sizes over the run (every crop at most the smallest window).
    pub crops: CropSchedule,
    /// Probability that each prior is replaced by its neutral value.
    pub prior_dropout: f64,
    /// Probability that all three priors are neutral at once (every prior service down): the
    /// fallback the mesh must never make worse than its input.
    pub all_neutral: f64,
    /// Multiplier of `all_neutral` per degradation kind (noise, haze, rain, blur, low light):
    /// a window's probability is `all_neutral` times the largest multiplier of its kinds
    /// (clean windows: `all_neutral`). All ones: the same probability for every window.
    pub all_neutral_kinds: [f64; 5],
    /// Multiplier of that probability for windows whose clean target is dark (mean below
    /// [`DARK_TARGET_MEAN`]: night skies, darkened photos) and carry neither noise nor haze.
    /// Without priors such a window (dark, little noise) looks like an under-exposed photo,
    /// which the fallback must brighten; noise of the strength the noise kind adds, and
    /// haze's bright veil, tell a dark scene apart, so those windows keep their probability
    /// (with the hazy ones exempted too, cycle 26 in models/README.md, the fallback stopped
    /// dehazing three of the twelve evaluation photos). 1: every window alike (the sample
    /// streams of earlier runs unchanged).
    pub all_neutral_dark: f64,
    /// Multiplier of the keep loss per degradation kind (noise, haze, rain, blur, low
    /// light): a window's is the largest of its kinds' (clean windows: 1). 0 spares a kind
    /// the loss: haze, whose strength the fallback must guess, is dehazed less when every
    /// over-corrected light haze is charged (models/README.md). All ones: every window alike.
    pub keep_kinds: [f64; 5],
    /// Multiplier of the frequency loss per degradation kind, as `keep_kinds` (clean
    /// windows: 1): the term deblurs, but on rain it sharpens the streaks' remnants (fallback
    /// stages from the blur stage, models/README.md), so a stage can keep it for blur alone.
    /// All ones: every window alike.
    pub frequency_kinds: [f64; 5],
    /// Extra probability that F_c and F_d alone are neutral (the degradation service down
    /// while the quality and mask services answer), on top of `prior_dropout`. Without it
    /// the restorer can learn to lean on the embeddings for a kind (haze) and leave such
    /// photos untouched when they are missing or weak. 0: no extra draw, the sample
    /// streams of earlier runs unchanged.
    pub embedding_dropout: f64,
    /// Probability that a crop whose embeddings are kept carries another window's F_d
    /// instead of its own (a window drawn from the same pool): the degradation encoder
    /// misreading a photo, as it reads some hazy photos as clean or rainy and the restorer
    /// then leaves them untouched. Measured at 0.15 (cycle 17, models/README.md) it made the
    /// restorer dehaze less, not more. 0: no extra draw, the sample streams of earlier runs
    /// unchanged.
    pub misread: f64,
}

impl RestorerSampling {
    /// The probability that every prior of a crop of a window with `kinds` and a clean
    /// target of mean `target_mean` (0–1) is neutral.
    pub fn all_neutral_for(&self, kinds: &[f32; 5], target_mean: f32) -> f64 {
        let multiplier = largest_of_kinds(kinds, self.all_neutral_kinds);
        let absent = |kind: DegradationKind| kinds[kind.index()] <= 0.0;
        let dark = if target_mean < DARK_TARGET_MEAN
            && absent(DegradationKind::Noise)
            && absent(DegradationKind::Haze)
        {
            self.all_neutral_dark
        } else {
            1.0
        };
        (self.all_neutral * multiplier * dark).clamp(0.0, 1.0)
    }

    /// The multiplier of the keep loss for a window with `kinds`: the largest of its kinds'
    /// `keep_kinds` (a clean window's: 1).
    pub fn keep_for(&self, kinds: &[f32; 5]) -> f64 {
        largest_of_kinds(kinds, self.keep_kinds)
    }

    /// The keep loss's multiplier for each of `samples` (N values on `device`), or None
    /// when every kind's is 1 and the loss is the plain batch mean, as before there were
    /// multipliers.
    pub fn keep_per_image(&self, samples: &[RestorerSample], device: Device) -> Option<Tensor> {
        per_image(self.keep_kinds, samples, device)
    }

    /// The multiplier of the frequency loss for a window with `kinds`: the largest of its
    /// kinds' `frequency_kinds` (a clean window's: 1).
    pub fn frequency_for(&self, kinds: &[f32; 5]) -> f64 {
        largest_of_kinds(kinds, self.frequency_kinds)
    }

    /// The frequency loss's multiplier for each of `samples`, as
    /// [`RestorerSampling::keep_per_image`].
    pub fn frequency_per_image(
        &self,
        samples: &[RestorerSample],
        device: Device,
    ) -> Option<Tensor> {
        per_image(self.frequency_kinds, samples, device)
    }

    /// The kinds whose windows all train with every prior neutral (`all_neutral` times the
    /// kind's multiplier reaches 1): the served path, priors present, never meets them, and
    /// the restorer forgets how to restore them when the priors say what they are (cycle
    /// 30 in models/README.md: haze at 0.25 × 4, served haze +1.08 dB against +6.73).
    pub fn kinds_never_with_priors(&self) -> Vec<DegradationKind> {
        DegradationKind::ALL
            .into_iter()
            .filter(|kind| {
                let mut kinds = [0.0; 5];
                kinds[kind.index()] = 1.0;
                self.all_neutral_for(&kinds, 0.5) >= 1.0
            })
            .collect()
    }
}

/// Each of `samples`' multiplier from `multipliers` (the largest of its window's kinds', 1
/// for a clean window), N values on `device`; None when every kind's is 1, so the term is
/// the plain batch mean, as before there were multipliers.
fn per_image(multipliers: [f64; 5], samples: &[RestorerSample], device: Device) -> Option<Tensor> {
    if multipliers == [1.0; 5] {
        return None;
    }
    let weights: Vec<f32> = samples
        .iter()
        .map(|sample| largest_of_kinds(&sample.kinds, multipliers) as f32)
        .collect();
    Some(Tensor::from_slice(&weights).to_device(device))
}

/// The largest of `multipliers` over the kinds present in `kinds` (multi-hot); 1 for a
/// window of no kind (a clean one).
fn largest_of_kinds(kinds: &[f32; 5], multipliers: [f64; 5]) -> f64 {
    kinds
        .iter()
        .zip(multipliers)
        .filter(|(present, _)| **present > 0.0)
        .map(|(_, multiplier)| multiplier)
        .reduce(f64::max)
        .unwrap_or(1.0)
}

/// One restorer training sample, on the CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorerSample {
    /// Side of the crop.
    pub crop: u32,
    /// The degraded crop, 3×crop×crop planar floats (8-bit values / 255).
    pub degraded: Vec<f32>,
    /// The clean crop, same layout.
    pub clean: Vec<f32>,
    /// F_q (neutral when dropped or refused).
    pub quality: Vec<f32>,
    /// Masks over the crop, `mask_count × crop × crop` floats.
    pub masks: Vec<f32>,
    /// Number of masks.
    pub mask_count: u32,
    /// F_c (neutral when dropped).
    pub content: Vec<f32>,
    /// F_d (neutral when dropped; another window's when misread).
    pub degradation: Vec<f32>,
    /// The window whose F_d the crop carries: `window` unless misread.
    pub degradation_from: u64,
    /// Which priors were replaced by neutral values.
    pub dropout: PriorDropout,
    /// Multi-hot degradation kinds.
    pub kinds: [f32; 5],
    /// The window the crop came from.
    pub window: u64,
    /// The same crop of the upload, for a stage that sees it (its window kept one).
    pub upload: Option<Vec<f32>>,
}

/// Draws restorer samples: random crops, flips and turns of the windows in the current pool.
#[derive(Debug, Clone)]
pub struct RestorerSampler {
    windows: Arc<WindowCache>,
    settings: RestorerSampling,
    seed: u64,
}

impl RestorerSampler {
    /// A sampler over `windows`; the crop must fit in the smallest window.
    pub fn new(
        windows: Arc<WindowCache>,
        smallest_window: u32,
        settings: RestorerSampling,
        seed: u64,
    ) -> Result<Self> {
        if settings.crops.largest_crop() > smallest_window {
            return Err(TrainError::Setting(format!(
                "crops of {}² do not fit in the smallest window side ({smallest_window})",
                settings.crops.largest_crop()
            )));
        }
        Ok(Self {
            windows,
            settings,
            seed,
        })
    }

    /// The sampling settings.
    pub fn settings(&self) -> &RestorerSampling {
        &self.settings
    }

    /// The window cache.
    pub fn windows(&self) -> &WindowCache {
        &self.windows
    }

    /// Sample `index` of iteration `iteration`.
    pub fn sample(&self, iteration: u64, index: u64) -> Result<RestorerSample> {
        let RestorerSampling {
            ref crops,
            prior_dropout,
            ..
        } = self.settings;
        let crop = crops.at(iteration).crop;
        let mut rng = keyed_rng(self.seed, Purpose::RestorerSample, iteration, index);
        let pool = self.windows.schedule().pool(iteration);
        let window_index = rng.gen_range(pool);
        let window = self.windows.get(window_index)?;
        let side = window.clean.width();
        let x = rng.gen_range(0..=side - crop);
        let y = rng.gen_range(0..=side - crop);
        let symmetry = random_symmetry(&mut rng);
        let dropout = if rng.gen_bool(
            self.settings
                .all_neutral_for(&window.kinds, window.target_mean),
        ) {
            PriorDropout::ALL
        } else {
            let mut dropout = PriorDropout::sample(prior_dropout, &mut rng);
            if self.settings.embedding_dropout > 0.0 {
                dropout.embeddings |= rng.gen_bool(self.settings.embedding_dropout.min(1.0));
            }
            dropout
        };
        let planes = |image: &Rgb8Image| -> Result<Vec<f32>> {
            Ok(symmetry
                .apply(&image.crop(x, y, crop, crop)?)
                .to_planar_f32())
        };
        let (masks, mask_count) = if dropout.masks {
            let neutral = neutral_masks(crop, crop);
            (neutral.to_planar_f32(), neutral.count())
        } else {
            let planes = window.masks.window_planes(x, y, crop, crop);
            (
                symmetry.apply_planes(&planes, crop, crop),
                window.masks.count(),
            )
        };
        let or_neutral = |dropped: bool, values: &Vec<f32>| {
            if dropped {
                vec![0.0; values.len()]
            } else {
                values.clone()
            }
        };
        let misread = self.settings.misread;
        let degradation_from =
            if misread > 0.0 && !dropout.embeddings && rng.gen_bool(misread.min(1.0)) {
                rng.gen_range(self.windows.schedule().pool(iteration))
            } else {
                window_index
            };
        let degradation = if degradation_from == window_index {
            or_neutral(dropout.embeddings, &window.degradation)
        } else {
            self.windows.get(degradation_from)?.degradation.clone()
        };
        Ok(RestorerSample {
            crop,
            degraded: planes(&window.degraded)?,
            clean: planes(&window.clean)?,
            quality: or_neutral(dropout.quality, &window.quality),
            masks,
            mask_count,
            content: or_neutral(dropout.embeddings, &window.content),
            degradation,
            degradation_from,
            dropout,
            kinds: window.kinds,
            window: window_index,
            upload: window.upload.as_ref().map(planes).transpose()?,
        })
    }

    /// All samples of iteration `iteration` (its stage's batch size).
    pub fn batch(&self, iteration: u64) -> Result<Vec<RestorerSample>> {
        (0..self.settings.crops.at(iteration).batch as u64)
            .map(|index| self.sample(iteration, index))
            .collect()
    }
}

/// A restorer batch on the training device.
#[derive(Debug)]
pub struct RestorerBatch {
    /// N×3×crop×crop degraded crops (N×6: each followed by its upload, for a stage that sees
    /// the upload).
    pub degraded: Tensor,
    /// N×3×crop×crop clean crops.
    pub clean: Tensor,
    /// The priors.
    pub priors: clearair_model::Priors,
}

impl RestorerBatch {
    /// Stacks `samples` (all of one crop size) on `device`.
    pub fn assemble(samples: &[RestorerSample], device: Device) -> Result<Self> {
        let first = samples
            .first()
            .ok_or_else(|| TrainError::Setting("empty batch".into()))?;
        let crop = i64::from(first.crop);
        let count = samples.len() as i64;
        let stacked = |pick: fn(&RestorerSample) -> &Vec<f32>, shape: &[i64]| {
            let flat: Vec<f32> = samples
                .iter()
                .flat_map(|s| pick(s).iter().copied())
                .collect();
            Tensor::from_slice(&flat).view(shape).to_device(device)
        };
        let width = |pick: fn(&RestorerSample) -> &Vec<f32>| pick(first).len() as i64;
        let masks: Vec<(Vec<f32>, u32)> = samples
            .iter()
            .map(|s| (s.masks.clone(), s.mask_count))
            .collect();
        // A stage that sees the upload reads it as three more channels of its input.
        let degraded = if samples.iter().all(|s| s.upload.is_some()) {
            let flat: Vec<f32> = samples
                .iter()
                .flat_map(|s| s.degraded.iter().chain(s.upload.iter().flatten()).copied())
                .collect();
            Tensor::from_slice(&flat)
                .view([count, 6, crop, crop])
                .to_device(device)
        } else if samples.iter().any(|s| s.upload.is_some()) {
            return Err(TrainError::Setting(
                "a batch mixes crops with and without their upload".into(),
            ));
        } else {
            stacked(|s| &s.degraded, &[count, 3, crop, crop])
        };
        Ok(Self {
            degraded,
            clean: stacked(|s| &s.clean, &[count, 3, crop, crop]),
            priors: clearair_model::Priors {
                quality: stacked(|s| &s.quality, &[count, width(|s| &s.quality)]),
                masks: stack_masks(&masks, first.crop, first.crop).to_device(device),
                content: stacked(|s| &s.content, &[count, width(|s| &s.content)]),
                degradation: stacked(|s| &s.degradation, &[count, width(|s| &s.degradation)]),
            },
        })
    }

    /// Images in the batch.
    pub fn len(&self) -> i64 {
        self.degraded.size()[0]
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `start..start + length` of every tensor (views, no copy).
    pub fn rows(&self, start: i64, length: i64) -> Self {
        let rows = |t: &Tensor| t.narrow(0, start, length);
        Self {
            degraded: rows(&self.degraded),
            clean: rows(&self.clean),
            priors: clearair_model::Priors {
                quality: rows(&self.priors.quality),
                masks: rows(&self.priors.masks),
                content: rows(&self.priors.content),
                degradation: rows(&self.priors.degradation),
            },
        }
    }
}

/// Settings of encoder samples.
///
/// Training is progressive: most steps use small images (cheap), the last ones the size the
/// degradation service feeds (a long side of 256). The encoder's pooled feature statistics
/// depend on the image size (a larger view holds more scene variation), so its batch-norm
/// statistics and heads must settle at the service's size: an encoder trained on 128² alone
/// calls almost every 256² image "blurred".
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderSampling {
    /// Side of the square training images before `final_from`.
    pub side: u32,
    /// Side from iteration `final_from` on (the service's 256).
    pub final_side: u32,
    /// First iteration at `final_side`.
    pub final_from: u64,
    /// Largest ratio of the photo window to the image side: windows are 1 to `max_scale`
    /// times the side (log-uniform), degraded at that size and then scaled down, so the
    /// encoder sees degradations at the scales the service's resize produces (2 for the
    /// 512-pixel evaluation photos).
    pub max_scale: f64,
    /// Which degradations samples get.
    pub mix: DegradationMix,
}

/// One encoder training image.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSample {
    /// Side of the image.
    pub side: u32,
    /// 3×side×side planar floats (8-bit values / 255).
    pub image: Vec<f32>,
    /// Multi-hot degradation kinds.
    pub kinds: [f32; 5],
    /// Which clean window the image came from (shared by the two views of a pair).
    pub content_id: i64,
}

/// Draws encoder samples in pairs: one window, two different degradation recipes.
#[derive(Debug, Clone)]
pub struct EncoderSampler {
    photos: Arc<Vec<Photo>>,
    settings: EncoderSampling,
    seed: u64,
}

impl EncoderSampler {
    /// A sampler over `photos`; both sides must fit in every photo.
    pub fn new(photos: Arc<Vec<Photo>>, settings: EncoderSampling, seed: u64) -> Result<Self> {
        let smallest = smallest_side(&photos);
        let (small, large) = (
            settings.side.min(settings.final_side),
            settings.side.max(settings.final_side),
        );
        if small < 16 || large > smallest || settings.max_scale < 1.0 {
            return Err(TrainError::Setting(format!(
                "need 16 ≤ sides ({}, {}) ≤ the smallest photo side ({smallest}) and max_scale ≥ 1",
                settings.side, settings.final_side
            )));
        }
        Ok(Self {
            photos,
            settings,
            seed,
        })
    }

    /// The sampling settings.
    pub fn settings(&self) -> &EncoderSampling {
        &self.settings
    }

    /// Side of the images of iteration `iteration`.
    pub fn side_at(&self, iteration: u64) -> u32 {
        if iteration >= self.settings.final_from {
            self.settings.final_side
        } else {
            self.settings.side
        }
    }

    /// Pair `index` of iteration `iteration`: the same window under two different recipes.
    pub fn pair(&self, iteration: u64, index: u64) -> Result<[EncoderSample; 2]> {
        let EncoderSampling {
            max_scale, ref mix, ..
        } = self.settings;
        let side = self.side_at(iteration);
        let mut rng = keyed_rng(self.seed, Purpose::EncoderSample, iteration, index);
        let photo = &self.photos[rng.gen_range(0..self.photos.len())];
        let largest = photo.image.width().min(photo.image.height());
        let scale = rng.gen_range(0.0..=max_scale.ln()).exp();
        let window_side = ((f64::from(side) * scale).round() as u32).clamp(side, largest);
        let window =
            random_symmetry(&mut rng).apply(&random_window(&photo.image, window_side, &mut rng)?);
        let clean = image_to_tensor(&window);
        let first = mix.sample(&mut rng);
        // A handful of redraws always finds a different recipe (there are 16 kind sets).
        let mut second = mix.sample(&mut rng);
        for _ in 0..64 {
            if multi_hot(&second) != multi_hot(&first) {
                break;
            }
            second = mix.sample(&mut rng);
        }
        let mut view = |recipe: &[clearair_model::Degradation]| -> Result<EncoderSample> {
            let degraded = tensor_to_image(&apply_recipe(recipe, &clean, &mut rng)?)?;
            Ok(EncoderSample {
                side,
                image: degraded.resize(side, side)?.to_planar_f32(),
                kinds: multi_hot(recipe),
                content_id: index as i64,
            })
        };
        Ok([view(&first)?, view(&second)?])
    }

    /// The `pairs` pairs of iteration `iteration`, flattened (2 × pairs images).
    pub fn batch(&self, iteration: u64, pairs: usize) -> Result<Vec<EncoderSample>> {
        let mut samples = Vec::with_capacity(2 * pairs);
        for index in 0..pairs as u64 {
            samples.extend(self.pair(iteration, index)?);
        }
        Ok(samples)
    }
}

/// An encoder batch on the training device.
#[derive(Debug)]
pub struct EncoderBatch {
    /// N×3×side×side images.
    pub images: Tensor,
    /// N×5 multi-hot kinds.
    pub kinds: Tensor,
    /// N content ids.
    pub content_ids: Tensor,
}

impl EncoderBatch {
    /// Stacks `samples` (all of one side) on `device`.
    pub fn assemble(samples: &[EncoderSample], device: Device) -> Self {
        let count = samples.len() as i64;
        let side = samples.first().map_or(0, |s| i64::from(s.side));
        let images: Vec<f32> = samples
            .iter()
            .flat_map(|s| s.image.iter().copied())
            .collect();
        let kinds: Vec<f32> = samples.iter().flat_map(|s| s.kinds).collect();
        let ids: Vec<i64> = samples.iter().map(|s| s.content_id).collect();
        Self {
            images: Tensor::from_slice(&images)
                .view([count, 3, side, side])
                .to_device(device),
            kinds: Tensor::from_slice(&kinds)
                .view([count, 5])
                .to_device(device),
            content_ids: Tensor::from_slice(&ids)
                .to_kind(Kind::Int64)
                .to_device(device),
        }
    }
}

#[cfg(test)]
mod tests;
