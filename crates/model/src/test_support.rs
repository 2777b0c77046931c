//! Helpers shared by the unit tests: a tiny network configuration, random priors and
//! scratch directories.

use tch::{Device, Kind, Tensor};

use crate::config::{ClearAirConfig, PromptConfig};
use crate::priors::Priors;

/// A configuration with every module present but only a few thousand parameters.
pub(crate) fn tiny_config(quality_dim: i64) -> ClearAirConfig {
    ClearAirConfig {
        blocks: [1, 1, 1, 1],
        refinement_blocks: 1,
        channels: [8, 16, 24, 32],
        heads: [1, 2, 2, 4],
        quality_embed_dim: 8,
        content_tokens: 2,
        content_token_dim: 8,
        task_prompts: 4,
        task_prompt_dim: 8,
        task_hidden_dim: 16,
        prompt: PromptConfig {
            length: 3,
            dims: [4, 8, 8],
            sizes: [8, 4, 4],
            heads: 2,
        },
        ..ClearAirConfig::compact(quality_dim)
    }
}

/// Random priors of the right shapes: `masks` binary masks from a random label map (so they
/// partition the image) or none.
pub(crate) fn random_priors(
    config: &ClearAirConfig,
    batch: i64,
    height: i64,
    width: i64,
    masks: i64,
) -> Priors {
    let options = (Kind::Float, Device::Cpu);
    let labels = Tensor::randint(
        masks.max(1),
        [batch, 1, height, width],
        (Kind::Int64, Device::Cpu),
    );
    let masks = labels
        .eq_tensor(&Tensor::arange(masks, (Kind::Int64, Device::Cpu)).view([1, masks, 1, 1]))
        .to_kind(Kind::Float);
    Priors {
        quality: Tensor::randn([batch, config.quality_dim], options),
        masks,
        content: Tensor::randn([batch, config.content_dim], options),
        degradation: Tensor::randn([batch, config.degradation_dim], options),
    }
}

/// A fresh, empty directory under the system temp dir, removed when the guard drops.
pub(crate) fn scratch_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("clearair-model-{name}-"))
        .tempdir()
        .expect("create scratch dir")
}
