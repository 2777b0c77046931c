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
use tch::{Reduction, Tensor};

use crate::clearair::ClearAir;
use crate::priors::Priors;

/// Mean absolute error.
pub fn l1_loss(restored: &Tensor, target: &Tensor) -> Tensor {
    restored.l1_loss(target, Reduction::Mean)
}

/// Settings of the ICRM term.
#[derive(Clone, Debug, PartialEq)]
pub struct IcrmConfig {
    /// Whether to add the consistency term at all (off: the loss is plain L1, one pass).
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
    /// `l1 + α·consistency`: the scalar to backpropagate.
    pub total: Tensor,
    /// L1 between I_r and the clean image.
    pub l1: Tensor,
    /// `γ·mean((I_r^w − I_r^s)²)`, when ICRM is enabled.
    pub consistency: Option<Tensor>,
    /// I_r itself (N×3×H×W, with gradient), for logging metrics without another pass.
    pub restored: Tensor,
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

/// L1 plus, when enabled, the ICRM consistency term for one batch: `degraded` and `clean`
/// are N×3×H×W, `priors` belong to `degraded`. Runs the restorer once with gradient, and
/// twice more on a sub-crop for ICRM. Crop position, symmetry and jitter come from `rng`;
/// the strong augmentation's noise and the mask dropout from libtorch's generator.
///
/// I_r is detached before it is augmented: the consistency term trains the restorer's
/// response to the augmented inputs, and backpropagating into the first pass as well would
/// double the memory of a step for a term the paper weights at α·γ = 0.0125.
pub fn restoration_loss(
    model: &ClearAir,
    degraded: &Tensor,
    clean: &Tensor,
    priors: &Priors,
    config: &IcrmConfig,
    rng: &mut ChaCha8Rng,
) -> RestorationLoss {
    let region_masks = model.prepare_masks(&priors.masks, true);
    let restored = model.forward_with_region_masks(degraded, priors, &region_masks);
    let l1 = l1_loss(&restored, clean);
    if !config.enabled {
        return RestorationLoss {
            total: l1.shallow_clone(),
            l1,
            consistency: None,
            restored,
        };
    }

    let (_, _, height, width) = restored.size4().expect("restored is N×3×H×W");
    let (crop_height, crop_width) = match config.crop {
        Some(side) => (side.clamp(1, height), side.clamp(1, width)),
        None => (height, width),
    };
    let top = rng.gen_range(0..=height - crop_height);
    let left = rng.gen_range(0..=width - crop_width);
    let crop = |t: &Tensor| t.narrow(2, top, crop_height).narrow(3, left, crop_width);
    let symmetry = Dihedral::sample(rng);
    let contrast = 1.0 + rng.gen_range(-1.0..=1.0) * config.contrast;
    let brightness = rng.gen_range(-1.0..=1.0) * config.brightness;

    let weak = symmetry.apply(&crop(&restored.detach()));
    let masks = symmetry.apply(&crop(&region_masks));
    let mean = weak.mean_dim(&[1, 2, 3][..], true, None);
    let strong =
        (&weak - &mean) * contrast + &mean + brightness + weak.randn_like() * config.noise_sigma;
    let restore = |x: &Tensor| symmetry.invert(&model.forward_with_region_masks(x, priors, &masks));
    let difference = restore(&weak) - restore(&strong);
    let consistency = difference.square().mean(difference.kind()) * config.gamma;
    let total = &l1 + &consistency * config.alpha;
    RestorationLoss {
        total,
        l1,
        consistency: Some(consistency),
        restored,
    }
}

#[cfg(test)]
mod tests;
