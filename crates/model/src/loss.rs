//! Training losses of the restorer: L1 to the clean image plus ClearAIR's internal
//! consistency term (ICRM), `total = L1 + α·γ·mean((I_r^w − I_r^s)²)`.
//!
//! ICRM re-restores the restored output I_r twice: under a weak augmentation w (a random
//! flip/rot90, invertible) and under a strong one s (w plus photometric perturbation: small
//! Gaussian noise and brightness/contrast jitter). Both results are mapped back by inverting
//! the geometric part and asked to agree, which teaches the restorer to give the same answer
//! for the same structure whatever the nuisance, without extra labels.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Reduction, Tensor};

use crate::clearair::ClearAirNet;
use crate::priors::Priors;

/// Mean absolute error.
pub fn l1_loss(restored: &Tensor, target: &Tensor) -> Tensor {
    restored.l1_loss(target, Reduction::Mean)
}

/// Negative PSNR (dB, data range 1) per image, averaged over the batch: the evaluation's own
/// metric as a loss. Unlike L1 it weights every image by its own error level, so easy
/// (nearly clean) images keep pulling towards the identity instead of being drowned by the
/// large errors of hard ones.
pub fn psnr_loss(restored: &Tensor, target: &Tensor) -> Tensor {
    psnr_loss_over_floor(restored, target, 1e-10)
}

/// MSE of each image (N values).
fn squared_error_per_image(restored: &Tensor, target: &Tensor) -> Tensor {
    (restored - target)
        .square()
        .mean_dim(&[1, 2, 3][..], false, None)
}

/// log10(MSE + `floor`) of each image (N values).
fn log_error_per_image(restored: &Tensor, target: &Tensor, floor: f64) -> Tensor {
    (squared_error_per_image(restored, target) + floor).log10()
}

/// 10·log10(MSE + `floor`) per image, averaged over the batch.
fn psnr_loss_over_floor(restored: &Tensor, target: &Tensor, floor: f64) -> Tensor {
    log_error_per_image(restored, target, floor).mean(Kind::Float) * 10.0
}

/// Where [`PixelLoss::PsnrCapped`] stops rewarding an image: 40 dB, two above the clean
/// row's goal (38 dB).
pub const PSNR_LOSS_CEILING_DB: f64 = 40.0;

/// [`psnr_loss`] saturating at `ceiling_db`: −10·log10(MSE + 10^(−ceiling/10)) per image.
/// The plain loss weights an image's squared error by 1/MSE, so an image restored almost
/// perfectly (a clean crop at 50 dB and more) pulls on the weights hundreds of times harder
/// than a rainy one at 22 dB and, under gradient clipping, sets the direction of the whole
/// step; past the ceiling the weight stops growing (1/(MSE + floor) ≤ 1/floor).
pub fn psnr_loss_capped(restored: &Tensor, target: &Tensor, ceiling_db: f64) -> Tensor {
    psnr_loss_over_floor(restored, target, 10f64.powf(-ceiling_db / 10.0))
}

/// Mean absolute difference of the two images' spectra: the real and imaginary parts of the
/// orthonormal 2-D real FFT of `restored − target` (per image and channel), averaged. Unlike
/// a pixel loss, whose pull on an error spread thinly over many high frequencies (what blur
/// leaves) is as small as the error, it pulls on every frequency's error with the same
/// strength whatever its size, as the frequency loss of deblurring networks (MIMO-UNet,
/// Stripformer) does. With the orthonormal transform an error of a given size per pixel has
/// coefficients of that size, so the term is on L1's scale.
pub fn frequency_l1_loss(restored: &Tensor, target: &Tensor) -> Tensor {
    frequency_l1_loss_weighted(restored, target, None)
}

/// [`frequency_l1_loss`] with each image's mean multiplied by its entry of `per_image` (N
/// values; None: 1 each) before the batch mean: a training window's kind can then be spared
/// the term (0), as rain, whose remnants it sharpens, or given it several times over, as blur.
pub fn frequency_l1_loss_weighted(
    restored: &Tensor,
    target: &Tensor,
    per_image: Option<&Tensor>,
) -> Tensor {
    let spectrum = (restored - target)
        .fft_rfft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho")
        .view_as_real()
        .abs();
    match per_image {
        None => spectrum.mean(Kind::Float),
        Some(weights) => {
            let each = spectrum.flatten(1, -1).mean_dim(1, false, Kind::Float);
            (each * weights.to_kind(Kind::Float).view([-1])).mean(Kind::Float)
        }
    }
}

/// Where [`keep_loss`] stops telling images apart: 60 dB, so an input equal to its target
/// (a clean window) asks for its output at 60 dB, not at an infinite PSNR.
pub const KEEP_LOSS_CEILING_DB: f64 = 60.0;

/// How far, per image, `restored` falls below `input` against `target`, in dB of PSNR (each
/// capped at [`KEEP_LOSS_CEILING_DB`]), averaged over the batch; nothing where the output is
/// at least as close to the target as its input. For a refiner, whose input is the restorer's
/// output, it is what the refiner takes away from any window; for a restorer, what it makes
/// worse than the upload.
pub fn keep_loss(input: &Tensor, restored: &Tensor, target: &Tensor) -> Tensor {
    keep_loss_capped(input, restored, target, KEEP_LOSS_CEILING_DB)
}

/// [`keep_loss`] with both PSNRs capped at `ceiling_db` instead (softly: the floor is added
/// to each squared error). A restorer's clean window (its input equal to the target) then
/// pays little once its output is above the ceiling — at 40 dB, 1.2 dB for an output at
/// 45 dB where the default pays 15 — so it is no longer pulled towards the exact identity,
/// while a degraded window the output makes worse still costs about every decibel lost.
pub fn keep_loss_capped(
    input: &Tensor,
    restored: &Tensor,
    target: &Tensor,
    ceiling_db: f64,
) -> Tensor {
    keep_loss_weighted(input, restored, target, ceiling_db, None)
}

/// [`keep_loss_capped`] with each image's decibels lost multiplied by its entry of
/// `per_image` (N values; None: 1 each) before the batch mean: a training window's kind can
/// then be spared the keep loss (0) or charged it several times over.
pub fn keep_loss_weighted(
    input: &Tensor,
    restored: &Tensor,
    target: &Tensor,
    ceiling_db: f64,
    per_image: Option<&Tensor>,
) -> Tensor {
    let floor = 10f64.powf(-ceiling_db / 10.0);
    let log_error = |image: &Tensor| log_error_per_image(image, target, floor);
    let lost = ((log_error(restored) - log_error(&input.detach())) * 10.0).relu();
    match per_image {
        None => lost.mean(Kind::Float),
        Some(weights) => (lost * weights.to_kind(Kind::Float).view([-1])).mean(Kind::Float),
    }
}

/// What the keep loss measures a network's output against, from its `input`: the input
/// itself, or for a stage that [`sees_upload`](crate::ClearAirConfig::sees_upload), per
/// image, whichever of its two inputs (the restorer's output, the upload) is nearer `target`.
/// Such a stage is then charged for falling below the better of what it was given: below the
/// upload where the restorer harmed it, below the restorer's output where that helped.
pub fn keep_reference(config: &crate::ClearAirConfig, input: &Tensor, target: &Tensor) -> Tensor {
    if !config.sees_upload {
        return input.shallow_clone();
    }
    let (first, upload) = (input.narrow(1, 0, 3), input.narrow(1, 3, 3));
    let error = |image: &Tensor| squared_error_per_image(image, target);
    let first_is_nearer = error(&first).le_tensor(&error(&upload)).view([-1, 1, 1, 1]);
    first.where_self(&first_is_nearer, &upload).detach()
}

/// Multipliers of the per-image terms of [`PixelObjective::compute_weighted_from`], each N
/// values (None: 1 for every image).
#[derive(Clone, Copy, Debug, Default)]
pub struct PerImageWeights<'a> {
    /// Of the keep loss ([`keep_loss_weighted`]).
    pub keep: Option<&'a Tensor>,
    /// Of the frequency loss ([`frequency_l1_loss_weighted`]).
    pub frequency: Option<&'a Tensor>,
}

/// How the restored image is compared with the clean one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PixelLoss {
    /// Mean absolute error (the paper's).
    #[default]
    L1,
    /// [`psnr_loss`], scaled so its gradient at typical errors is of L1's order.
    Psnr,
    /// The scaled PSNR loss plus L1: per-image PSNR keeps nearly clean images near the
    /// identity, while L1 keeps the pull of images with large errors (haze, low light), whose
    /// PSNR gradient shrinks as 1/MSE.
    PsnrL1,
    /// [`psnr_loss_capped`] at [`PSNR_LOSS_CEILING_DB`], scaled as `Psnr`: images past the
    /// ceiling (in practice the clean crops) stop outweighing the hard ones.
    PsnrCapped,
}

impl PixelLoss {
    /// The loss of `restored` against `target` (both N×3×H×W), capped losses at
    /// [`PSNR_LOSS_CEILING_DB`].
    pub fn compute(self, restored: &Tensor, target: &Tensor) -> Tensor {
        PixelObjective::from(self).compute(restored, target)
    }
}

/// The pixel loss with its setting: the ceiling of [`PixelLoss::PsnrCapped`] (the other
/// losses ignore it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelObjective {
    /// How the restored image is compared with the clean one.
    pub loss: PixelLoss,
    /// Where [`PixelLoss::PsnrCapped`] stops rewarding an image, in dB. Lower ceilings weigh
    /// nearly clean images less against degraded ones: at 40 dB a clean crop restored at 45 dB
    /// pulls on the weights about 8 times harder per unit of squared error than a blurred one
    /// at 30 dB, at 32 dB about 2.5 times.
    pub ceiling_db: f64,
    /// Weight of [`frequency_l1_loss`] added to the pixel loss (0: none, the default).
    pub frequency_weight: f64,
    /// Weight of [`keep_loss`], scaled as the PSNR losses (0.01 per dB): at 1 a decibel an
    /// image loses below its input costs as much as one the loss gains elsewhere (0, the
    /// default: none).
    pub keep_weight: f64,
    /// Where [`keep_loss_capped`] stops telling images apart, in dB
    /// ([`KEEP_LOSS_CEILING_DB`] by default).
    pub keep_ceiling_db: f64,
}

impl From<PixelLoss> for PixelObjective {
    fn from(loss: PixelLoss) -> Self {
        Self {
            loss,
            ceiling_db: PSNR_LOSS_CEILING_DB,
            frequency_weight: 0.0,
            keep_weight: 0.0,
            keep_ceiling_db: KEEP_LOSS_CEILING_DB,
        }
    }
}

impl PixelObjective {
    /// The loss of `restored`, made from `input`, against `target` (all N×3×H×W): the pixel
    /// and frequency losses, plus [`keep_loss`] when weighted.
    pub fn compute_from(&self, input: &Tensor, restored: &Tensor, target: &Tensor) -> Tensor {
        self.compute_weighted_from(input, restored, target, PerImageWeights::default())
    }

    /// [`PixelObjective::compute_from`] with the keep and frequency terms of each image
    /// multiplied by its entry of `per_image` (as [`keep_loss_weighted`] and
    /// [`frequency_l1_loss_weighted`]).
    pub fn compute_weighted_from(
        &self,
        input: &Tensor,
        restored: &Tensor,
        target: &Tensor,
        per_image: PerImageWeights<'_>,
    ) -> Tensor {
        let loss = self.compute_weighted(restored, target, per_image.frequency);
        if self.keep_weight == 0.0 {
            loss
        } else {
            loss + keep_loss_weighted(
                input,
                restored,
                target,
                self.keep_ceiling_db,
                per_image.keep,
            ) * (self.keep_weight * 0.01)
        }
    }

    /// The loss of `restored` against `target` (both N×3×H×W), without the term that needs
    /// the input ([`PixelObjective::compute_from`]).
    pub fn compute(&self, restored: &Tensor, target: &Tensor) -> Tensor {
        self.compute_weighted(restored, target, None)
    }

    /// [`PixelObjective::compute`] with each image's frequency term multiplied by its entry
    /// of `frequency_per_image` (N values; None: 1 each).
    fn compute_weighted(
        &self,
        restored: &Tensor,
        target: &Tensor,
        frequency_per_image: Option<&Tensor>,
    ) -> Tensor {
        let pixel = self.pixel(restored, target);
        if self.frequency_weight == 0.0 {
            pixel
        } else {
            pixel
                + frequency_l1_loss_weighted(restored, target, frequency_per_image)
                    * self.frequency_weight
        }
    }

    fn pixel(&self, restored: &Tensor, target: &Tensor) -> Tensor {
        match self.loss {
            PixelLoss::L1 => l1_loss(restored, target),
            // d(−PSNR)/dMSE = 10/(ln 10 · MSE): at an MSE of 1e-3 (30 dB) that is ~4300× the
            // MSE gradient; 1/100 brings it near L1's scale so the learning rate carries over.
            PixelLoss::Psnr => psnr_loss(restored, target) * 0.01,
            PixelLoss::PsnrL1 => psnr_loss(restored, target) * 0.01 + l1_loss(restored, target),
            PixelLoss::PsnrCapped => psnr_loss_capped(restored, target, self.ceiling_db) * 0.01,
        }
    }
}

/// Settings of the ICRM term.
#[derive(Clone, Debug, PartialEq)]
pub struct IcrmConfig {
    /// Whether to add the consistency term at all (off: the loss is the pixel loss, one pass).
    pub enabled: bool,
    /// Weight α of the consistency term in the total (paper: 0.25).
    pub alpha: f64,
    /// Scale γ inside the consistency term (paper: 0.05).
    pub gamma: f64,
    /// Side of the random square sub-crop of I_r the two extra passes run on; `None` runs
    /// them on the whole image (three full forward passes per step).
    pub crop: Option<i64>,
    /// Standard deviation of the strong augmentation's Gaussian noise (data range 1).
    pub noise_sigma: f64,
    /// Largest brightness offset of the strong augmentation.
    pub brightness: f64,
    /// Largest relative contrast change of the strong augmentation.
    pub contrast: f64,
}

impl Default for IcrmConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            alpha: 0.25,
            gamma: 0.05,
            crop: Some(64),
            noise_sigma: 0.02,
            brightness: 0.05,
            contrast: 0.1,
        }
    }
}

/// The loss of one training step and its parts.
#[derive(Debug)]
pub struct RestorationLoss {
    /// `pixel + α·consistency`: the scalar to backpropagate.
    pub total: Tensor,
    /// The pixel objective between I_r and the clean image (its frequency term included).
    pub pixel: Tensor,
    /// `γ·mean((I_r^w − I_r^s)²)`, when ICRM is enabled.
    pub consistency: Option<Tensor>,
    /// I_r itself (N×3×H×W, with gradient), for logging metrics without another pass.
    pub restored: Tensor,
}

/// The random choices of one ICRM term: where its sub-crop is, which symmetry, how strong
/// the photometric change, and the strong view's noise.
#[derive(Debug)]
pub struct IcrmDraw {
    /// Row of the sub-crop.
    pub top: i64,
    /// Column of the sub-crop.
    pub left: i64,
    /// Rows of the sub-crop.
    pub height: i64,
    /// Columns of the sub-crop.
    pub width: i64,
    /// The weak augmentation.
    pub symmetry: Dihedral,
    /// Contrast factor of the strong view.
    pub contrast: f64,
    /// Brightness offset of the strong view.
    pub brightness: f64,
    /// N×3×h×w Gaussian noise (σ applied) of the strong view, in the augmented geometry.
    pub noise: Tensor,
}

/// Every random choice of one step's loss, drawn up front: the step can then be split into
/// shards computed on several threads (each gets the same draws for its rows) and the result
/// does not depend on which thread drew first.
#[derive(Debug)]
pub struct LossDraws {
    /// The region masks after mask dropout (N×M'×H×W, see [`ClearAirNet::prepare_masks`]).
    pub region_masks: Tensor,
    /// The ICRM draw, when the term is on this step.
    pub icrm: Option<IcrmDraw>,
    /// Multipliers of each image's keep loss (N values, from the kind of window it was
    /// drawn from; [`keep_loss_weighted`]). None: 1 for every image.
    pub keep_per_image: Option<Tensor>,
    /// Multipliers of each image's frequency loss, likewise
    /// ([`frequency_l1_loss_weighted`]). None: 1 for every image.
    pub frequency_per_image: Option<Tensor>,
}

impl LossDraws {
    /// Draws for a batch of `degraded` (N×3×H×W) images with `priors`: mask dropout and the
    /// ICRM noise from libtorch's generator, the rest from `rng`.
    pub fn draw(
        model: &ClearAirNet,
        degraded: &Tensor,
        priors: &Priors,
        config: &IcrmConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let region_masks = model.prepare_masks(&priors.masks, true);
        if !config.enabled {
            return Self {
                region_masks,
                icrm: None,
                keep_per_image: None,
                frequency_per_image: None,
            };
        }
        let (batch, _, height, width) = degraded.size4().expect("degraded is N×3×H×W");
        let (crop_height, crop_width) = match config.crop {
            Some(side) => (side.clamp(1, height), side.clamp(1, width)),
            None => (height, width),
        };
        let top = rng.gen_range(0..=height - crop_height);
        let left = rng.gen_range(0..=width - crop_width);
        let symmetry = Dihedral::sample(rng);
        let contrast = 1.0 + rng.gen_range(-1.0..=1.0) * config.contrast;
        let brightness = rng.gen_range(-1.0..=1.0) * config.brightness;
        let (noise_height, noise_width) = if symmetry.quarter_turns % 2 == 1 {
            (crop_width, crop_height)
        } else {
            (crop_height, crop_width)
        };
        let noise = Tensor::randn(
            [batch, 3, noise_height, noise_width],
            (degraded.kind(), degraded.device()),
        ) * config.noise_sigma;
        Self {
            region_masks,
            icrm: Some(IcrmDraw {
                top,
                left,
                height: crop_height,
                width: crop_width,
                symmetry,
                contrast,
                brightness,
                noise,
            }),
            keep_per_image: None,
            frequency_per_image: None,
        }
    }

    /// The draws of rows `start..start + length` of the batch.
    pub fn rows(&self, start: i64, length: i64) -> Self {
        Self {
            region_masks: self.region_masks.narrow(0, start, length),
            icrm: self.icrm.as_ref().map(|draw| IcrmDraw {
                noise: draw.noise.narrow(0, start, length),
                ..*draw
            }),
            keep_per_image: self
                .keep_per_image
                .as_ref()
                .map(|weights| weights.narrow(0, start, length)),
            frequency_per_image: self
                .frequency_per_image
                .as_ref()
                .map(|weights| weights.narrow(0, start, length)),
        }
    }
}

/// The pixel loss plus, when enabled, the ICRM consistency term for one batch: `degraded`
/// (N×3×H×W, or N×6×H×W for a stage that sees the upload) and `clean` (N×3×H×W), `priors`
/// belong to `degraded`. Runs the restorer once with
/// gradient, and twice more on a sub-crop for ICRM. Every random choice comes from `rng` and
/// libtorch's generator (see [`LossDraws::draw`]).
pub fn restoration_loss(
    model: &ClearAirNet,
    degraded: &Tensor,
    clean: &Tensor,
    priors: &Priors,
    config: &IcrmConfig,
    rng: &mut ChaCha8Rng,
) -> RestorationLoss {
    let draws = LossDraws::draw(model, degraded, priors, config, rng);
    restoration_loss_with(
        model,
        degraded,
        clean,
        priors,
        &draws,
        config,
        PixelLoss::L1.into(),
    )
}

/// [`restoration_loss`] with its random choices already drawn and a choice of pixel loss.
///
/// I_r is detached before it is augmented: the consistency term trains the restorer's
/// response to the augmented inputs, and backpropagating into the first pass as well would
/// double the memory of a step for a term the paper weights at α·γ = 0.0125.
pub fn restoration_loss_with(
    model: &ClearAirNet,
    degraded: &Tensor,
    clean: &Tensor,
    priors: &Priors,
    draws: &LossDraws,
    config: &IcrmConfig,
    pixel: PixelObjective,
) -> RestorationLoss {
    let restored = model.forward_with_region_masks(degraded, priors, &draws.region_masks);
    let pixel_loss = pixel.compute_weighted_from(
        &keep_reference(model.config(), degraded, clean),
        &restored,
        clean,
        PerImageWeights {
            keep: draws.keep_per_image.as_ref(),
            frequency: draws.frequency_per_image.as_ref(),
        },
    );
    let Some(draw) = &draws.icrm else {
        return RestorationLoss {
            total: pixel_loss.shallow_clone(),
            pixel: pixel_loss,
            consistency: None,
            restored,
        };
    };
    let crop = |t: &Tensor| {
        t.narrow(2, draw.top, draw.height)
            .narrow(3, draw.left, draw.width)
    };
    let weak = draw.symmetry.apply(&crop(&restored.detach()));
    let masks = draw.symmetry.apply(&crop(&draws.region_masks));
    let mean = weak.mean_dim(&[1, 2, 3][..], true, None);
    let strong = (&weak - &mean) * draw.contrast + &mean + draw.brightness + &draw.noise;
    // A stage that sees the upload reads the same crop of it beside each view, unaugmented:
    // the consistency asked for is with its own output, not with what was sent.
    let upload = model
        .config()
        .sees_upload
        .then(|| draw.symmetry.apply(&crop(&degraded.narrow(1, 3, 3))));
    let restore = |x: &Tensor| {
        let input = match &upload {
            Some(upload) => Tensor::cat(&[x, upload], 1),
            None => x.shallow_clone(),
        };
        draw.symmetry
            .invert(&model.forward_with_region_masks(&input, priors, &masks))
    };
    let difference = restore(&weak) - restore(&strong);
    let consistency = difference.square().mean(difference.kind()) * config.gamma;
    let total = &pixel_loss + &consistency * config.alpha;
    RestorationLoss {
        total,
        pixel: pixel_loss,
        consistency: Some(consistency),
        restored,
    }
}

/// One of the eight flip/rot90 symmetries of the square, applied to the last two axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dihedral {
    /// Mirror left-right first.
    pub flip: bool,
    /// Then rotate by this many quarter turns (0–3).
    pub quarter_turns: i64,
}

impl Dihedral {
    /// A uniformly random symmetry.
    pub fn sample(rng: &mut ChaCha8Rng) -> Self {
        Self {
            flip: rng.gen_bool(0.5),
            quarter_turns: rng.gen_range(0..4),
        }
    }

    /// Applies the symmetry to an N×C×H×W tensor.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let flipped = if self.flip {
            x.flip([3])
        } else {
            x.shallow_clone()
        };
        flipped.rot90(self.quarter_turns, [2, 3])
    }

    /// Undoes [`Dihedral::apply`].
    pub fn invert(&self, x: &Tensor) -> Tensor {
        let unrotated = x.rot90(-self.quarter_turns, [2, 3]);
        if self.flip {
            unrotated.flip([3])
        } else {
            unrotated
        }
    }
}

#[cfg(test)]
mod tests;
