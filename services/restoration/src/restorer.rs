//! The restorer: the ClearAIR network, loaded and checked against the running priors, applied
//! to an image and its priors in overlapping tiles ([`restore_in_tiles`], shared with
//! training's evaluation) so memory stays bounded.

use std::sync::Mutex;

use clearair_backends::{
    Precision,
    restoration::{GlobalPriors, Tiling, forward_in, neutral, restore_in_tiles},
};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_model::{
    ClearAirConfig, ClearAirNet, ModelManifest, NetworkConfig, PriorBackends, load_weights,
    parse_device,
};
use tch::{Device, nn};

use crate::{
    config::{BackendNames, RestorationConfig},
    error::RestorationError,
};

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
    precision: Precision,
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
            config.random_init_network().map_err(load_error)?
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
            check_backend_names(&trained, &config.backends).map_err(|differences| {
                load_error(format!(
                    "its weights were trained with other prior backends than the mesh runs: \
                     {differences}"
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
        let mut store = nn::VarStore::new(device);
        let network = ClearAirNet::new(&store.root(), &network_config);
        if !model.random_init {
            load_weights(&mut store, &model.weights).map_err(|e| load_error(e.to_string()))?;
        }
        model.precision.convert(&mut store);
        if model.precision == Precision::Bf16 {
            tracing::info!("restorer runs in bfloat16 (model.precision = \"bf16\")");
        }
        let tiling = Tiling::new(config.tile_size, config.tile_overlap)
            .map_err(|e| load_error(e.to_string()))?;
        Ok(Self {
            network: Mutex::new((store, network)),
            precision: model.precision,
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
                forward_in(self.precision, &guard.1, tile, priors)
            },
        )?;
        Ok(restored)
    }
}

/// Every backend the weights were trained with that differs, by name, from what the mesh
/// runs, as "quality: trained with `deqa`, running `brisque`; …".
fn check_backend_names(trained: &PriorBackends, running: &BackendNames) -> Result<(), String> {
    let differences: Vec<String> = [
        ("quality", &trained.quality.name, &running.quality),
        (
            "segmentation",
            &trained.segmentation.name,
            &running.segmentation,
        ),
        (
            "degradation",
            &trained.degradation.name,
            &running.degradation,
        ),
    ]
    .into_iter()
    .filter(|(_, trained, running)| trained != running)
    .map(|(prior, trained, running)| {
        format!("{prior}: trained with `{trained}`, running `{running}`")
    })
    .collect();
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("; "))
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

#[cfg(test)]
mod tests {
    use clearair_model::weights::{
        DegradationBackendSpec, QualityBackendSpec, SegmentationBackendSpec,
    };

    use super::*;

    fn trained(quality: &str, width: i64) -> PriorBackends {
        PriorBackends {
            quality: QualityBackendSpec {
                name: quality.to_owned(),
                width,
            },
            segmentation: SegmentationBackendSpec {
                name: "graph".to_owned(),
                max_masks: 16,
            },
            degradation: DegradationBackendSpec {
                name: "clearair-encoder".to_owned(),
                content_dim: 512,
                degradation_dim: 512,
            },
        }
    }

    #[test]
    fn backends_are_matched_by_name_and_every_difference_is_named() {
        let running = BackendNames::default();
        assert_eq!(
            check_backend_names(&trained("brisque", 36), &running),
            Ok(())
        );
        let error = check_backend_names(&trained("deqa", 4096), &running).unwrap_err();
        assert_eq!(error, "quality: trained with `deqa`, running `brisque`");
    }

    #[test]
    fn random_init_takes_the_width_of_a_known_quality_backend_only() {
        let mut config = RestorationConfig::default();
        assert_eq!(config.random_init_network().unwrap().quality_dim, 36);
        config.backends.quality = "deqa".to_owned();
        assert_eq!(config.random_init_network().unwrap().quality_dim, 4096);
        config.backends.quality = "my-iqa".to_owned();
        assert!(config.random_init_network().unwrap_err().contains("my-iqa"));
    }
}
