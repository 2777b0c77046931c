//! Training samples, drawn reproducibly from photos held in memory.
//!
//! A restorer sample mirrors what the mesh does with an upload: a *context* window of a
//! photo (the "image" the priors see) is flipped/rotated, degraded, rounded to 8 bits (the
//! orchestrator sends RGB8), and its priors are computed from those bytes by the services'
//! backends; the restorer then trains on a *crop* of the context with the matching part of
//! the masks, as the restoration service restores tiles of an image whose priors were
//! computed whole. An encoder sample is a photo window at a random scale, degraded at full
//! resolution and then scaled down (area average) as the degradation service scales its
//! input, twice with different degradations so F_c can learn to ignore them.
//!
//! Every random choice comes from [`keyed_rng`] with the sample's (iteration, index), so a
//! batch is a pure function of (photos, settings, seed, iteration).

use std::sync::Arc;

use clearair_imaging::Rgb8Image;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::error::{Result, TrainError};
use crate::mix::{DegradationMix, apply_recipe, multi_hot};
use crate::photos::{Photo, PixelSymmetry, fit_long_side, image_to_tensor, tensor_to_image};
use crate::priors::{
    CpuPriorBackends, ENCODER_MAX_SIDE, PriorDropout, embed, neutral_masks, neutral_quality,
    stack_masks, stack_quality,
};
use crate::seeding::{Purpose, keyed_rng};

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

/// Settings of restorer samples.
#[derive(Clone, Debug, PartialEq)]
pub struct RestorerSampling {
    /// Side of the square crop the restorer trains on.
    pub crop: u32,
    /// Side of the square window the priors are computed on (at least `crop`).
    pub context: u32,
    /// Which degradations samples get.
    pub mix: DegradationMix,
    /// Probability that each prior is replaced by its neutral value.
    pub prior_dropout: f64,
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
    /// The degraded context as the encoder sees it (long side ≤ 256), planar.
    pub encoder_input: Vec<f32>,
    /// Side of `encoder_input`.
    pub encoder_side: u32,
    /// F_q (neutral when dropped or refused).
    pub quality: Vec<f32>,
    /// Masks over the crop, `mask_count × crop × crop` floats.
    pub masks: Vec<f32>,
    /// Number of masks.
    pub mask_count: u32,
    /// Which priors were replaced by neutral values.
    pub dropout: PriorDropout,
    /// Multi-hot degradation kinds.
    pub kinds: [f32; 5],
}

/// Draws restorer samples.
#[derive(Debug, Clone)]
pub struct RestorerSampler {
    photos: Arc<Vec<Photo>>,
    priors: Arc<CpuPriorBackends>,
    settings: RestorerSampling,
    seed: u64,
}

impl RestorerSampler {
    /// A sampler over `photos`; the context must fit in every photo and hold the crop.
    pub fn new(
        photos: Arc<Vec<Photo>>,
        priors: Arc<CpuPriorBackends>,
        settings: RestorerSampling,
        seed: u64,
    ) -> Result<Self> {
        let smallest = smallest_side(&photos);
        if settings.crop < 16 || settings.crop > settings.context || settings.context > smallest {
            return Err(TrainError::Setting(format!(
                "need 16 ≤ crop ({}) ≤ context ({}) ≤ the smallest photo side ({smallest})",
                settings.crop, settings.context
            )));
        }
        Ok(Self {
            photos,
            priors,
            settings,
            seed,
        })
    }

    /// The sampling settings.
    pub fn settings(&self) -> &RestorerSampling {
        &self.settings
    }

    /// Sample `index` of iteration `iteration`.
    pub fn sample(&self, iteration: u64, index: u64) -> Result<RestorerSample> {
        let RestorerSampling {
            crop,
            context,
            ref mix,
            prior_dropout,
        } = self.settings;
        let mut rng = keyed_rng(self.seed, Purpose::RestorerSample, iteration, index);
        let photo = &self.photos[rng.gen_range(0..self.photos.len())];
        let window =
            random_symmetry(&mut rng).apply(&random_window(&photo.image, context, &mut rng)?);
        let recipe = mix.sample(&mut rng);
        let degraded =
            tensor_to_image(&apply_recipe(&recipe, &image_to_tensor(&window), &mut rng)?)?;
        let priors = self.priors.compute(&degraded)?;
        let dropout = PriorDropout::sample(prior_dropout, &mut rng);
        let x = rng.gen_range(0..=context - crop);
        let y = rng.gen_range(0..=context - crop);

        let encoder_view = fit_long_side(&degraded, ENCODER_MAX_SIDE)?;
        let quality = if dropout.quality {
            neutral_quality(priors.quality.len())
        } else {
            priors.quality
        };
        let masks = if dropout.masks {
            neutral_masks(crop, crop)
        } else {
            priors.masks
        };
        let (mask_x, mask_y) = if dropout.masks { (0, 0) } else { (x, y) };
        Ok(RestorerSample {
            crop,
            degraded: degraded.crop(x, y, crop, crop)?.to_planar_f32(),
            clean: window.crop(x, y, crop, crop)?.to_planar_f32(),
            encoder_side: encoder_view.width(),
            encoder_input: encoder_view.to_planar_f32(),
            quality,
            mask_count: masks.count(),
            masks: masks.window_planes(mask_x, mask_y, crop, crop),
            dropout,
            kinds: multi_hot(&recipe),
        })
    }

    /// All samples of iteration `iteration`.
    pub fn batch(&self, iteration: u64, batch_size: usize) -> Result<Vec<RestorerSample>> {
        (0..batch_size as u64)
            .map(|index| self.sample(iteration, index))
            .collect()
    }
}

/// A restorer batch on the training device, with the encoder's F_c/F_d filled in.
#[derive(Debug)]
pub struct RestorerBatch {
    /// N×3×crop×crop degraded crops.
    pub degraded: Tensor,
    /// N×3×crop×crop clean crops.
    pub clean: Tensor,
    /// The priors.
    pub priors: clearair_model::Priors,
}

impl RestorerBatch {
    /// Stacks `samples` on `device` and embeds their contexts with `encoder`.
    pub fn assemble(
        samples: &[RestorerSample],
        encoder: &clearair_model::DegradationEncoder,
        device: Device,
    ) -> Result<Self> {
        let first = samples
            .first()
            .ok_or_else(|| TrainError::Setting("empty batch".into()))?;
        let crop = i64::from(first.crop);
        let planar = |pick: fn(&RestorerSample) -> &Vec<f32>, side: i64| {
            let flat: Vec<f32> = samples
                .iter()
                .flat_map(|s| pick(s).iter().copied())
                .collect();
            Tensor::from_slice(&flat)
                .view([samples.len() as i64, 3, side, side])
                .to_device(device)
        };
        let encoder_input = planar(|s| &s.encoder_input, i64::from(first.encoder_side));
        let dropped: Vec<bool> = samples.iter().map(|s| s.dropout.embeddings).collect();
        let dropped = Tensor::from_slice(&dropped);
        let (content, degradation) = embed(encoder, &encoder_input, Some(&dropped));
        let masks: Vec<(Vec<f32>, u32)> = samples
            .iter()
            .map(|s| (s.masks.clone(), s.mask_count))
            .collect();
        let quality: Vec<Vec<f32>> = samples.iter().map(|s| s.quality.clone()).collect();
        Ok(Self {
            degraded: planar(|s| &s.degraded, crop),
            clean: planar(|s| &s.clean, crop),
            priors: clearair_model::Priors {
                quality: stack_quality(&quality, device),
                masks: stack_masks(&masks, first.crop, first.crop).to_device(device),
                content,
                degradation,
            },
        })
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
