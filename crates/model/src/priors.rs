//! The restorer's inputs besides the image, and their validation.

use tch::{Device, Kind, Tensor};

use crate::config::ClearAirConfig;
use crate::error::{ModelError, Result};

/// The four priors ClearAIR is steered by, batched like the image (N first).
#[derive(Debug)]
pub struct Priors {
    /// Global quality representation F_q: N×quality_dim.
    pub quality: Tensor,
    /// Segmentation masks: N×M×H×W floats in {0, 1} at the image's size, 0 ≤ M ≤ max_masks.
    /// Masks may overlap and need not cover every pixel.
    pub masks: Tensor,
    /// Content embedding F_c: N×content_dim.
    pub content: Tensor,
    /// Degradation embedding F_d: N×degradation_dim.
    pub degradation: Tensor,
}

impl Priors {
    /// Moves every prior to `device`.
    pub fn to_device(&self, device: Device) -> Self {
        Self {
            quality: self.quality.to_device(device),
            masks: self.masks.to_device(device),
            content: self.content.to_device(device),
            degradation: self.degradation.to_device(device),
        }
    }

    /// The same priors with `masks` replaced (the vectors are shared, not copied).
    pub fn with_masks(&self, masks: Tensor) -> Self {
        Self {
            quality: self.quality.shallow_clone(),
            masks,
            content: self.content.shallow_clone(),
            degradation: self.degradation.shallow_clone(),
        }
    }
}

/// Checks an image (N×C×H×W with C = [`ClearAirConfig::input_channels`], H, W ≥ 1, floating)
/// and its priors against `config`, so that a
/// malformed request is a typed error instead of a libtorch panic inside the network.
pub fn check_priors(config: &ClearAirConfig, image: &Tensor, priors: &Priors) -> Result<()> {
    let size = image.size();
    let channels = config.input_channels();
    if size.len() != 4 || size[1] != channels || size[0] < 1 || size[2] < 1 || size[3] < 1 {
        return Err(ModelError::ImageShape {
            expected: format!("[N ≥ 1, {channels}, H ≥ 1, W ≥ 1]"),
            got: size,
        });
    }
    if !image.is_floating_point() {
        return Err(ModelError::ImageShape {
            expected: format!("a floating image, not {:?}", image.kind()),
            got: size,
        });
    }
    let (batch, height, width) = (size[0], size[2], size[3]);
    let vector = |prior: &'static str, tensor: &Tensor, width: i64| {
        let got = tensor.size();
        if got != [batch, width] {
            return Err(ModelError::PriorShape {
                prior,
                expected: format!("[{batch}, {width}]"),
                got,
            });
        }
        Ok(())
    };
    vector("quality", &priors.quality, config.quality_dim)?;
    vector("content", &priors.content, config.content_dim)?;
    vector("degradation", &priors.degradation, config.degradation_dim)?;
    let masks = priors.masks.size();
    let masks_fit = masks.len() == 4
        && masks[0] == batch
        && masks[1] <= config.max_masks
        && masks[2] == height
        && masks[3] == width;
    if !masks_fit {
        return Err(ModelError::PriorShape {
            prior: "masks",
            expected: format!("[{batch}, M ≤ {}, {height}, {width}]", config.max_masks),
            got: masks,
        });
    }
    let all = [
        ("quality", &priors.quality),
        ("masks", &priors.masks),
        ("content", &priors.content),
        ("degradation", &priors.degradation),
    ];
    for (prior, tensor) in all {
        check_placement(prior, tensor, image.kind(), image.device())?;
        if tensor.numel() > 0 && !bool::try_from(tensor.isfinite().all())? {
            return Err(ModelError::PriorNotFinite { prior });
        }
    }
    Ok(())
}

fn check_placement(prior: &'static str, tensor: &Tensor, kind: Kind, device: Device) -> Result<()> {
    if tensor.kind() != kind {
        return Err(ModelError::PriorPlacement {
            prior,
            detail: format!("is {:?} but the image is {kind:?}", tensor.kind()),
        });
    }
    if tensor.device() != device {
        return Err(ModelError::PriorPlacement {
            prior,
            detail: format!("is on {:?} but the image is on {device:?}", tensor.device()),
        });
    }
    Ok(())
}
