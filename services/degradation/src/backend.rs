//! Degradation backends: the trait, the compact encoder trained here and the loader that picks
//! it or DA-CLIP over TorchScript ([`crate::torchscript`]).

use std::sync::Mutex;

use clearair_imaging::Rgb8Image;
use clearair_model::{
    DegradationEncoder, DegradationKind, EncoderConfig, ModelManifest, NetworkConfig, load_weights,
    parse_device,
};
use tch::{Device, Tensor, nn};

use crate::{
    config::{DegradationBackendKind, DegradationConfig},
    error::DegradationError,
    torchscript::TorchScriptBackend,
};

/// Width of F_c and F_d on the wire, as DA-CLIP produces them.
pub const EMBEDDING_WIDTH: usize = 512;

/// One image's degradation prior, whatever the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct DegradationEstimate {
    /// Content embedding F_c.
    pub content: Vec<f32>,
    /// Degradation embedding F_d.
    pub degradation: Vec<f32>,
    /// Probability of each kind, in [`DegradationKind::ALL`] order.
    pub probabilities: [f32; 5],
}

/// A degradation/content embedding model.
pub trait DegradationBackend: Send + Sync + 'static {
    /// Name reported in every prior and checked against the restorer's manifest.
    fn name(&self) -> &str;
    /// Whether the backend batches requests itself (and records its own model metrics).
    fn is_batched(&self) -> bool {
        false
    }
    /// Embeds one image.
    fn embed(&self, image: &Rgb8Image) -> Result<DegradationEstimate, DegradationError>;
}

/// The compact encoder trained on synthetic degradations of real photos.
pub struct EncoderBackend {
    // Tensors are `Send` but not `Sync`; one forward pass at a time also suits the CPU, where
    // libtorch already spreads each pass over every core.
    network: Mutex<(nn::VarStore, DegradationEncoder)>,
    device: Device,
    max_side: u32,
}

impl std::fmt::Debug for EncoderBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderBackend")
            .field("device", &self.device)
            .field("max_side", &self.max_side)
            .finish_non_exhaustive()
    }
}

impl EncoderBackend {
    /// Loads the encoder named by `config.model` (or initialises it, for tests).
    pub fn load(config: &DegradationConfig) -> Result<Self, DegradationError> {
        let model = &config.model;
        let load_error = |reason: String| DegradationError::Load {
            what: format!("degradation encoder {}", model.weights.display()),
            reason,
        };
        let device = parse_device(&model.device).map_err(|e| load_error(e.to_string()))?;
        let encoder_config = if model.random_init {
            tracing::warn!("degradation encoder uses random weights (random_init = true)");
            EncoderConfig::default()
        } else {
            let manifest_path = ModelManifest::path_for_weights(&model.weights);
            let manifest =
                ModelManifest::read(&manifest_path).map_err(|e| load_error(e.to_string()))?;
            match manifest.network {
                NetworkConfig::Encoder(encoder) => encoder,
                NetworkConfig::ClearAir(_) => {
                    return Err(load_error(format!(
                        "{} describes a restorer, not an encoder",
                        manifest_path.display()
                    )));
                }
            }
        };
        if encoder_config.content_dim != EMBEDDING_WIDTH as i64
            || encoder_config.degradation_dim != EMBEDDING_WIDTH as i64
        {
            return Err(load_error(format!(
                "embeddings are {}/{} wide; the mesh carries {EMBEDDING_WIDTH}",
                encoder_config.content_dim, encoder_config.degradation_dim
            )));
        }
        let mut store = nn::VarStore::new(device);
        let network = DegradationEncoder::new(&store.root(), &encoder_config);
        if !model.random_init {
            load_weights(&mut store, &model.weights).map_err(|e| load_error(e.to_string()))?;
        }
        Ok(Self {
            network: Mutex::new((store, network)),
            device,
            max_side: config.max_side,
        })
    }
}

fn to_vec(tensor: &Tensor) -> Result<Vec<f32>, DegradationError> {
    Vec::<f32>::try_from(tensor.to_device(Device::Cpu).flatten(0, -1)).map_err(|e| {
        DegradationError::Model(clearair_model::ModelError::Config(format!(
            "reading the encoder's output: {e}"
        )))
    })
}

impl DegradationBackend for EncoderBackend {
    fn name(&self) -> &str {
        "clearair-encoder"
    }

    fn embed(&self, image: &Rgb8Image) -> Result<DegradationEstimate, DegradationError> {
        let scaled = image.shrunk_to(self.max_side)?;
        let image = scaled.as_ref().unwrap_or(image);
        let planar = image.to_planar_f32();
        let input = Tensor::from_slice(&planar)
            .view([1, 3, i64::from(image.height()), i64::from(image.width())])
            .to_device(self.device);
        let guard = self.network.lock().expect("encoder lock poisoned");
        let output = tch::no_grad(|| guard.1.forward(&input));
        drop(guard);
        let probabilities = to_vec(&output.probabilities())?;
        let probabilities: [f32; 5] = probabilities.try_into().map_err(|p: Vec<f32>| {
            DegradationError::Model(clearair_model::ModelError::Config(format!(
                "the encoder returned {} probabilities; expected {}",
                p.len(),
                DegradationKind::ALL.len()
            )))
        })?;
        Ok(DegradationEstimate {
            content: to_vec(&output.content)?,
            degradation: to_vec(&output.degradation)?,
            probabilities,
        })
    }
}

/// Loads the configured backend.
pub fn load(config: &DegradationConfig) -> Result<Box<dyn DegradationBackend>, DegradationError> {
    match config.backend {
        DegradationBackendKind::Encoder => Ok(Box::new(EncoderBackend::load(config)?)),
        DegradationBackendKind::Torchscript => Ok(Box::new(TorchScriptBackend::load(
            &config.torchscript,
            &config.model.device,
            &config.batching,
        )?)),
    }
}

/// Embeds a synthetic image once and checks the output's shape and values.
pub fn warm_up(backend: &dyn DegradationBackend) -> Result<(), DegradationError> {
    let (width, height) = (80u32, 60u32);
    let data = (0..width * height)
        .flat_map(|i| {
            let v = (i * 37 % 256) as u8;
            [v, 255 - v, v / 2]
        })
        .collect();
    let image = Rgb8Image::new(width, height, data).expect("consistent warm-up image");
    let estimate = backend.embed(&image)?;
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if estimate.content.len() != EMBEDDING_WIDTH
        || estimate.degradation.len() != EMBEDDING_WIDTH
        || !finite(&estimate.content)
        || !finite(&estimate.degradation)
        || !finite(&estimate.probabilities)
    {
        return Err(DegradationError::Load {
            what: format!("{} backend", backend.name()),
            reason: format!(
                "warm-up produced F_c of {} and F_d of {} values (want {EMBEDDING_WIDTH} finite each)",
                estimate.content.len(),
                estimate.degradation.len()
            ),
        });
    }
    Ok(())
}
