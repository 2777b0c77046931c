//! Network configurations: [`ClearAirConfig`] for the restorer, [`EncoderConfig`] for the
//! embedded degradation encoder.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Which per-pixel LayerNorm the transformer blocks use (Restormer offers both; `WithBias` is
/// its default and what PromptIR uses).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerNormKind {
    /// Scale only, no mean subtraction and no shift.
    BiasFree,
    /// Mean-centred, with a learned scale and shift.
    WithBias,
}

/// PromptIR's prompt blocks in the decoder. Index `k` (0, 1, 2) describes the block that runs
/// on the features of level `k + 2` just before they are upsampled to level `k + 1`; PromptIR
/// calls them `prompt1`, `prompt2`, `prompt3`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PromptConfig {
    /// Number of learnable prompt components blended per block (PromptIR: 5).
    pub length: i64,
    /// Channels of each prompt (PromptIR: 64, 128, 320).
    pub dims: [i64; 3],
    /// Spatial size of each stored prompt before it is resized to the features (PromptIR:
    /// 64, 32, 16).
    pub sizes: [i64; 3],
    /// Attention heads of the transformer block that mixes features and prompt (PromptIR
    /// uses the level-3 head count, 4, for all three).
    pub heads: i64,
}

/// Shape of the ClearAIR restorer: a Restormer backbone plus the prior-guidance modules.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClearAirConfig {
    /// Transformer blocks per level (encoder levels 1–3 and the latent; the decoder repeats
    /// the counts of levels 1–3).
    pub blocks: [usize; 4],
    /// Transformer blocks at full resolution after decoder level 1.
    pub refinement_blocks: usize,
    /// Feature channels per level. Decoder level 1 runs at twice `channels[0]`, as in
    /// Restormer, because its skip connection is concatenated without a reduction.
    pub channels: [i64; 4],
    /// Attention heads per level.
    pub heads: [i64; 4],
    /// GDFN hidden width as a multiple of the channels (Restormer: 2.66).
    pub ffn_expansion: f64,
    /// Whether convolutions inside the backbone carry a bias (Restormer: no).
    pub bias: bool,
    /// LayerNorm variant of the transformer blocks.
    pub layer_norm: LayerNormKind,
    /// Width of the quality representation F_q (36 for BRISQUE, 4096 for DeQA).
    pub quality_dim: i64,
    /// Width F_q is projected to once before the per-level QGM affine maps.
    pub quality_embed_dim: i64,
    /// Width of the content embedding F_c (DA-CLIP: 512).
    pub content_dim: i64,
    /// Width of the degradation embedding F_d (DA-CLIP: 512).
    pub degradation_dim: i64,
    /// Number of content tokens F_c is expanded into for the DAM cross-attention.
    pub content_tokens: i64,
    /// Width of each content token before the per-level key/value projections.
    pub content_token_dim: i64,
    /// Largest number of segmentation masks a request may carry.
    pub max_masks: i64,
    /// Number of learnable degradation prompts in the Task Identifier.
    pub task_prompts: i64,
    /// Width of each degradation prompt (and of F_p).
    pub task_prompt_dim: i64,
    /// Hidden width of the Task Identifier's MLP.
    pub task_hidden_dim: i64,
    /// PromptIR prompt blocks in the decoder.
    pub prompt: PromptConfig,
    /// Probability that a mask is merged into the background during training.
    pub mask_dropout: f64,
    /// A stage behind the restorer that reads the upload as well: its input is six channels,
    /// the restorer's output then the image that was sent, and it adds its residual to the
    /// first three. Where the restorer, blind without priors, took away what was there (the
    /// faint stars of a blurred night sky), only the upload still holds it. A restorer never
    /// has it; manifests written before it existed read `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sees_upload: bool,
}

impl ClearAirConfig {
    /// The paper's network: Restormer widths with blocks [3, 5, 6, 8] and 4 refinement
    /// blocks. The guidance modules' widths are ours (the paper gives only the total, 31 M):
    /// they are chosen so that `full(4096)` lands near that figure.
    pub fn full(quality_dim: i64) -> Self {
        Self {
            blocks: [3, 5, 6, 8],
            refinement_blocks: 4,
            channels: [48, 96, 192, 384],
            heads: [1, 2, 4, 8],
            ffn_expansion: 2.66,
            bias: false,
            layer_norm: LayerNormKind::WithBias,
            quality_dim,
            quality_embed_dim: 128,
            content_dim: 512,
            degradation_dim: 512,
            content_tokens: 4,
            content_token_dim: 64,
            max_masks: 16,
            task_prompts: 8,
            task_prompt_dim: 64,
            task_hidden_dim: 256,
            prompt: PromptConfig {
                length: 5,
                dims: [32, 64, 64],
                sizes: [64, 32, 16],
                heads: 4,
            },
            mask_dropout: 0.2,
            sees_upload: false,
        }
    }

    /// A network small enough to train on two CPU cores: widths [16, 32, 48, 64] (a third
    /// of the paper's at full resolution, where most of the cost is), one or two blocks per
    /// level and one refinement block, 0.94 M parameters. Every module of the full network is
    /// present, so the compact weights exercise the same code paths as the paper's.
    ///
    /// Measured on the two-core development CPU (release build): a 256² forward pass takes
    /// about 1 s (the full network: 10 s), and a training step on four 64² crops with ICRM
    /// about 0.9 s, so an hour buys roughly 4 000 steps.
    pub fn compact(quality_dim: i64) -> Self {
        Self {
            blocks: [1, 1, 2, 2],
            refinement_blocks: 1,
            channels: [16, 32, 48, 64],
            heads: [1, 2, 4, 8],
            ffn_expansion: 2.66,
            bias: false,
            layer_norm: LayerNormKind::WithBias,
            quality_dim,
            quality_embed_dim: 32,
            content_dim: 512,
            degradation_dim: 512,
            content_tokens: 4,
            content_token_dim: 32,
            max_masks: 16,
            task_prompts: 8,
            task_prompt_dim: 32,
            task_hidden_dim: 64,
            prompt: PromptConfig {
                length: 5,
                dims: [8, 16, 16],
                sizes: [32, 16, 8],
                heads: 4,
            },
            mask_dropout: 0.2,
            sees_upload: false,
        }
    }

    /// Channels of the network's input: 3 (an image), or 6 for a stage that
    /// [`sees_upload`](Self::sees_upload) (the restorer's output, then the upload).
    pub fn input_channels(&self) -> i64 {
        if self.sees_upload { 6 } else { 3 }
    }

    /// Why a network of this config cannot run as the restorer (the first network, which
    /// reads the upload alone), if it cannot.
    pub fn restorer_problem(&self) -> Option<&'static str> {
        self.sees_upload.then_some(
            "a stage that sees the upload (six input channels) runs behind a restorer, not as one",
        )
    }

    /// Channels of decoder level 1 and the refinement blocks (skip concatenated, not reduced).
    pub fn decoder_level1_channels(&self) -> i64 {
        2 * self.channels[0]
    }

    /// Checks the divisibility and range constraints the layers rely on, so a bad config is a
    /// clear error rather than a libtorch shape panic deep in a forward pass.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: String| Err(ModelError::Config(message));
        for (level, (&channels, &heads)) in self.channels.iter().zip(&self.heads).enumerate() {
            if channels <= 0 || heads <= 0 || channels % heads != 0 {
                return fail(format!(
                    "level {}: {channels} channels cannot be split into {heads} heads",
                    level + 1
                ));
            }
        }
        if self.decoder_level1_channels() % self.heads[0] != 0 {
            return fail("decoder level 1 channels not divisible by heads[0]".into());
        }
        for level in 1..4 {
            // Downsampling convolves to channels/4 before pixel-unshuffle multiplies by 4.
            if self.channels[level] % 4 != 0 {
                return fail(format!(
                    "level {}: {} channels are not a multiple of 4 (pixel unshuffle)",
                    level + 1,
                    self.channels[level]
                ));
            }
        }
        // `as` maps NaN to 0, so this also rejects a NaN expansion.
        if crate::feed_forward::ffn_hidden_channels(self.channels[0], self.ffn_expansion) < 1 {
            return fail(format!("ffn_expansion {} is too small", self.ffn_expansion));
        }
        let positive = [
            ("quality_dim", self.quality_dim),
            ("quality_embed_dim", self.quality_embed_dim),
            ("content_dim", self.content_dim),
            ("degradation_dim", self.degradation_dim),
            ("content_tokens", self.content_tokens),
            ("content_token_dim", self.content_token_dim),
            ("task_prompts", self.task_prompts),
            ("task_prompt_dim", self.task_prompt_dim),
            ("task_hidden_dim", self.task_hidden_dim),
            ("prompt.length", self.prompt.length),
            ("prompt.heads", self.prompt.heads),
        ];
        if let Some((name, value)) = positive.iter().find(|(_, value)| *value <= 0) {
            return fail(format!("{name} must be positive, got {value}"));
        }
        if self.max_masks < 0 {
            return fail(format!(
                "max_masks must not be negative, got {}",
                self.max_masks
            ));
        }
        for k in 0..3 {
            let (dim, size) = (self.prompt.dims[k], self.prompt.sizes[k]);
            if dim <= 0 || size <= 0 {
                return fail(format!("prompt {}: dim and size must be positive", k + 1));
            }
            let mixed = self.channels[k + 1] + dim;
            if mixed % self.prompt.heads != 0 {
                return fail(format!(
                    "prompt {}: {mixed} channels cannot be split into {} heads",
                    k + 1,
                    self.prompt.heads
                ));
            }
        }
        if !(0.0..1.0).contains(&self.mask_dropout) {
            return fail(format!(
                "mask_dropout {} is not in [0, 1)",
                self.mask_dropout
            ));
        }
        Ok(())
    }
}

/// Shape of the embedded degradation encoder (the CPU stand-in for DA-CLIP).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Channels of the stem (full resolution) and of the three stride-2 stages.
    pub channels: [i64; 4],
    /// Hidden width of the two heads.
    pub hidden_dim: i64,
    /// Width of the content embedding F_c.
    pub content_dim: i64,
    /// Width of the degradation embedding F_d.
    pub degradation_dim: i64,
}

impl Default for EncoderConfig {
    /// The embedded backend's shape: 1.8 M parameters, about 50–65 ms per 256² image on the
    /// two-core development CPU, 512-wide embeddings like DA-CLIP's so the restorer is
    /// backend-agnostic.
    fn default() -> Self {
        Self {
            channels: [24, 48, 96, 192],
            hidden_dim: 512,
            content_dim: 512,
            degradation_dim: 512,
        }
    }
}

impl EncoderConfig {
    /// Checks that every width is positive.
    pub fn validate(&self) -> Result<()> {
        let widths = self.channels.iter().copied().chain([
            self.hidden_dim,
            self.content_dim,
            self.degradation_dim,
        ]);
        for width in widths {
            if width <= 0 {
                return Err(ModelError::Config(format!(
                    "encoder widths must be positive: {self:?}"
                )));
            }
        }
        Ok(())
    }
}
