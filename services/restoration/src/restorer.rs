//! The restorer: the ClearAIR network, loaded and checked against the running priors, applied
//! to an image and its priors in overlapping tiles ([`restore_in_tiles`], shared with
//! training's evaluation) so memory stays bounded.

use std::sync::Mutex;

use clearair_backends::restoration::{GlobalPriors, Tiling, neutral, restore_in_tiles};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_model::{
    ClearAirConfig, ClearAirNet, ModelManifest, NetworkConfig, load_weights, parse_device,
};
use tch::{Device, nn};

use crate::{config::RestorationConfig, error::RestorationError};

/// An image and its validated priors.
#[derive(Debug)]
pub struct RestorerInput {
    /// The degraded image.
    pub image: Rgb8Image,
    /// F_q.
    pub quality: Vec<f32>,
    /// Region masks at the image's size.
    pub masks: PackedMasks,
    /// F_c.
    pub content: Vec<f32>,
    /// F_d.
    pub degradation: Vec<f32>,
}

/// The ClearAIR network, loaded once and shared by every request.
pub struct Restorer {
    // Tensors are `Send` but not `Sync`: one pass at a time, which on a CPU is also the fast
    // way (libtorch spreads each pass over every core).
    network: Mutex<(nn::VarStore, ClearAirNet)>,
    config: ClearAirConfig,
    device: Device,
    tiling: Tiling,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer")
            .field("device", &self.device)
            .field("tiling", &self.tiling)
            .finish_non_exhaustive()
    }
}

impl Restorer {
    /// Loads the weights named in `config` and checks their manifest against the running
    /// prior backends; any mismatch stops the service with the differences spelled out.
    pub fn load(config: &RestorationConfig) -> Result<Self, RestorationError> {
        let model = &config.model;
        let load_error = |reason: String| RestorationError::Load {
            what: format!("restorer {}", model.weights.display()),
            reason,
        };
        let device = parse_device(&model.device).map_err(|e| load_error(e.to_string()))?;
        let network_config = if model.random_init {
            tracing::warn!("restorer uses random weights (random_init = true)");
            config.random_init_network()
        } else {
            let manifest_path = ModelManifest::path_for_weights(&model.weights);
            let manifest =
                ModelManifest::read(&manifest_path).map_err(|e| load_error(e.to_string()))?;
            let trained = manifest.backends.ok_or_else(|| {
                load_error(format!(
                    "{} names no prior backends",
                    manifest_path.display()
                ))
            })?;
            trained.check(&config.priors).map_err(|e| {
                load_error(format!(
                    "its weights were trained with other priors than the mesh runs: {e}"
                ))
            })?;
            match manifest.network {
                NetworkConfig::ClearAir(network) => network,
                NetworkConfig::Encoder(_) => {
                    return Err(load_error(format!(
                        "{} describes an encoder, not a restorer",
                        manifest_path.display()
                    )));
                }
            }
        };
        if network_config.quality_dim != config.priors.quality.width {
            return Err(load_error(format!(
                "the network takes F_q of width {}, the quality backend `{}` produces {}",
                network_config.quality_dim, config.priors.quality.name, config.priors.quality.width
            )));
        }
        let mut store = nn::VarStore::new(device);
        let network = ClearAirNet::new(&store.root(), &network_config);
        if !model.random_init {
            load_weights(&mut store, &model.weights).map_err(|e| load_error(e.to_string()))?;
        }
        let tiling = Tiling::new(config.tile_size, config.tile_overlap)
            .map_err(|e| load_error(e.to_string()))?;
        Ok(Self {
            network: Mutex::new((store, network)),
            config: network_config,
            device,
            tiling,
        })
    }

    /// The network's configuration.
    pub fn network_config(&self) -> &ClearAirConfig {
        &self.config
    }

    /// Restores the image, tile by tile when it is large; returns the image and the number of
    /// tiles. The network is locked per tile, so concurrent requests interleave their tiles.
    pub fn restore(&self, input: &RestorerInput) -> Result<(Rgb8Image, u32), RestorationError> {
        let priors = GlobalPriors::from_vectors(
            &input.quality,
            &input.content,
            &input.degradation,
            self.device,
        );
        let restored = restore_in_tiles(
            &input.image,
            &input.masks,
            &priors,
            self.tiling,
            self.device,
            |tile, priors| {
                let guard = self.network.lock().expect("restorer lock poisoned");
                tch::no_grad(|| guard.1.forward_checked(tile, priors, false))
            },
        )?;
        Ok(restored)
    }
}

/// Restores a synthetic image with neutral priors once, so the first request is not slow and
/// a broken network shows up at start-up.
pub fn warm_up(restorer: &Restorer) -> Result<(), RestorationError> {
    let (width, height) = (48u32, 40u32);
    let data: Vec<u8> = (0..width * height)
        .flat_map(|i| {
            let v = (i * 13 % 256) as u8;
            [v, v / 2, 255 - v]
        })
        .collect();
    let image = Rgb8Image::new(width, height, data).expect("consistent warm-up image");
    let input = RestorerInput {
        image,
        quality: neutral::vector(restorer.config.quality_dim as usize),
        masks: neutral::masks(width, height),
        content: neutral::vector(restorer.config.content_dim as usize),
        degradation: neutral::vector(restorer.config.degradation_dim as usize),
    };
    let (restored, _) = restorer.restore(&input)?;
    if (restored.width(), restored.height()) != (width, height) {
        return Err(RestorationError::Load {
            what: "restorer".to_owned(),
            reason: format!(
                "warm-up returned {}x{} for a {width}x{height} image",
                restored.width(),
                restored.height()
            ),
        });
    }
    Ok(())
}
