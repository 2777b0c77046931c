//! Restoring an image the way the mesh does, in-process: the quality and segmentation
//! backends on the 8-bit image, the encoder on the service's view of it, then the restorer in
//! the restoration service's overlapping tiles ([`restore_in_tiles`], the service's own code).

use clearair_backends::{
    Precision,
    degradation::{EncoderView, encode, gate_probabilities},
    restoration::{GlobalPriors, Refiner, Tiling, forward_refined, restore_in_tiles},
};
use clearair_imaging::Rgb8Image;
use clearair_model::{ClearAirNet, DegradationEncoder};
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::priors::{
    CpuPriorBackends, EMBEDDING_WIDTH, ENCODER_MAX_SIDE, PriorDropout, neutral_masks,
    neutral_quality, stack_quality,
};

/// The three prior sources and the restorer, as the embedded mesh runs them.
#[derive(Debug)]
pub struct MeshRestorer<'a> {
    /// The restorer.
    pub restorer: &'a ClearAirNet,
    /// The restorer's geometric self-ensemble: 1 pass, or 2, 4 or 8 flips and transposes
    /// of each tile averaged, as the restoration service's `restorer_ensemble`.
    pub restorer_ensemble: u8,
    /// A second network run on the restorer's output, if any ([`forward_refined`]).
    pub refiner: Option<Refiner<'a>>,
    /// The refiner's gate (its manifest's `refiner_gate`): the share of its change each
    /// image keeps, from the encoder's probabilities for it, read in the gate's view (a view
    /// other than the served one costs one more encoder pass, as in the degradation
    /// service). None: the whole change.
    pub refiner_gate: Option<clearair_model::RefinerGate>,
    /// The fallback stage, if any: a network run on the restorer's output, reading no prior,
    /// only where every prior is neutral (every prior service down, or an upload sent alone),
    /// in place of the refiner, whose gate is shut there. The restoration service's
    /// `fallback_refiner`.
    pub fallback_refiner: Option<Refiner<'a>>,
    /// The fallback stage's gate on the upload's pixels (its manifest's `blur_gate`): the
    /// share of its change each upload keeps from its blur effect. None: the whole change.
    pub fallback_gate: Option<clearair_model::BlurGate>,
    /// The degradation encoder.
    pub encoder: &'a DegradationEncoder,
    /// What of an image the encoder sees (the restorer's manifest names it).
    pub view: EncoderView,
    /// BRISQUE and the graph segmenter.
    pub priors: &'a CpuPriorBackends,
    /// Where the networks run.
    pub device: Device,
    /// The restorer's arithmetic (its weights already converted to it).
    pub precision: Precision,
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
        // The service's own code: one forward pass serves the probabilities and both
        // embeddings (two in the split view, F_c from the whole image).
        let estimate = encode(
            self.encoder,
            self.device,
            self.view,
            ENCODER_MAX_SIDE,
            image,
        )?;
        let row = |values: &[f32]| {
            Tensor::from_slice(values)
                .view([1, -1])
                .to_device(self.device)
        };
        Ok((
            row(&estimate.content),
            row(&estimate.degradation),
            estimate.probabilities,
        ))
    }

    /// Restores `image` with the priors the mesh computes for it.
    pub fn restore(&self, image: &Rgb8Image) -> Result<MeshOutput> {
        self.restore_neutral(image, PriorDropout::default())
    }

    /// Restores `image` with the served priors except those flagged in `neutral`, which take
    /// the value the orchestrator substitutes when their service fails (zero F_q, one mask
    /// over the whole image, zero F_c and F_d): `PriorDropout::ALL` is the fallback of every
    /// service down, one flag an ablation of what that prior contributes.
    pub fn restore_neutral(&self, image: &Rgb8Image, neutral: PriorDropout) -> Result<MeshOutput> {
        let (quality, quality_fell_back) = if neutral.quality {
            (neutral_quality(self.priors.quality_width()), true)
        } else {
            self.priors.quality(image)
        };
        let masks = if neutral.masks {
            neutral_masks(image.width(), image.height())
        } else {
            self.priors.masks(image)?
        };
        let (content, degradation, probabilities) = if neutral.embeddings {
            let zeros = || Tensor::zeros([1, EMBEDDING_WIDTH], (Kind::Float, self.device));
            (zeros(), zeros(), [0.0; 5])
        } else {
            self.embed(image)?
        };
        // As the restoration service does: a neutral degradation prior carries no
        // probabilities, and a gated refiner then keeps none of its change.
        let gate_probabilities = if neutral.embeddings {
            None
        } else if let Some(gate) = self.refiner_gate {
            gate_probabilities(
                self.encoder,
                self.device,
                gate.view,
                ENCODER_MAX_SIDE,
                image,
            )?
            .or(Some(probabilities))
        } else {
            Some(probabilities)
        };
        let refiner = match self.fallback_refiner {
            Some(fallback) if neutral == PriorDropout::ALL => {
                Some(fallback.behind_blur_gate(self.fallback_gate.as_ref(), image))
            }
            _ => self.refiner.map(|refiner| Refiner {
                share: self.refiner_gate.map_or(refiner.share, |gate| {
                    gate.weight(gate_probabilities.as_ref().map(|p| &p[..]))
                }),
                ..refiner
            }),
        };
        let global = GlobalPriors {
            quality: stack_quality(std::slice::from_ref(&quality), self.device),
            content,
            degradation,
        };
        let (restored, _) = restore_in_tiles(
            image,
            &masks,
            &global,
            Tiling::default(),
            self.device,
            |tile, priors| {
                forward_refined(
                    self.precision,
                    self.restorer,
                    self.restorer_ensemble,
                    refiner,
                    tile,
                    priors,
                )
            },
        )?;
        Ok(MeshOutput {
            restored,
            probabilities,
            quality_fell_back,
            masks: masks.count(),
        })
    }
}
