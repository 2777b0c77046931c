//! Tiled inference of the restorer: the one implementation the restoration service and
//! training's evaluation share, so what evaluation measures is what the mesh serves.
//!
//! Above the tile side an image is cut into overlapping tiles ([`TilePlan`]); each tile goes
//! through the network with the global priors (F_q, F_c, F_d) and its own window of the region
//! masks, and the tiles are blended back with feathered overlaps ([`TileBlender`]). Memory
//! stays bounded by the tile whatever the image size.

use std::ops::ControlFlow;

use clearair_imaging::{ImagingError, PackedMasks, Rgb8Image, TileBlender, TilePlan};
use clearair_model::{ModelError, Priors};
use tch::{Device, Tensor};

use crate::error::BackendError;

/// The restoration service's default tile side.
pub const DEFAULT_TILE_SIZE: u32 = 512;
/// The restoration service's default overlap between neighbouring tiles.
pub const DEFAULT_TILE_OVERLAP: u32 = 32;
/// The smallest tile side accepted.
pub const MIN_TILE_SIZE: u32 = 32;

/// How an image is cut into tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    size: u32,
    overlap: u32,
}

impl Default for Tiling {
    fn default() -> Self {
        Self {
            size: DEFAULT_TILE_SIZE,
            overlap: DEFAULT_TILE_OVERLAP,
        }
    }
}

impl Tiling {
    /// Tiles of `size` pixels a side overlapping by `overlap`; the side must be at least
    /// [`MIN_TILE_SIZE`] and more than twice the overlap.
    pub fn new(size: u32, overlap: u32) -> Result<Self, BackendError> {
        if size < MIN_TILE_SIZE || overlap.saturating_mul(2) >= size {
            return Err(BackendError::load(
                "restorer tiling",
                format!(
                    "tile_size {size} must be at least {MIN_TILE_SIZE} and more than twice \
                     tile_overlap {overlap}"
                ),
            ));
        }
        Ok(Self { size, overlap })
    }

    /// The tile side.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The overlap between neighbouring tiles.
    pub fn overlap(&self) -> u32 {
        self.overlap
    }
}

/// The priors that hold for the whole image: F_q, F_c and F_d as 1×width rows on the device
/// the network runs on.
#[derive(Debug)]
pub struct GlobalPriors {
    /// F_q, 1×Q.
    pub quality: Tensor,
    /// F_c, 1×512.
    pub content: Tensor,
    /// F_d, 1×512.
    pub degradation: Tensor,
}

impl GlobalPriors {
    /// The three vectors as 1×width rows on `device`.
    pub fn from_vectors(
        quality: &[f32],
        content: &[f32],
        degradation: &[f32],
        device: Device,
    ) -> Self {
        let row = |values: &[f32]| {
            Tensor::from_slice(values)
                .view([1, values.len() as i64])
                .to_device(device)
        };
        Self {
            quality: row(quality),
            content: row(content),
            degradation: row(degradation),
        }
    }
}

/// The restorer's neutral value of each prior: what it is steered by when a prior is absent
/// (its service failed and the orchestrator left it out, or a caller sends the image alone).
/// Training substitutes the same values at random (prior dropout), so the weights know them.
pub mod neutral {
    use clearair_imaging::PackedMasks;

    /// F_q, F_c or F_d of `width` values: all zeros.
    pub fn vector(width: usize) -> Vec<f32> {
        vec![0.0; width]
    }

    /// The masks: one mask covering the whole image.
    pub fn masks(width: u32, height: u32) -> PackedMasks {
        let labels = vec![0u8; width as usize * height as usize];
        PackedMasks::from_label_map(width, height, &labels, 1, &[1.0])
            .expect("one full mask is always valid")
    }
}

/// The masks of the window at (x, y) of `width × height`, as 1×M×h×w floats on the CPU.
pub fn window_masks(masks: &PackedMasks, x: u32, y: u32, width: u32, height: u32) -> Tensor {
    Tensor::from_slice(&masks.window_planes(x, y, width, height)).view([
        1,
        i64::from(masks.count()),
        i64::from(height),
        i64::from(width),
    ])
}

/// Restores `image` tile by tile: `forward` runs the network on one 1×3×h×w tile with its
/// priors (the caller decides how the network is shared and whether gradients are off).
/// Returns the restored image, rounded to 8 bits, and the number of tiles.
///
/// An image the plan refuses (empty) is the caller's fault; a tile that cannot be cut or
/// blended after planning, or an output of the wrong size, is ours
/// ([`BackendError::Assembly`]).
pub fn restore_in_tiles<F>(
    image: &Rgb8Image,
    masks: &PackedMasks,
    priors: &GlobalPriors,
    tiling: Tiling,
    device: Device,
    forward: F,
) -> Result<(Rgb8Image, u32), BackendError>
where
    F: FnMut(&Tensor, &Priors) -> Result<Tensor, ModelError>,
{
    let restored =
        restore_in_tiles_watched(image, masks, priors, tiling, device, forward, |_, _| {
            ControlFlow::Continue(())
        })?;
    Ok(restored.expect("a watcher that always continues never stops the restore"))
}

/// [`restore_in_tiles`] that tells `after_tile` of every tile restored (tiles done, tiles in
/// all) and stops between tiles, returning `None`, when it answers [`ControlFlow::Break`]:
/// the caller left or its deadline passed, so the rest of the image is not worth the time.
pub fn restore_in_tiles_watched<F, W>(
    image: &Rgb8Image,
    masks: &PackedMasks,
    priors: &GlobalPriors,
    tiling: Tiling,
    device: Device,
    mut forward: F,
    mut after_tile: W,
) -> Result<Option<(Rgb8Image, u32)>, BackendError>
where
    F: FnMut(&Tensor, &Priors) -> Result<Tensor, ModelError>,
    W: FnMut(u32, u32) -> ControlFlow<()>,
{
    for (field, expected, actual) in [
        ("width", image.width(), masks.width()),
        ("height", image.height(), masks.height()),
    ] {
        if expected != actual {
            return Err(BackendError::Image(ImagingError::InvalidMasks {
                field: field.to_owned(),
                expected: u64::from(expected),
                actual: u64::from(actual),
            }));
        }
    }
    let plan = TilePlan::new(image.width(), image.height(), tiling.size, tiling.overlap)?;
    let total = plan.tiles().len() as u32;
    let mut blender = TileBlender::new(&plan);
    for (index, tile) in plan.tiles().iter().enumerate() {
        let pixels = tile
            .crop_from(image)
            .map_err(BackendError::Assembly)?
            .to_planar_f32();
        let tile_image = Tensor::from_slice(&pixels)
            .view([1, 3, i64::from(tile.height), i64::from(tile.width)])
            .to_device(device);
        let tile_priors = Priors {
            quality: priors.quality.shallow_clone(),
            masks: window_masks(masks, tile.x, tile.y, tile.width, tile.height).to_device(device),
            content: priors.content.shallow_clone(),
            degradation: priors.degradation.shallow_clone(),
        };
        let restored =
            forward(&tile_image, &tile_priors).map_err(|source| BackendError::Model {
                model: "restoration",
                source,
            })?;
        let restored = restored
            .clamp(0.0, 1.0)
            .to_device(Device::Cpu)
            .flatten(0, -1);
        let restored = Vec::<f32>::try_from(restored).map_err(|error| BackendError::Model {
            model: "restoration",
            source: ModelError::Torch(error),
        })?;
        blender
            .add(index, &restored)
            .map_err(BackendError::Assembly)?;
        if after_tile(index as u32 + 1, total).is_break() {
            return Ok(None);
        }
    }
    let restored = blender.finish_rgb8().map_err(BackendError::Assembly)?;
    Ok(Some((restored, total)))
}

/// One forward pass of the restorer in `precision`: the tile and the priors cast to its kind
/// (the network's weights must already be in it), the output back in fp32.
pub fn forward_in(
    precision: crate::Precision,
    network: &clearair_model::ClearAirNet,
    tile: &Tensor,
    priors: &Priors,
) -> Result<Tensor, ModelError> {
    let kind = precision.kind();
    if kind == tch::Kind::Float {
        return tch::no_grad(|| network.forward_checked(tile, priors, false));
    }
    let cast = Priors {
        quality: priors.quality.to_kind(kind),
        masks: priors.masks.to_kind(kind),
        content: priors.content.to_kind(kind),
        degradation: priors.degradation.to_kind(kind),
    };
    tch::no_grad(|| {
        network
            .forward_checked(&tile.to_kind(kind), &cast, false)
            .map(|out| out.to_kind(tch::Kind::Float))
    })
}

/// The priors a restorer reads as "none given", for one 1×3×h×w `tile` on its device: zero
/// F_q, F_c and F_d of `network`'s widths and one mask over the whole tile — the values the
/// orchestrator substitutes for a failed service and prior dropout trains on.
pub fn neutral_tile_priors(network: &clearair_model::ClearAirNet, tile: &Tensor) -> Priors {
    let config = network.config();
    let size = tile.size();
    let (height, width) = (size[size.len() - 2], size[size.len() - 1]);
    let zeros = |width: i64| Tensor::zeros([1, width], (tch::Kind::Float, tile.device()));
    Priors {
        quality: zeros(config.quality_dim),
        masks: Tensor::ones([1, 1, height, width], (tch::Kind::Float, tile.device())),
        content: zeros(config.content_dim),
        degradation: zeros(config.degradation_dim),
    }
}

/// A second network run on the restorer's output, the priors it reads there (its manifest's
/// `refiner_priors`) and how much of its change this image keeps (its manifest's
/// `refiner_gate` read on the image's kind probabilities; 1 for an ungated refiner).
#[derive(Clone, Copy, Debug)]
pub struct Refiner<'a> {
    /// The refiner.
    pub network: &'a clearair_model::ClearAirNet,
    /// Neutral priors, or the tile's own, as the restorer reads them.
    pub priors: clearair_model::RefinerPriors,
    /// The share of the refiner's change kept, 0 to 1: at 0 the refiner does not run.
    pub share: f32,
    /// Geometric self-ensemble: the refiner runs on this many flips and transposes of its
    /// input (1, 2, 4 or 8; [`SELF_ENSEMBLE_SIZES`]) and the outputs, turned back, are
    /// averaged. Blur, noise and streaks of any angle stay what they were under these, so
    /// each pass is a fair guess and their mean a better one, at that many times the cost.
    pub ensemble: u8,
}

/// The self-ensemble sizes a refiner takes: the identity, then a horizontal flip, then the
/// vertical flips of both, then the transposes of all four (the eight symmetries of a square).
pub const SELF_ENSEMBLE_SIZES: [u8; 4] = [1, 2, 4, 8];

/// Whether `passes` is a self-ensemble size ([`SELF_ENSEMBLE_SIZES`]); the error says which
/// sizes there are, for the caller to put after the setting's name.
pub fn check_self_ensemble(passes: u8) -> Result<(), String> {
    if SELF_ENSEMBLE_SIZES.contains(&passes) {
        Ok(())
    } else {
        Err(format!(
            "a self-ensemble of {passes} passes; it takes 1, 2, 4 or 8"
        ))
    }
}

/// The `index`-th symmetry of the self-ensemble applied to an N×C×H×W tensor (`inverse`:
/// undone). Each symmetry is a transpose (indices 4–7) then flips; its inverse the same flips
/// then the transpose.
fn symmetry(tensor: &Tensor, index: u8, inverse: bool) -> Tensor {
    let flips: &[i64] = match index % 4 {
        0 => &[],
        1 => &[3],
        2 => &[2],
        _ => &[2, 3],
    };
    let transpose = index >= 4;
    let flip = |t: Tensor| if flips.is_empty() { t } else { t.flip(flips) };
    match (transpose, inverse) {
        (false, _) => flip(tensor.shallow_clone()),
        (true, false) => flip(tensor.transpose(2, 3)),
        (true, true) => flip(tensor.shallow_clone()).transpose(2, 3),
    }
}

impl<'a> Refiner<'a> {
    /// A refiner whose whole change is kept (no gate).
    pub fn ungated(
        network: &'a clearair_model::ClearAirNet,
        priors: clearair_model::RefinerPriors,
    ) -> Self {
        Self {
            network,
            priors,
            share: 1.0,
            ensemble: 1,
        }
    }

    /// The same refiner run as a self-ensemble of `ensemble` passes.
    pub fn with_ensemble(self, ensemble: u8) -> Self {
        Self { ensemble, ..self }
    }

    /// The refiner with the share `gate` gives an image of these kind `probabilities`
    /// (`None`: the degradation prior was absent or neutral); ungated without a gate.
    pub fn gated(
        network: &'a clearair_model::ClearAirNet,
        priors: clearair_model::RefinerPriors,
        gate: Option<&clearair_model::RefinerGate>,
        probabilities: Option<&[f32]>,
    ) -> Self {
        Self {
            network,
            priors,
            share: gate.map_or(1.0, |gate| gate.weight(probabilities)),
            ensemble: 1,
        }
    }

    /// The refiner keeping, of its share, what `gate` gives `upload` from the upload's blur
    /// effect read on its pixels (a fallback stage's `blur_gate`); as it is without a gate.
    pub fn behind_blur_gate(
        self,
        gate: Option<&clearair_model::BlurGate>,
        upload: &Rgb8Image,
    ) -> Self {
        match gate {
            None => self,
            Some(gate) => Self {
                share: self.share * gate.weight(clearair_imaging::sharpness::blur_effect(upload)),
                ..self
            },
        }
    }
}

/// `network` on the first `passes` symmetries of `input` ([`SELF_ENSEMBLE_SIZES`]) with
/// `priors` (the masks turned alike, the global priors as they are), each output turned back
/// and their mean returned: a geometric self-ensemble. One pass is [`forward_in`] itself.
pub fn forward_ensembled(
    precision: crate::Precision,
    network: &clearair_model::ClearAirNet,
    passes: u8,
    input: &Tensor,
    priors: &Priors,
) -> Result<Tensor, ModelError> {
    check_self_ensemble(passes).map_err(ModelError::Config)?;
    if passes == 1 {
        return forward_in(precision, network, input, priors);
    }
    let pass = |index: u8| -> Result<Tensor, ModelError> {
        let turned = Priors {
            masks: symmetry(&priors.masks, index, false),
            quality: priors.quality.shallow_clone(),
            content: priors.content.shallow_clone(),
            degradation: priors.degradation.shallow_clone(),
        };
        let output = forward_in(precision, network, &symmetry(input, index, false), &turned)?;
        Ok(symmetry(&output, index, true))
    };
    let mut mean = pass(0)?;
    for index in 1..passes {
        mean += pass(index)?;
    }
    Ok(mean / f64::from(passes))
}

/// The restorer on `tile` with its priors (a self-ensemble of `restorer_passes`, 1 for a
/// single pass), then, when there is one, the refiner on the restorer's output clamped to
/// [0, 1] (beside `tile` itself for a stage that sees the upload): with neutral priors
/// ([`neutral_tile_priors`]), a network that sees pixels only and behaves the same whatever
/// the priors said, or with the same priors as the restorer. A
/// gated refiner's change is scaled by its share; at share 0 it does not run and the
/// restorer's output is returned as it came. A refiner's self-ensemble runs it on each
/// symmetry of its input (the masks turned alike) and averages.
pub fn forward_refined(
    precision: crate::Precision,
    restorer: &clearair_model::ClearAirNet,
    restorer_passes: u8,
    refiner: Option<Refiner<'_>>,
    tile: &Tensor,
    priors: &Priors,
) -> Result<Tensor, ModelError> {
    let restored = forward_ensembled(precision, restorer, restorer_passes, tile, priors)?;
    match refiner {
        Some(refiner) if refiner.share > 0.0 => {
            let restored = restored.clamp(0.0, 1.0);
            let neutral;
            let refiner_priors = match refiner.priors {
                clearair_model::RefinerPriors::Neutral => {
                    neutral = neutral_tile_priors(refiner.network, &restored);
                    &neutral
                }
                clearair_model::RefinerPriors::Served => priors,
            };
            // A stage that sees the upload reads it beside the restorer's output.
            let input = if refiner.network.config().sees_upload {
                Tensor::cat(&[&restored, tile], 1)
            } else {
                restored.shallow_clone()
            };
            let refined = forward_ensembled(
                precision,
                refiner.network,
                refiner.ensemble,
                &input,
                refiner_priors,
            )?;
            if refiner.share >= 1.0 {
                Ok(refined)
            } else {
                Ok(&restored + (refined - &restored) * f64::from(refiner.share))
            }
        }
        _ => Ok(restored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact network whose weights are moved off the identity it starts at, so every
    /// symmetry of a tile gives another output (its store must outlive it).
    fn perturbed_compact() -> (tch::nn::VarStore, clearair_model::ClearAirNet) {
        let store = tch::nn::VarStore::new(Device::Cpu);
        let network = clearair_model::ClearAirNet::new(
            &store.root(),
            &clearair_model::ClearAirConfig::compact(36),
        );
        tch::no_grad(|| {
            for (_, mut variable) in store.variables() {
                let _ = variable.g_add_(&(variable.randn_like() * 0.05));
            }
        });
        (store, network)
    }

    /// `restorer` once on `tile`, then `stage` behind it, ungated on neutral priors, as a
    /// self-ensemble of `passes`.
    fn behind(
        restorer: &clearair_model::ClearAirNet,
        stage: &clearair_model::ClearAirNet,
        passes: u8,
        tile: &Tensor,
        priors: &Priors,
    ) -> Result<Tensor, ModelError> {
        let stage = Refiner::ungated(stage, clearair_model::RefinerPriors::Neutral);
        let fp32 = crate::Precision::Fp32;
        tch::no_grad(|| {
            forward_refined(
                fp32,
                restorer,
                1,
                Some(stage.with_ensemble(passes)),
                tile,
                priors,
            )
        })
    }

    #[test]
    fn a_self_ensemble_averages_the_refiner_over_the_symmetries_of_its_input() {
        // Each symmetry is undone by its inverse, and the eight are distinct.
        let t = Tensor::rand([1, 3, 5, 7], (tch::Kind::Float, Device::Cpu));
        let mut seen: Vec<Tensor> = Vec::new();
        for index in 0..8 {
            let turned = symmetry(&t, index, false);
            assert!(symmetry(&turned, index, true).equal(&t), "symmetry {index}");
            assert!(
                !seen
                    .iter()
                    .any(|s| s.size() == turned.size() && s.equal(&turned)),
                "symmetry {index} repeats another"
            );
            seen.push(turned);
        }
        tch::manual_seed(3);
        let config = clearair_model::ClearAirConfig::compact(36);
        let restorer_store = tch::nn::VarStore::new(Device::Cpu);
        let restorer = clearair_model::ClearAirNet::new(&restorer_store.root(), &config);
        let (_refiner_store, network) = perturbed_compact();
        let tile = Tensor::rand([1, 3, 16, 24], (tch::Kind::Float, Device::Cpu));
        let priors = neutral_tile_priors(&restorer, &tile);
        let fp32 = crate::Precision::Fp32;
        let run = |ensemble: u8| behind(&restorer, &network, ensemble, &tile, &priors);
        // Two passes: the refiner on its input and, flipped back, on its mirror image.
        let input = forward_in(fp32, &restorer, &tile, &priors)
            .unwrap()
            .clamp(0.0, 1.0);
        let refine = |x: &Tensor| {
            tch::no_grad(|| {
                forward_in(fp32, &network, x, &neutral_tile_priors(&network, x)).unwrap()
            })
        };
        let by_hand = (refine(&input) + refine(&input.flip([3])).flip([3])) / 2.0;
        let two = run(2).unwrap();
        assert!(two.allclose(&by_hand, 1e-5, 1e-6, false));
        // The symmetries change what this refiner does, so more passes give another mean.
        let (one, eight) = (run(1).unwrap(), run(8).unwrap());
        assert!(one.equal(&refine(&input)));
        assert_eq!(eight.size(), one.size());
        assert!(!eight.allclose(&one, 1e-4, 1e-5, false));
        // Any other number of passes is refused by name.
        let error = run(3).unwrap_err().to_string();
        assert!(error.contains("self-ensemble"), "{error}");
    }

    #[test]
    fn a_stage_that_sees_the_upload_reads_the_tile_beside_the_restorers_output() {
        tch::manual_seed(7);
        let config = clearair_model::ClearAirConfig::compact(36);
        let restorer_store = tch::nn::VarStore::new(Device::Cpu);
        let restorer = clearair_model::ClearAirNet::new(&restorer_store.root(), &config);
        let stage_store = tch::nn::VarStore::new(Device::Cpu);
        let stage = clearair_model::ClearAirNet::new(
            &stage_store.root(),
            &clearair_model::ClearAirConfig {
                sees_upload: true,
                ..config
            },
        );
        let tile = Tensor::rand([1, 3, 16, 24], (tch::Kind::Float, Device::Cpu));
        let priors = neutral_tile_priors(&restorer, &tile);
        let fp32 = crate::Precision::Fp32;
        let run = |ensemble: u8| behind(&restorer, &stage, ensemble, &tile, &priors).unwrap();
        let restored = forward_in(fp32, &restorer, &tile, &priors)
            .unwrap()
            .clamp(0.0, 1.0);
        let refine = |x: &Tensor| {
            tch::no_grad(|| forward_in(fp32, &stage, x, &neutral_tile_priors(&stage, x)).unwrap())
        };
        // Six channels, the restorer's output then the tile, turned together in an ensemble.
        let input = Tensor::cat(&[&restored, &tile], 1);
        assert!(run(1).equal(&refine(&input)));
        let by_hand = (refine(&input) + refine(&input.flip([3])).flip([3])) / 2.0;
        assert!(run(2).allclose(&by_hand, 1e-5, 1e-6, false));
        assert_eq!(run(8).size(), tile.size());
        // Its output is not what it makes of the restorer's output twice over.
        let twice = Tensor::cat(&[&restored, &restored], 1);
        assert!(!run(1).allclose(&refine(&twice), 1e-5, 1e-6, false));
    }

    #[test]
    fn a_restorer_self_ensemble_turns_the_masks_with_the_tile() {
        tch::manual_seed(5);
        let (_store, restorer) = perturbed_compact();
        let config = restorer.config().clone();
        // A tile that is not square and two masks that are not symmetric, so a mask left
        // unturned (or turned the wrong way) would change the result.
        let tile = Tensor::rand([1, 3, 16, 24], (tch::Kind::Float, Device::Cpu));
        let left = Tensor::zeros([1, 1, 16, 24], (tch::Kind::Float, Device::Cpu));
        let _ = left.narrow(3, 0, 9).fill_(1.0);
        let priors = Priors {
            masks: Tensor::cat(&[&left, &(1.0 - &left)], 1),
            quality: Tensor::rand([1, 36], (tch::Kind::Float, Device::Cpu)),
            content: Tensor::rand([1, config.content_dim], (tch::Kind::Float, Device::Cpu)),
            degradation: Tensor::rand([1, config.degradation_dim], (tch::Kind::Float, Device::Cpu)),
        };
        let fp32 = crate::Precision::Fp32;
        let run = |passes: u8| {
            tch::no_grad(|| forward_refined(fp32, &restorer, passes, None, &tile, &priors))
        };
        let once = |x: &Tensor, masks: &Tensor| {
            let turned = Priors {
                masks: masks.shallow_clone(),
                quality: priors.quality.shallow_clone(),
                content: priors.content.shallow_clone(),
                degradation: priors.degradation.shallow_clone(),
            };
            tch::no_grad(|| forward_in(fp32, &restorer, x, &turned).unwrap())
        };
        // One pass is the restorer itself; two, the mean with its mirror image's, the
        // masks mirrored with it; the transposes (8) take a non-square tile too.
        assert!(run(1).unwrap().equal(&once(&tile, &priors.masks)));
        let mirrored = once(&tile.flip([3]), &priors.masks.flip([3])).flip([3]);
        let by_hand = (once(&tile, &priors.masks) + mirrored) / 2.0;
        assert!(run(2).unwrap().allclose(&by_hand, 1e-5, 1e-6, false));
        let transposed = once(&tile.transpose(2, 3), &priors.masks.transpose(2, 3));
        assert_eq!(transposed.size(), [1, 3, 24, 16]);
        let eight = run(8).unwrap();
        assert_eq!(eight.size(), tile.size());
        assert!(!eight.allclose(&run(1).unwrap(), 1e-4, 1e-5, false));
        let error = run(6).unwrap_err().to_string();
        assert!(error.contains("self-ensemble of 6"), "{error}");
    }

    fn gradient(width: u32, height: u32) -> Rgb8Image {
        let data = (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [
                    (x * 3 % 256) as u8,
                    (y * 5 % 256) as u8,
                    ((x + y) % 256) as u8,
                ]
            })
            .collect();
        Rgb8Image::new(width, height, data).expect("consistent image")
    }

    fn neutral(width: u32, height: u32) -> (PackedMasks, GlobalPriors) {
        let masks = super::neutral::masks(width, height);
        let priors = GlobalPriors::from_vectors(&[0.0; 4], &[0.0; 8], &[0.0; 8], Device::Cpu);
        (masks, priors)
    }

    #[test]
    fn identity_tiles_give_back_the_image_and_count_the_tiles() {
        let image = gradient(150, 97);
        let (masks, priors) = neutral(150, 97);
        let tiling = Tiling::new(64, 8).unwrap();
        let mut shapes = Vec::new();
        let (restored, tiles) = restore_in_tiles(
            &image,
            &masks,
            &priors,
            tiling,
            Device::Cpu,
            |tile, priors| {
                shapes.push((tile.size(), priors.masks.size()));
                Ok(tile.shallow_clone())
            },
        )
        .unwrap();
        assert_eq!(restored, image);
        assert_eq!(tiles as usize, shapes.len());
        assert!(tiles > 1, "a 150×97 image in 64-pixel tiles is tiled");
        for (tile, masks) in shapes {
            assert_eq!(tile[2..], masks[2..], "each tile gets its own mask window");
            assert_eq!(masks[1], 1);
        }
    }

    #[test]
    fn the_watcher_hears_every_tile_and_can_stop_between_tiles() {
        let image = gradient(150, 97);
        let (masks, priors) = neutral(150, 97);
        let tiling = Tiling::new(64, 8).unwrap();
        let mut heard = Vec::new();
        let restored = restore_in_tiles_watched(
            &image,
            &masks,
            &priors,
            tiling,
            Device::Cpu,
            |tile, _| Ok(tile.shallow_clone()),
            |done, total| {
                heard.push((done, total));
                ControlFlow::Continue(())
            },
        )
        .unwrap()
        .expect("not stopped");
        let total = restored.1;
        assert_eq!(restored.0, image);
        assert_eq!(
            heard,
            (1..=total).map(|done| (done, total)).collect::<Vec<_>>()
        );

        let mut forwards = 0;
        let stopped = restore_in_tiles_watched(
            &image,
            &masks,
            &priors,
            tiling,
            Device::Cpu,
            |tile, _| {
                forwards += 1;
                Ok(tile.shallow_clone())
            },
            |done, _| {
                if done == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert!(stopped.is_none());
        assert_eq!(forwards, 2, "no tile runs after the watcher stops");
    }

    #[test]
    fn a_network_failure_is_the_servers_fault_and_masks_of_another_size_the_clients() {
        let image = gradient(40, 30);
        let (masks, priors) = neutral(40, 30);
        let failed = restore_in_tiles(
            &image,
            &masks,
            &priors,
            Tiling::default(),
            Device::Cpu,
            |_, _| Err(ModelError::Config("broken".into())),
        )
        .unwrap_err();
        assert!(!failed.is_client_fault(), "{failed}");
        let (small, _) = neutral(20, 30);
        let refused = restore_in_tiles(
            &image,
            &small,
            &priors,
            Tiling::default(),
            Device::Cpu,
            |tile, _| Ok(tile.shallow_clone()),
        )
        .unwrap_err();
        assert!(refused.is_client_fault(), "{refused}");
    }

    #[test]
    fn a_wrong_output_size_is_the_servers_fault() {
        let image = gradient(40, 30);
        let (masks, priors) = neutral(40, 30);
        let error = restore_in_tiles(
            &image,
            &masks,
            &priors,
            Tiling::default(),
            Device::Cpu,
            |tile, _| Ok(tile.narrow(3, 0, 20)),
        )
        .unwrap_err();
        assert!(matches!(error, BackendError::Assembly(_)), "{error}");
        assert!(!error.is_client_fault());
    }

    #[test]
    fn tilings_too_small_or_all_overlap_are_refused() {
        assert!(Tiling::new(16, 0).is_err());
        assert!(Tiling::new(64, 32).is_err());
        let tiling = Tiling::new(64, 31).unwrap();
        assert_eq!((tiling.size(), tiling.overlap()), (64, 31));
    }
}
