//! Restoring an image the way the mesh does, in-process: the quality and segmentation
//! backends on the 8-bit image, the encoder on its ≤256 scaled copy, then the restorer in
//! the restoration service's overlapping tiles with the masks cropped per tile.

use clearair_imaging::{PackedMasks, Rgb8Image, TileBlender, TilePlan};
use clearair_model::{ClearAir, DegradationEncoder, Priors};
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::photos::{fit_long_side, image_to_tensor};
use crate::priors::{
    CpuPriorBackends, CpuPriors, EMBEDDING_WIDTH, ENCODER_MAX_SIDE, embed, neutral_masks,
    neutral_quality, stack_quality,
};
use crate::protocol::RowPriors;

/// The restoration service's default tile side and overlap.
pub const SERVICE_TILE_SIZE: u32 = 512;
/// See [`SERVICE_TILE_SIZE`].
pub const SERVICE_TILE_OVERLAP: u32 = 32;

/// The three prior sources and the restorer, as the embedded mesh runs them.
#[derive(Debug)]
pub struct MeshRestorer<'a> {
    /// The restorer.
    pub restorer: &'a ClearAir,
    /// The degradation encoder.
    pub encoder: &'a DegradationEncoder,
    /// BRISQUE and the graph segmenter.
    pub priors: &'a CpuPriorBackends,
    /// Where the networks run.
    pub device: Device,
}

/// A restored image and what the priors said about its input.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshOutput {
    /// The restored image, rounded to 8 bits as the service returns it.
    pub restored: Rgb8Image,
    /// The encoder's probability per kind.
    pub probabilities: [f32; 5],
    /// Whether BRISQUE refused the image and F_q fell back to neutral.
    pub quality_fell_back: bool,
    /// Number of masks.
    pub masks: u32,
}

impl MeshRestorer<'_> {
    /// F_c, F_d (1×512 each, on the device) and the kind probabilities of `image`.
    pub fn embed(&self, image: &Rgb8Image) -> Result<(Tensor, Tensor, [f32; 5])> {
        let view = fit_long_side(image, ENCODER_MAX_SIDE)?;
        let input = image_to_tensor(&view).unsqueeze(0).to_device(self.device);
        let probabilities = tch::no_grad(|| self.encoder.forward(&input).probabilities());
        let probabilities = Vec::<f32>::try_from(probabilities.to_device(Device::Cpu).view([-1]))?;
        let (content, degradation) = embed(self.encoder, &input, None);
        let mut kinds = [0.0; 5];
        kinds.copy_from_slice(&probabilities);
        Ok((content, degradation, kinds))
    }

    /// Restores `image` with the priors the mesh computes for it.
    pub fn restore(&self, image: &Rgb8Image) -> Result<MeshOutput> {
        self.restore_with(image, RowPriors::Served)
    }

    /// Restores `image` with the served priors, or with every prior on the neutral value the
    /// orchestrator substitutes when its service fails (zero F_q, one mask over the whole
    /// image, zero F_c and F_d).
    pub fn restore_with(&self, image: &Rgb8Image, priors: RowPriors) -> Result<MeshOutput> {
        let (cpu, content, degradation, probabilities) = match priors {
            RowPriors::Served => {
                let cpu = self.priors.compute(image)?;
                let (content, degradation, probabilities) = self.embed(image)?;
                (cpu, content, degradation, probabilities)
            }
            RowPriors::Neutral => {
                let zeros = || Tensor::zeros([1, EMBEDDING_WIDTH], (Kind::Float, self.device));
                let cpu = CpuPriors {
                    quality: neutral_quality(self.priors.quality_width()),
                    quality_fell_back: true,
                    masks: neutral_masks(image.width(), image.height()),
                };
                (cpu, zeros(), zeros(), [0.0; 5])
            }
        };
        let quality = stack_quality(std::slice::from_ref(&cpu.quality), self.device);
        let plan = TilePlan::new(
            image.width(),
            image.height(),
            SERVICE_TILE_SIZE,
            SERVICE_TILE_OVERLAP,
        )?;
        let mut blender = TileBlender::new(&plan);
        for (index, tile) in plan.tiles().iter().enumerate() {
            let pixels = image_to_tensor(&tile.crop_from(image)?)
                .unsqueeze(0)
                .to_device(self.device);
            let masks = tile_masks(&cpu.masks, tile.x, tile.y, tile.width, tile.height)
                .to_device(self.device);
            let priors = Priors {
                quality: quality.shallow_clone(),
                masks,
                content: content.shallow_clone(),
                degradation: degradation.shallow_clone(),
            };
            let restored = tch::no_grad(|| self.restorer.forward_checked(&pixels, &priors, false))?;
            let restored = restored.clamp(0.0, 1.0).to_device(Device::Cpu).view([-1]);
            blender.add(index, &Vec::<f32>::try_from(restored)?)?;
        }
        Ok(MeshOutput {
            restored: blender.finish_rgb8()?,
            probabilities,
            quality_fell_back: cpu.quality_fell_back,
            masks: cpu.masks.count(),
        })
    }
}

/// The masks of the tile at (x, y) of `width × height`, as 1×M×h×w floats.
pub fn tile_masks(masks: &PackedMasks, x: u32, y: u32, width: u32, height: u32) -> Tensor {
    Tensor::from_slice(&masks.window_planes(x, y, width, height)).view([
        1,
        i64::from(masks.count()),
        i64::from(height),
        i64::from(width),
    ])
}
