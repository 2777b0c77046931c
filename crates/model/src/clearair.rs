//! The ClearAIR network: a Restormer U-Net whose levels are steered by the priors.
//!
//! Where the guidance sits, and why:
//! - **QGM** on the output of every level, encoder and decoder: the global quality prior
//!   ("how bad is it") is meant to condition all processing, and a per-channel affine map is
//!   cheap enough to apply everywhere, including the skip connections.
//! - **SGU** and **DAM** on the latent and the three decoder levels, after QGM (the paper's
//!   How → Where → What order): region means are only meaningful once features are semantic,
//!   and the decoder is where the restored content is synthesised. The encoder is left as
//!   Restormer's so the skips carry the input's detail unaltered by region averaging.
//! - **Prompt blocks** where PromptIR puts them: after the latent and decoder levels 3 and 2,
//!   just before each upsampling.

use crate::profile::span;
use tch::{Tensor, nn, nn::Module};

use crate::config::ClearAirConfig;
use crate::error::Result;
use crate::layers::{channels_last, conv2d};
use crate::priors::{Priors, check_priors};
use crate::prompt::{PromptShape, PromptTransformerBlock};
use crate::qgm::{QualityEmbedding, QualityGuidance};
use crate::resample::{
    Downsample, OverlapPatchEmbed, SIZE_MULTIPLE, Upsample, crop_to, pad_to_multiple,
};
use crate::sgu::{SemanticGuidance, prepare_region_masks, resize_masks};
use crate::task::{ContentTokens, DegradationAwareModule, TaskIdentifier, TaskPrompt};
use crate::transformer::{BlockShape, TransformerStack};

/// The prior-derived vectors every guided level reads.
struct Guidance {
    quality: Tensor,
    task: TaskPrompt,
    content_tokens: Tensor,
}

/// QGM → SGU → DAM on one latent or decoder level.
#[derive(Debug)]
struct LevelGuidance {
    qgm: QualityGuidance,
    sgu: SemanticGuidance,
    dam: DegradationAwareModule,
}

impl LevelGuidance {
    fn new(path: nn::Path<'_>, config: &ClearAirConfig, shape: BlockShape) -> Self {
        Self {
            qgm: QualityGuidance::new(&path / "qgm", config.quality_embed_dim, shape.channels),
            sgu: SemanticGuidance::new(&path / "sgu", shape),
            dam: DegradationAwareModule::new(
                &path / "dam",
                shape,
                config.task_prompt_dim,
                config.content_token_dim,
            ),
        }
    }

    fn forward(&self, x: &Tensor, guidance: &Guidance, masks: &Tensor) -> Tensor {
        let x = span("qgm", || self.qgm.forward(x, &guidance.quality));
        let x = span("sgu (regions)", || self.sgu.forward(&x, masks));
        span("dam (task prompt, content)", || {
            self.dam
                .forward(&x, &guidance.task.prompt, &guidance.content_tokens)
        })
    }
}

/// How a newly built network starts before training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartingPoint {
    /// Every layer drawn at random (PyTorch's default initialisation): the output is the
    /// input plus a random residual.
    Random,
    /// The final 3×3 projection starts at zero, so the untrained network returns its input
    /// exactly (the global residual) and training starts from "do no harm".
    #[default]
    IdentityOutput,
    /// Also every residual branch inside (the output projections of MDTA, GDFN, SGU and DAM,
    /// and the DAM's modulation): each block starts as the identity as well.
    IdentityBranches,
}

impl StartingPoint {
    /// Zeroes the variables of `store` this starting point names (a network built under the
    /// store's root). Call before training, never on loaded weights.
    pub fn apply(self, store: &nn::VarStore) {
        let zeroed = |name: &str| match self {
            Self::Random => false,
            Self::IdentityOutput => name.starts_with("output."),
            Self::IdentityBranches => {
                name.starts_with("output.")
                    || name.ends_with("project_out.weight")
                    || name.ends_with("project_out.bias")
                    || name.ends_with("modulation.weight")
                    || name.ends_with("modulation.bias")
            }
        };
        tch::no_grad(|| {
            for (name, mut tensor) in store.variables() {
                if zeroed(&name) {
                    let _ = tensor.zero_();
                }
            }
        });
    }
}

/// ClearAIR. Inference callers wrap calls in `tch::no_grad` and pass `train = false`.
#[derive(Debug)]
pub struct ClearAirNet {
    config: ClearAirConfig,
    patch_embed: OverlapPatchEmbed,
    encoder_level1: TransformerStack,
    down1_2: Downsample,
    encoder_level2: TransformerStack,
    down2_3: Downsample,
    encoder_level3: TransformerStack,
    down3_4: Downsample,
    latent: TransformerStack,
    /// QGM after encoder levels 1, 2 and 3.
    encoder_qgm: [QualityGuidance; 3],
    quality_embedding: QualityEmbedding,
    task_identifier: TaskIdentifier,
    content_tokens: ContentTokens,
    latent_guidance: LevelGuidance,
    prompt_level4: PromptTransformerBlock,
    up4_3: Upsample,
    reduce_chan_level3: nn::Conv2D,
    decoder_level3: TransformerStack,
    decoder3_guidance: LevelGuidance,
    prompt_level3: PromptTransformerBlock,
    up3_2: Upsample,
    reduce_chan_level2: nn::Conv2D,
    decoder_level2: TransformerStack,
    decoder2_guidance: LevelGuidance,
    prompt_level2: PromptTransformerBlock,
    up2_1: Upsample,
    decoder_level1: TransformerStack,
    decoder1_guidance: LevelGuidance,
    refinement: TransformerStack,
    output: nn::Conv2D,
}

impl ClearAirNet {
    /// The variable of the first convolution, the one that reads the input channels: what
    /// [`load_weights_widening`](crate::load_weights_widening) widens when a stage that sees the
    /// upload starts from weights that read the restorer's output alone.
    pub const INPUT_WEIGHT: &'static str = "patch_embed.proj.weight";

    /// Builds the network under `path`.
    ///
    /// # Panics
    /// If `config` fails [`ClearAirConfig::validate`] (a programming error: configs come from
    /// the constructors or from a manifest that was validated on load).
    pub fn new(path: &nn::Path<'_>, config: &ClearAirConfig) -> Self {
        if let Err(error) = config.validate() {
            panic!("{error}");
        }
        let c = config.channels;
        let shape = |level: usize, channels: i64| BlockShape {
            channels,
            heads: config.heads[level],
            ffn_expansion: config.ffn_expansion,
            bias: config.bias,
            layer_norm: config.layer_norm,
        };
        let stack = |name: &str, count: usize, shape: BlockShape| {
            TransformerStack::new(path / name, count, shape)
        };
        let prompt = |name: &str, k: usize| {
            let mixer = BlockShape {
                heads: config.prompt.heads,
                ..shape(0, 0)
            };
            let prompt_shape = PromptShape {
                feature_channels: c[k + 1],
                length: config.prompt.length,
                dim: config.prompt.dims[k],
                size: config.prompt.sizes[k],
            };
            PromptTransformerBlock::new(path / name, prompt_shape, mixer)
        };
        let guidance =
            |name: &str, shape: BlockShape| LevelGuidance::new(path / name, config, shape);
        let level1_decoder = shape(0, config.decoder_level1_channels());
        let reduce = |name: &str, channels: i64| {
            conv2d(path / name, 2 * channels, channels, 1, 1, config.bias)
        };

        Self {
            config: config.clone(),
            patch_embed: OverlapPatchEmbed::new(
                path / "patch_embed",
                config.input_channels(),
                c[0],
                false,
            ), // no bias, as Restormer
            encoder_level1: stack("encoder_level1", config.blocks[0], shape(0, c[0])),
            down1_2: Downsample::new(path / "down1_2", c[0], c[1]),
            encoder_level2: stack("encoder_level2", config.blocks[1], shape(1, c[1])),
            down2_3: Downsample::new(path / "down2_3", c[1], c[2]),
            encoder_level3: stack("encoder_level3", config.blocks[2], shape(2, c[2])),
            down3_4: Downsample::new(path / "down3_4", c[2], c[3]),
            latent: stack("latent", config.blocks[3], shape(3, c[3])),
            encoder_qgm: [0, 1, 2].map(|level| {
                QualityGuidance::new(
                    path / format!("encoder_qgm{}", level + 1),
                    config.quality_embed_dim,
                    c[level],
                )
            }),
            quality_embedding: QualityEmbedding::new(
                path / "quality_embedding",
                config.quality_dim,
                config.quality_embed_dim,
            ),
            task_identifier: TaskIdentifier::new(
                path / "task_identifier",
                config.degradation_dim,
                config.task_hidden_dim,
                config.task_prompts,
                config.task_prompt_dim,
            ),
            content_tokens: ContentTokens::new(
                path / "content_tokens",
                config.content_dim,
                config.content_tokens,
                config.content_token_dim,
            ),
            latent_guidance: guidance("latent_guidance", shape(3, c[3])),
            prompt_level4: prompt("prompt_level4", 2),
            up4_3: Upsample::new(path / "up4_3", c[3], c[2]),
            reduce_chan_level3: reduce("reduce_chan_level3", c[2]),
            decoder_level3: stack("decoder_level3", config.blocks[2], shape(2, c[2])),
            decoder3_guidance: guidance("decoder3_guidance", shape(2, c[2])),
            prompt_level3: prompt("prompt_level3", 1),
            up3_2: Upsample::new(path / "up3_2", c[2], c[1]),
            reduce_chan_level2: reduce("reduce_chan_level2", c[1]),
            decoder_level2: stack("decoder_level2", config.blocks[1], shape(1, c[1])),
            decoder2_guidance: guidance("decoder2_guidance", shape(1, c[1])),
            prompt_level2: prompt("prompt_level2", 0),
            up2_1: Upsample::new(path / "up2_1", c[1], c[0]),
            decoder_level1: stack("decoder_level1", config.blocks[0], level1_decoder),
            decoder1_guidance: guidance("decoder1_guidance", level1_decoder),
            refinement: stack("refinement", config.refinement_blocks, level1_decoder),
            output: conv2d(
                path / "output",
                level1_decoder.channels,
                3,
                3,
                1,
                config.bias,
            ),
        }
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &ClearAirConfig {
        &self.config
    }

    /// Restores `image` (N×3×H×W in [0, 1], any H, W ≥ 1; N×6×H×W, the restorer's output then
    /// the upload, for a stage that [`sees_upload`](ClearAirConfig::sees_upload)) and returns
    /// N×3×H×W, unclamped: the first three channels plus the network's residual.
    ///
    /// `priors` must have passed [`check_priors`] (or use [`ClearAirNet::forward_checked`]); with
    /// `train` the segmentation masks are randomly dropped into the background.
    pub fn forward_t(&self, image: &Tensor, priors: &Priors, train: bool) -> Tensor {
        let region_masks = self.prepare_masks(&priors.masks, train);
        self.forward_with_region_masks(image, priors, &region_masks)
    }

    /// [`check_priors`] followed by [`ClearAirNet::forward_t`].
    pub fn forward_checked(&self, image: &Tensor, priors: &Priors, train: bool) -> Result<Tensor> {
        check_priors(&self.config, image, priors)?;
        Ok(self.forward_t(image, priors, train))
    }

    /// The region masks the SGUs see: `masks` plus the background mask, with mask dropout when
    /// `train` (see [`prepare_region_masks`]).
    pub fn prepare_masks(&self, masks: &Tensor, train: bool) -> Tensor {
        prepare_region_masks(masks, self.config.mask_dropout, train)
    }

    /// The forward pass with region masks already prepared by [`ClearAirNet::prepare_masks`]
    /// (N×M'×H×W at the image's size; `priors.masks` is ignored). The consistency loss uses
    /// this to feed identically dropped, geometrically transformed masks to several passes.
    /// Mask dropout is the network's only train-time randomness (Restormer has no dropout or
    /// batch statistics), so this pass is the same in training and inference.
    pub fn forward_with_region_masks(
        &self,
        image: &Tensor,
        priors: &Priors,
        region_masks: &Tensor,
    ) -> Tensor {
        let (_, _, height, width) = image.size4().expect("image must be N×3×H×W");
        let input = span("pad_to_channels_last", || {
            channels_last(&pad_to_multiple(image, SIZE_MULTIPLE))
        });
        let (padded_height, padded_width) = (input.size()[2], input.size()[3]);
        let masks = pad_to_multiple(region_masks, SIZE_MULTIPLE);
        let masks_at = |level: u32| {
            let factor = 1 << level;
            span("resize_masks", || {
                resize_masks(&masks, padded_height / factor, padded_width / factor)
            })
        };
        let guidance = span("prior_embeddings", || Guidance {
            quality: self.quality_embedding.forward(&priors.quality),
            task: self.task_identifier.forward(&priors.degradation),
            content_tokens: self.content_tokens.forward(&priors.content),
        });
        let quality = &guidance.quality;

        let enc1 = span("patch_embed", || self.patch_embed.forward(&input));
        let enc1 = span("encoder_level1", || self.encoder_level1.forward(&enc1));
        let enc1 = span("qgm", || self.encoder_qgm[0].forward(&enc1, quality));
        let enc2 = span("resample", || self.down1_2.forward(&enc1));
        let enc2 = span("encoder_level2", || self.encoder_level2.forward(&enc2));
        let enc2 = span("qgm", || self.encoder_qgm[1].forward(&enc2, quality));
        let enc3 = span("resample", || self.down2_3.forward(&enc2));
        let enc3 = span("encoder_level3", || self.encoder_level3.forward(&enc3));
        let enc3 = span("qgm", || self.encoder_qgm[2].forward(&enc3, quality));

        let latent = span("resample", || self.down3_4.forward(&enc3));
        let latent = span("latent", || self.latent.forward(&latent));
        let latent = span("guidance", || {
            self.latent_guidance
                .forward(&latent, &guidance, &masks_at(3))
        });
        let latent = span("prompt", || self.prompt_level4.forward(&latent));

        let dec3 = span("resample", || self.up4_3.forward(&latent));
        let dec3 = span("skip_concat_reduce", || {
            self.reduce_chan_level3
                .forward(&Tensor::cat(&[dec3, enc3], 1))
        });
        let dec3 = span("decoder_level3", || self.decoder_level3.forward(&dec3));
        let dec3 = span("guidance", || {
            self.decoder3_guidance
                .forward(&dec3, &guidance, &masks_at(2))
        });
        let dec3 = span("prompt", || self.prompt_level3.forward(&dec3));

        let dec2 = span("resample", || self.up3_2.forward(&dec3));
        let dec2 = span("skip_concat_reduce", || {
            self.reduce_chan_level2
                .forward(&Tensor::cat(&[dec2, enc2], 1))
        });
        let dec2 = span("decoder_level2", || self.decoder_level2.forward(&dec2));
        let dec2 = span("guidance", || {
            self.decoder2_guidance
                .forward(&dec2, &guidance, &masks_at(1))
        });
        let dec2 = span("prompt", || self.prompt_level2.forward(&dec2));

        let dec1 = span("resample", || self.up2_1.forward(&dec2));
        let dec1 = span("skip_concat_reduce", || Tensor::cat(&[dec1, enc1], 1));
        let dec1 = span("decoder_level1", || self.decoder_level1.forward(&dec1));
        let dec1 = span("guidance", || {
            self.decoder1_guidance
                .forward(&dec1, &guidance, &masks_at(0))
        });
        let refined = span("refinement", || self.refinement.forward(&dec1));

        let restored = span("output_conv", || {
            self.output.forward(&refined) + input.narrow(1, 0, 3)
        });
        // Callers get plain NCHW, whatever layout the network ran in.
        span("crop_to_nchw", || {
            crop_to(&restored, height, width).contiguous()
        })
    }
}

#[cfg(test)]
mod tests;
