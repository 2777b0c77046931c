//! The restorer: the ClearAIR network applied to an image and its priors, in overlapping
//! tiles above a configurable size so memory stays bounded.

use std::sync::Mutex;

use clearair_imaging::{PackedMasks, Rgb8Image, TileBlender, TilePlan};
use clearair_model::{
    ClearAir, ClearAirConfig, ModelManifest, NetworkConfig, Priors, load_weights, parse_device,
};
use tch::{Device, Tensor, nn};

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
    network: Mutex<(nn::VarStore, ClearAir)>,
    config: ClearAirConfig,
    device: Device,
    tile_size: u32,
    tile_overlap: u32,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer")
            .field("device", &self.device)
            .field("tile_size", &self.tile_size)
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
        let network = ClearAir::new(&store.root(), &network_config);
        if !model.random_init {
            load_weights(&mut store, &model.weights).map_err(|e| load_error(e.to_string()))?;
        }
        if config.tile_size < 32 || config.tile_overlap * 2 >= config.tile_size {
            return Err(load_error(format!(
                "tile_size {} must be at least 32 and more than twice tile_overlap {}",
                config.tile_size, config.tile_overlap
            )));
        }
        Ok(Self {
            network: Mutex::new((store, network)),
            config: network_config,
            device,
            tile_size: config.tile_size,
            tile_overlap: config.tile_overlap,
        })
    }

    /// The network's configuration.
    pub fn network_config(&self) -> &ClearAirConfig {
        &self.config
    }

    /// Restores the image, tile by tile when it is large; returns the image and the number of
    /// tiles.
    pub fn restore(&self, input: &RestorerInput) -> Result<(Rgb8Image, u32), RestorationError> {
        let image = &input.image;
        let plan = TilePlan::new(
            image.width(),
            image.height(),
            self.tile_size,
            self.tile_overlap,
        )?;
        let vector = |values: &[f32]| {
            Tensor::from_slice(values)
                .view([1, values.len() as i64])
                .to_device(self.device)
        };
        let (quality, content, degradation) = (
            vector(&input.quality),
            vector(&input.content),
            vector(&input.degradation),
        );
        let mut blender = TileBlender::new(&plan);
        for (index, tile) in plan.tiles().iter().enumerate() {
            let pixels = tile.crop_from(image)?.to_planar_f32();
            let (height, width) = (i64::from(tile.height), i64::from(tile.width));
            let tile_image = Tensor::from_slice(&pixels)
                .view([1, 3, height, width])
                .to_device(self.device);
            let masks = input
                .masks
                .window_planes(tile.x, tile.y, tile.width, tile.height);
            let priors = Priors {
                quality: quality.shallow_clone(),
                masks: Tensor::from_slice(&masks)
                    .view([1, i64::from(input.masks.count()), height, width])
                    .to_device(self.device),
                content: content.shallow_clone(),
                degradation: degradation.shallow_clone(),
            };
            let guard = self.network.lock().expect("restorer lock poisoned");
            let restored = tch::no_grad(|| guard.1.forward_checked(&tile_image, &priors, false))?;
            drop(guard);
            let restored = restored
                .clamp(0.0, 1.0)
                .to_device(Device::Cpu)
                .flatten(0, -1);
            let restored = Vec::<f32>::try_from(restored).map_err(torch_error)?;
            blender.add(index, &restored)?;
        }
        Ok((blender.finish_rgb8()?, plan.tiles().len() as u32))
    }
}

fn torch_error(error: tch::TchError) -> RestorationError {
    RestorationError::Model(clearair_model::ModelError::Torch(error))
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
    let labels = vec![0u8; (width * height) as usize];
    let input = RestorerInput {
        image,
        quality: vec![0.0; restorer.config.quality_dim as usize],
        masks: PackedMasks::from_label_map(width, height, &labels, 1, &[1.0])?,
        content: vec![0.0; restorer.config.content_dim as usize],
        degradation: vec![0.0; restorer.config.degradation_dim as usize],
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
