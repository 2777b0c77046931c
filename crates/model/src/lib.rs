//! The ClearAIR restoration network and everything trained alongside it, in tch: the
//! Restormer backbone with its prior-guidance modules, the embedded degradation encoder,
//! degradation synthesis, losses, metrics and weight files.
//!
//! Inference callers wrap forward passes in `tch::no_grad` and pass `train = false`; the
//! networks never switch gradient tracking themselves.
//!
//! # Layout
//! - [`config`]: [`ClearAirConfig`] (`full`, `compact`) and [`EncoderConfig`].
//! - Backbone blocks: `layer_norm`, `attention` (MDTA), `feed_forward` (GDFN), `transformer`,
//!   `resample` (patch embedding, pixel-(un)shuffle, padding).
//! - Guidance: `prompt` (PromptIR), `qgm` (quality), `sgu` (semantic regions), `task`
//!   (Task Identifier and DAM); [`clearair`] assembles the network, [`priors`] validates its
//!   inputs.
//! - [`encoder`]: the degradation encoder and its training losses.
//! - [`synthesis`]: seeded degradation synthesis; [`loss`]: L1 and ICRM; [`metrics`]: PSNR
//!   and SSIM as scikit-image computes them.
//! - [`weights`]: safetensors and manifests; [`device`]: device strings.
//! - [`profile`]: named spans that time a forward pass on the CPU (`clearair profile`).
//! - [`torchscript`]: exported prior models (DA-CLIP, SAM2, DeQA-Score) and their manifests.

pub mod attention;
pub mod clearair;
pub mod config;
pub mod device;
pub mod encoder;
pub mod error;
pub mod feed_forward;
pub mod layer_norm;
mod layers;
pub mod loss;
pub mod metrics;
pub mod priors;
pub mod profile;
pub mod prompt;
pub mod qgm;
pub mod resample;
pub mod sgu;
pub mod synthesis;
pub mod task;
#[cfg(test)]
mod test_support;
pub mod torchscript;
pub mod transformer;
pub mod weights;

pub use clearair::{ClearAirNet, StartingPoint};
pub use config::{ClearAirConfig, EncoderConfig, LayerNormKind, PromptConfig};
pub use device::parse_device;
pub use encoder::{
    DegradationEncoder, EncoderLoss, EncoderLossWeights, EncoderOutput, embedding_drift,
    encoder_loss,
};
pub use error::{ModelError, Result};
pub use loss::{
    Dihedral, IcrmConfig, IcrmDraw, KEEP_LOSS_CEILING_DB, LossDraws, PSNR_LOSS_CEILING_DB,
    PerImageWeights, PixelLoss, PixelObjective, RestorationLoss, frequency_l1_loss,
    frequency_l1_loss_weighted, keep_loss, keep_loss_capped, keep_loss_weighted, l1_loss,
    psnr_loss, psnr_loss_capped, restoration_loss, restoration_loss_with,
};
pub use metrics::{mean_psnr_ssim, psnr, ssim};
pub use priors::{Priors, check_priors};
pub use synthesis::{BlurKernel, Degradation, DegradationKind};
pub use torchscript::{ExportManifest, Precision, ScriptModel, TorchScriptConfig, check_shape};
pub use weights::{
    BlurGate, GateView, ModelManifest, NetworkConfig, PriorBackends, RefinerGate, RefinerPriors,
    load_weights, load_weights_widening, parameter_count, save_weights,
};
