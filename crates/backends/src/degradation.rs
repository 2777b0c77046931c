//! Degradation backends: the [`DegradationBackend`] trait, the compact encoder trained here
//! and the loader that picks it or DA-CLIP over TorchScript ([`torchscript`]).
//!
//! Training holds its encoder in memory and computes `F_c`/`F_d` through the same code as
//! the service: [`EncoderBackend::from_network`] wraps a network it owns, [`encode`] one it
//! only borrows; both frame the image the same way first ([`EncoderView`]).

pub mod torchscript;

use std::sync::{Arc, Mutex};

use clearair_batch::{BatchObserver, BatchingConfig};
use clearair_imaging::Rgb8Image;
pub use clearair_model::GateView;
use clearair_model::{
    DegradationEncoder, DegradationKind, EncoderConfig, EncoderOutput, ModelError, ModelManifest,
    NetworkConfig, TorchScriptConfig, load_weights, parse_device,
};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor, nn};

use crate::{ModelConfig, error::BackendError};
use torchscript::TorchScriptBackend;

/// Width of F_c and F_d on the wire, as DA-CLIP produces them.
pub const EMBEDDING_WIDTH: usize = clearair_proto::contract::EMBEDDING_WIDTH;

/// Name of the encoder backend, reported with every prior it computes.
pub const ENCODER_BACKEND_NAME: &str = "clearair-encoder";

/// Long side images are shrunk to before the encoder (the scale it was trained at), or the
/// side of the centred square it sees ([`EncoderView::Centre`]).
pub const ENCODER_MAX_SIDE: u32 = 256;

/// What part of an image, at what scale, the compact encoder sees. A restorer is trained on
/// the embeddings of one view and must be served that view: the view is part of the
/// backend's name ([`EncoderView::backend_name`]), which the restorer's manifest records and
/// the restoration service checks on every prior.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderView {
    /// The whole image, shrunk so its long side is at most `max_side` (blur and noise
    /// shrink with it: a 512-pixel photo's blur is halved before the encoder sees it).
    #[default]
    Whole,
    /// The centred `max_side` square at the image's own scale (a shorter side is kept
    /// whole), so blur and noise are seen at the scale the restorer undoes them.
    Centre,
    /// Both, each for what it sees best: F_c (what the image shows) from the whole image
    /// shrunk, F_d and the kind probabilities (how it is degraded) from the centred square at
    /// its own scale. Two forward passes for an image larger than the square.
    Split,
}

impl EncoderView {
    /// Every view, in the order the names below list them.
    pub const ALL: [EncoderView; 3] = [EncoderView::Whole, EncoderView::Centre, EncoderView::Split];

    /// The encoder backend's name under this view, reported with every prior it computes.
    pub fn backend_name(self) -> &'static str {
        match self {
            EncoderView::Whole => ENCODER_BACKEND_NAME,
            EncoderView::Centre => "clearair-encoder/centre",
            EncoderView::Split => "clearair-encoder/split",
        }
    }

    /// The view as the degradation service's `view` setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EncoderView::Whole => "whole",
            EncoderView::Centre => "centre",
            EncoderView::Split => "split",
        }
    }

    /// The view whose backend name is `name`, if `name` is the encoder's.
    pub fn from_backend_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|view| view.backend_name() == name)
    }

    /// What the encoder sees of `image` for F_d and the kind probabilities, or `None` when
    /// that is `image` itself.
    pub fn frame(
        self,
        image: &Rgb8Image,
        max_side: u32,
    ) -> Result<Option<Rgb8Image>, BackendError> {
        match self {
            EncoderView::Whole => Ok(image.shrunk_to(max_side)?),
            EncoderView::Centre | EncoderView::Split => {
                let (width, height) = (image.width().min(max_side), image.height().min(max_side));
                if (width, height) == (image.width(), image.height()) {
                    return Ok(None);
                }
                let (x, y) = ((image.width() - width) / 2, (image.height() - height) / 2);
                Ok(Some(image.crop(x, y, width, height)?))
            }
        }
    }

    /// What the encoder sees of `image` for F_c, or `None` when that is `image` itself.
    pub fn content_frame(
        self,
        image: &Rgb8Image,
        max_side: u32,
    ) -> Result<Option<Rgb8Image>, BackendError> {
        match self {
            EncoderView::Whole | EncoderView::Split => EncoderView::Whole.frame(image, max_side),
            EncoderView::Centre => self.frame(image, max_side),
        }
    }
}

/// Which degradation backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DegradationBackendKind {
    /// The compact encoder trained here (`models/degradation-encoder.safetensors`).
    #[default]
    Encoder,
    /// DA-CLIP exported by `deploy/export/daclip.py` (`torchscript`, batched).
    Torchscript,
}

/// Which degradation backend to load, and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DegradationBackendConfig {
    /// The backend.
    pub backend: DegradationBackendKind,
    /// The encoder's weights, and the device of either backend.
    pub model: ModelConfig,
    /// The exported module (backend = "torchscript").
    pub torchscript: TorchScriptConfig,
    /// Dynamic batching of the TorchScript backend.
    pub batching: BatchingConfig,
    /// Images are shrunk so their long side is at most this before the encoder, or cropped
    /// to a centred square of this side ([`EncoderView`]).
    pub max_side: u32,
    /// What of an image the encoder sees (encoder backend only).
    pub view: EncoderView,
    /// Where a refiner's gate reads the kind probabilities, sent beside the served ones
    /// (encoder backend only; `served` sends none).
    pub gate_view: GateView,
}

impl Default for DegradationBackendConfig {
    fn default() -> Self {
        Self {
            backend: DegradationBackendKind::Encoder,
            model: ModelConfig::with_weights("models/degradation-encoder.safetensors"),
            torchscript: TorchScriptConfig::with_module("models/daclip.pt"),
            batching: BatchingConfig::default(),
            max_side: ENCODER_MAX_SIDE,
            view: EncoderView::Whole,
            // The committed blur refiner's gate reads the tiles (its manifest's
            // refiner_gate.view); DA-CLIP deployments set "served".
            gate_view: GateView::Tiles,
        }
    }
}

/// One image's degradation prior, whatever the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct DegradationEstimate {
    /// Content embedding F_c.
    pub content: Vec<f32>,
    /// Degradation embedding F_d.
    pub degradation: Vec<f32>,
    /// Probability of each kind, in [`DegradationKind::ALL`] order.
    pub probabilities: [f32; 5],
    /// The kind probabilities a refiner's gate reads, and the view they were read in; None
    /// when the gate reads `probabilities`.
    pub gate: Option<(GateView, [f32; 5])>,
}

/// A degradation/content embedding model.
pub trait DegradationBackend: Send + Sync + 'static {
    /// Name reported in every prior and checked against the restorer's manifest.
    fn name(&self) -> &str;
    /// Whether the backend batches requests itself (and reports each batch to its observer).
    fn is_batched(&self) -> bool {
        false
    }
    /// Embeds one image.
    fn embed(&self, image: &Rgb8Image) -> Result<DegradationEstimate, BackendError>;
}

/// The compact encoder trained on synthetic degradations of real photos.
pub struct EncoderBackend {
    // Tensors are `Send` but not `Sync`; one forward pass at a time also suits the CPU, where
    // libtorch already spreads each pass over every core.
    network: Mutex<DegradationEncoder>,
    // The store the weights were loaded into, when this backend loaded them.
    _store: Option<nn::VarStore>,
    device: Device,
    max_side: u32,
    view: EncoderView,
    gate_view: GateView,
}

impl std::fmt::Debug for EncoderBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderBackend")
            .field("device", &self.device)
            .field("max_side", &self.max_side)
            .field("view", &self.view)
            .field("gate_view", &self.gate_view)
            .finish_non_exhaustive()
    }
}

impl EncoderBackend {
    /// Loads the encoder named by `config.model` (or initialises it, for tests).
    pub fn load(config: &DegradationBackendConfig) -> Result<Self, BackendError> {
        let model = &config.model;
        let what = format!("degradation encoder {}", model.weights.display());
        let device = parse_device(&model.device).map_err(|e| BackendError::load(&what, e))?;
        if model.precision != crate::Precision::Fp32 {
            return Err(BackendError::load(
                &what,
                "model.precision: the degradation encoder runs in fp32 only (bf16 is a restorer \
                 setting)",
            ));
        }
        let encoder_config = if model.random_init {
            tracing::warn!("degradation encoder uses random weights (random_init = true)");
            EncoderConfig::default()
        } else {
            let manifest_path = ModelManifest::path_for_weights(&model.weights);
            let manifest =
                ModelManifest::read(&manifest_path).map_err(|e| BackendError::load(&what, e))?;
            match manifest.network {
                NetworkConfig::Encoder(encoder) => encoder,
                NetworkConfig::ClearAir(_) => {
                    return Err(BackendError::load(
                        &what,
                        format!(
                            "{} describes a restorer, not an encoder",
                            manifest_path.display()
                        ),
                    ));
                }
            }
        };
        if encoder_config.content_dim != EMBEDDING_WIDTH as i64
            || encoder_config.degradation_dim != EMBEDDING_WIDTH as i64
        {
            return Err(BackendError::load(
                &what,
                format!(
                    "embeddings are {}/{} wide; the mesh carries {EMBEDDING_WIDTH}",
                    encoder_config.content_dim, encoder_config.degradation_dim
                ),
            ));
        }
        let mut store = nn::VarStore::new(device);
        let network = DegradationEncoder::new(&store.root(), &encoder_config);
        if !model.random_init {
            load_weights(&mut store, &model.weights).map_err(|e| BackendError::load(&what, e))?;
        }
        Ok(Self {
            network: Mutex::new(network),
            _store: Some(store),
            device,
            max_side: config.max_side,
            view: config.view,
            gate_view: config.gate_view,
        })
    }

    /// Wraps an encoder already built on `device` (training's, in memory), framing images
    /// with `view` and `max_side` as the service does.
    pub fn from_network(
        network: DegradationEncoder,
        device: Device,
        view: EncoderView,
        max_side: u32,
    ) -> Self {
        Self {
            network: Mutex::new(network),
            _store: None,
            device,
            max_side,
            view,
            gate_view: GateView::Served,
        }
    }

    /// The same backend, also reading the kind probabilities a refiner's gate reads in
    /// `gate_view`.
    pub fn with_gate_view(self, gate_view: GateView) -> Self {
        Self { gate_view, ..self }
    }
}

/// The encoder backend's computation for an encoder the caller holds (training's): `image`
/// framed by `view` and `max_side`, one forward pass on `device`, F_c, F_d and the kind
/// probabilities read back.
pub fn encode(
    network: &DegradationEncoder,
    device: Device,
    view: EncoderView,
    max_side: u32,
    image: &Rgb8Image,
) -> Result<DegradationEstimate, BackendError> {
    encode_with(image, device, view, max_side, |input| {
        tch::no_grad(|| network.forward(input))
    })
}

/// Prepares the encoder's input for `image`, runs `forward` on it and reads the outputs: the
/// one path of the encoder backend, whoever holds the network.
fn encode_with(
    image: &Rgb8Image,
    device: Device,
    view: EncoderView,
    max_side: u32,
    mut forward: impl FnMut(&Tensor) -> EncoderOutput,
) -> Result<DegradationEstimate, BackendError> {
    let input = |framed: &Option<Rgb8Image>| {
        image_tensor(framed.as_ref().unwrap_or(image)).to_device(device)
    };
    let framed = view.frame(image, max_side)?;
    let output = forward(&input(&framed));
    // Only the split view reads F_c from another frame, and only for an image larger than
    // the square: one inside it is neither shrunk nor cropped, so both frames are the image.
    let content = match view {
        EncoderView::Split if framed.is_some() => {
            forward(&input(&view.content_frame(image, max_side)?)).content
        }
        _ => output.content.shallow_clone(),
    };
    Ok(DegradationEstimate {
        content: to_vec(&content)?,
        degradation: to_vec(&output.degradation)?,
        probabilities: kind_probabilities(&output.probabilities())?,
        gate: None,
    })
}

/// `image` as the encoder's 1×3×h×w input, on the CPU.
fn image_tensor(image: &Rgb8Image) -> Tensor {
    Tensor::from_slice(&image.to_planar_f32()).view([
        1,
        3,
        i64::from(image.height()),
        i64::from(image.width()),
    ])
}

/// One probability per kind, read back from the encoder's 1×5 output.
fn kind_probabilities(probabilities: &Tensor) -> Result<[f32; 5], BackendError> {
    to_vec(probabilities)?.try_into().map_err(|p: Vec<f32>| {
        model_failed(ModelError::Config(format!(
            "the encoder returned {} probabilities; expected {}",
            p.len(),
            DegradationKind::ALL.len()
        )))
    })
}

/// The most gate tiles read along one side of an image: a photo larger than this many tiles
/// across is read in this many, spread evenly from edge to edge (a sample of it rather than
/// all of it), so the batched pass stays at most 16 tiles whatever the upload's size. Blur
/// from a lens or a shaking hand is in every part of a photo, so an even sample finds a
/// sharp part as the whole cover would; photos up to 4 × `max_side` are covered whole.
pub const GATE_TILES_PER_SIDE: u32 = 4;

/// Origins of the fewest `side`-long windows that cover `length`, at most
/// [`GATE_TILES_PER_SIDE`], spread evenly (the first at 0, the last ending at `length`); one
/// window at 0 when `length` fits in one.
fn tile_origins(length: u32, side: u32) -> Vec<u32> {
    if length <= side {
        return vec![0];
    }
    let count = length.div_ceil(side).min(GATE_TILES_PER_SIDE);
    let span = u64::from(length - side);
    (0..count)
        .map(|i| (span * u64::from(i) / u64::from(count - 1)) as u32)
        .collect()
}

/// The kind probabilities a gate reads in `view` for `image`: one encoder pass for the
/// centred square, one batched pass over every tile for [`GateView::Tiles`]; `None` for
/// [`GateView::Served`], whose probabilities the caller already has.
pub fn gate_probabilities(
    network: &DegradationEncoder,
    device: Device,
    view: GateView,
    max_side: u32,
    image: &Rgb8Image,
) -> Result<Option<[f32; 5]>, BackendError> {
    match view {
        GateView::Served => Ok(None),
        GateView::Centre => Ok(Some(
            encode(network, device, EncoderView::Centre, max_side, image)?.probabilities,
        )),
        GateView::Tiles => {
            let (width, height) = (image.width().min(max_side), image.height().min(max_side));
            let mut tiles = Vec::new();
            for &y in &tile_origins(image.height(), max_side) {
                for &x in &tile_origins(image.width(), max_side) {
                    tiles.push(image_tensor(&image.crop(x, y, width, height)?));
                }
            }
            let batch = Tensor::cat(&tiles, 0).to_device(device);
            let output = tch::no_grad(|| network.forward(&batch));
            Ok(Some(kind_probabilities(
                &output.probabilities().amin(0, false),
            )?))
        }
    }
}

/// A failure of the encoder.
fn model_failed(source: ModelError) -> BackendError {
    BackendError::Model {
        model: "degradation",
        source,
    }
}

fn to_vec(tensor: &Tensor) -> Result<Vec<f32>, BackendError> {
    Vec::<f32>::try_from(tensor.to_device(Device::Cpu).flatten(0, -1)).map_err(|e| {
        model_failed(ModelError::Config(format!(
            "reading the encoder's output: {e}"
        )))
    })
}

impl DegradationBackend for EncoderBackend {
    fn name(&self) -> &str {
        self.view.backend_name()
    }

    fn embed(&self, image: &Rgb8Image) -> Result<DegradationEstimate, BackendError> {
        let network = self.network.lock().expect("encoder lock poisoned");
        let mut estimate = encode_with(image, self.device, self.view, self.max_side, |input| {
            tch::no_grad(|| network.forward(input))
        })?;
        estimate.gate =
            gate_probabilities(&network, self.device, self.gate_view, self.max_side, image)?
                .map(|probabilities| (self.gate_view, probabilities));
        Ok(estimate)
    }
}

/// Loads the configured backend; a batching backend reports its batches to `observer`.
pub fn load(
    config: &DegradationBackendConfig,
    observer: Option<Arc<dyn BatchObserver>>,
) -> Result<Box<dyn DegradationBackend>, BackendError> {
    match config.backend {
        DegradationBackendKind::Encoder => Ok(Box::new(EncoderBackend::load(config)?)),
        DegradationBackendKind::Torchscript if config.gate_view != GateView::Served => {
            Err(BackendError::load(
                "degradation backend",
                format!(
                    "gate_view = \"{}\" reads the compact encoder again; DA-CLIP (backend = \
                     \"torchscript\") has no such reading: leave gate_view at \"served\"",
                    config.gate_view.as_str()
                ),
            ))
        }
        DegradationBackendKind::Torchscript if config.view != EncoderView::Whole => {
            Err(BackendError::load(
                "degradation backend",
                format!(
                    "view = \"{}\" frames the compact encoder's input; DA-CLIP (backend = \"torchscript\") \
                     frames its own (CLIP's centre crop at 224): leave view at \"whole\"",
                    config.view.as_str()
                ),
            ))
        }
        DegradationBackendKind::Torchscript => Ok(Box::new(TorchScriptBackend::load(
            &config.torchscript,
            &config.model.device,
            &config.batching,
            observer,
        )?)),
    }
}

/// Embeds a synthetic image once and checks the output's shape and values.
pub fn warm_up(backend: &dyn DegradationBackend) -> Result<(), BackendError> {
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
        return Err(BackendError::load(
            format!("{} backend", backend.name()),
            format!(
                "warm-up produced F_c of {} and F_d of {} values (want {EMBEDDING_WIDTH} finite each)",
                estimate.content.len(),
                estimate.degradation.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(width: u32, height: u32) -> Rgb8Image {
        let data = (0..width * height)
            .flat_map(|i| {
                let v = (i * 29 % 251) as u8;
                [v, v / 3, 255 - v]
            })
            .collect();
        Rgb8Image::new(width, height, data).unwrap()
    }

    /// The encoder backend on freshly initialised weights, seeing `view`, its gate reading
    /// `gate_view`.
    fn random_encoder(view: EncoderView, gate_view: GateView) -> DegradationBackendConfig {
        DegradationBackendConfig {
            model: ModelConfig {
                random_init: true,
                ..DegradationBackendConfig::default().model
            },
            view,
            gate_view,
            ..DegradationBackendConfig::default()
        }
    }

    #[test]
    fn bf16_is_refused_by_name() {
        let config = DegradationBackendConfig {
            model: ModelConfig {
                random_init: true,
                precision: crate::Precision::Bf16,
                ..DegradationBackendConfig::default().model
            },
            ..DegradationBackendConfig::default()
        };
        let error = EncoderBackend::load(&config).unwrap_err().to_string();
        assert!(error.contains("model.precision"), "{error}");
    }

    #[test]
    fn a_network_in_memory_embeds_as_the_loaded_backend_does() {
        for view in EncoderView::ALL {
            tch::manual_seed(7);
            // The served reading alone: `encode` makes no gate reading.
            let config = random_encoder(view, GateView::Served);
            let loaded = EncoderBackend::load(&config).unwrap();
            // A large image: both paths frame it the same way first.
            let image = photo(600, 300);
            let served = loaded.embed(&image).unwrap();
            assert_eq!(served.content.len(), EMBEDDING_WIDTH);

            let network = loaded.network.into_inner().unwrap();
            let borrowed = encode(&network, Device::Cpu, view, ENCODER_MAX_SIDE, &image).unwrap();
            assert_eq!(borrowed, served, "{view:?}");
            let wrapped =
                EncoderBackend::from_network(network, Device::Cpu, view, ENCODER_MAX_SIDE);
            assert_eq!(wrapped.name(), view.backend_name());
            assert_eq!(wrapped.embed(&image).unwrap(), served, "{view:?}");
            warm_up(&wrapped).unwrap();
        }
    }

    #[test]
    fn tiles_cover_the_image_evenly_and_the_least_reading_of_each_kind_is_sent() {
        assert_eq!(tile_origins(200, 256), vec![0]);
        assert_eq!(tile_origins(256, 256), vec![0]);
        assert_eq!(tile_origins(512, 256), vec![0, 256]);
        assert_eq!(tile_origins(600, 256), vec![0, 172, 344]);
        assert_eq!(tile_origins(257, 256), vec![0, 1]);
        // Up to four across cover the side; beyond that four spread from edge to edge.
        assert_eq!(tile_origins(1024, 256), vec![0, 256, 512, 768]);
        assert_eq!(tile_origins(1025, 256), vec![0, 256, 512, 769]);
        assert_eq!(tile_origins(8000, 256), vec![0, 2581, 5162, 7744]);

        tch::manual_seed(11);
        let config = random_encoder(EncoderView::Whole, GateView::Tiles);
        let backend = EncoderBackend::load(&config).unwrap();
        let image = photo(600, 300);
        let served = backend.embed(&image).unwrap();
        let (view, gate) = served.gate.expect("a gate reading in the tiles view");
        assert_eq!(view, GateView::Tiles);
        // Each kind's least over the six tiles (three across, two down), each read alone.
        let network = backend.network.lock().unwrap();
        let mut least = [f32::INFINITY; 5];
        for y in [0, 44] {
            for x in [0, 172, 344] {
                let tile = image.crop(x, y, 256, 256).unwrap();
                let alone = encode(&network, Device::Cpu, EncoderView::Whole, 256, &tile)
                    .unwrap()
                    .probabilities;
                for (least, p) in least.iter_mut().zip(alone) {
                    *least = least.min(p);
                }
            }
        }
        for (batched, alone) in gate.iter().zip(least) {
            assert!((batched - alone).abs() < 1e-5, "{gate:?} against {least:?}");
        }
        // F_d and the served probabilities are those of the served view, gate or not.
        let plain = encode(&network, Device::Cpu, EncoderView::Whole, 256, &image).unwrap();
        assert_eq!(
            (&served.degradation, served.probabilities),
            (&plain.degradation, plain.probabilities)
        );
        // The centre view's reading is the centred square's; the served one sends none.
        assert_eq!(
            gate_probabilities(&network, Device::Cpu, GateView::Centre, 256, &image).unwrap(),
            Some(
                encode(&network, Device::Cpu, EncoderView::Centre, 256, &image)
                    .unwrap()
                    .probabilities
            )
        );
        assert_eq!(
            gate_probabilities(&network, Device::Cpu, GateView::Served, 256, &image).unwrap(),
            None
        );
    }

    #[test]
    fn da_clip_refuses_a_gate_view() {
        let config = DegradationBackendConfig {
            backend: DegradationBackendKind::Torchscript,
            gate_view: GateView::Centre,
            ..DegradationBackendConfig::default()
        };
        let error = load(&config, None).err().expect("refused").to_string();
        assert!(error.contains("gate_view"), "{error}");
    }

    #[test]
    fn the_whole_view_shrinks_and_the_centre_view_crops_at_the_images_own_scale() {
        let image = photo(600, 300);
        let whole = EncoderView::Whole.frame(&image, 256).unwrap().unwrap();
        assert_eq!((whole.width(), whole.height()), (256, 128));
        let centre = EncoderView::Centre.frame(&image, 256).unwrap().unwrap();
        assert_eq!(centre, image.crop(172, 22, 256, 256).unwrap());
        // A side shorter than the square is kept whole; an image inside it is seen as it is.
        let wide = photo(400, 100);
        let centre = EncoderView::Centre.frame(&wide, 256).unwrap().unwrap();
        assert_eq!(centre, wide.crop(72, 0, 256, 100).unwrap());
        for view in EncoderView::ALL {
            assert_eq!(view.frame(&photo(200, 256), 256).unwrap(), None, "{view:?}");
            assert_eq!(view.content_frame(&photo(200, 256), 256).unwrap(), None);
        }
        // The split view reads the degradation from the square, the content from the whole.
        assert_eq!(
            EncoderView::Split.frame(&image, 256).unwrap(),
            EncoderView::Centre.frame(&image, 256).unwrap()
        );
        assert_eq!(
            EncoderView::Split.content_frame(&image, 256).unwrap(),
            EncoderView::Whole.frame(&image, 256).unwrap()
        );
    }

    #[test]
    fn each_view_has_its_own_backend_name() {
        assert_eq!(EncoderView::Whole.backend_name(), ENCODER_BACKEND_NAME);
        assert_ne!(
            EncoderView::Centre.backend_name(),
            EncoderView::Whole.backend_name()
        );
        for view in EncoderView::ALL {
            assert_eq!(
                EncoderView::from_backend_name(view.backend_name()),
                Some(view)
            );
        }
        assert_eq!(EncoderView::from_backend_name("daclip"), None);
    }

    #[test]
    fn the_centre_view_embeds_the_centred_square_and_says_so_by_name() {
        tch::manual_seed(11);
        let config = random_encoder(EncoderView::Centre, GateView::Served);
        let loaded = EncoderBackend::load(&config).unwrap();
        assert_eq!(loaded.name(), EncoderView::Centre.backend_name());
        let image = photo(520, 300);
        let served = loaded.embed(&image).unwrap();
        let network = loaded.network.into_inner().unwrap();
        let square = image.crop(132, 22, 256, 256).unwrap();
        let whole_of_square = encode(
            &network,
            Device::Cpu,
            EncoderView::Whole,
            ENCODER_MAX_SIDE,
            &square,
        )
        .unwrap();
        assert_eq!(served, whole_of_square);
        let whole = encode(
            &network,
            Device::Cpu,
            EncoderView::Whole,
            ENCODER_MAX_SIDE,
            &image,
        )
        .unwrap();
        assert_ne!(served, whole);
    }

    #[test]
    fn the_split_view_takes_the_content_of_the_whole_and_the_degradation_of_the_square() {
        tch::manual_seed(13);
        let store = nn::VarStore::new(Device::Cpu);
        let network = DegradationEncoder::new(&store.root(), &EncoderConfig::default());
        let image = photo(520, 300);
        let read = |view| encode(&network, Device::Cpu, view, ENCODER_MAX_SIDE, &image).unwrap();
        let (whole, centre, split) = (
            read(EncoderView::Whole),
            read(EncoderView::Centre),
            read(EncoderView::Split),
        );
        assert_eq!(split.content, whole.content);
        assert_eq!(split.degradation, centre.degradation);
        assert_eq!(split.probabilities, centre.probabilities);
        assert_ne!(split.content, centre.content);
    }

    #[test]
    fn only_the_split_view_of_an_image_larger_than_the_square_takes_two_passes() {
        tch::manual_seed(17);
        let store = nn::VarStore::new(Device::Cpu);
        let network = DegradationEncoder::new(&store.root(), &EncoderConfig::default());
        for (view, side, passes) in [
            (EncoderView::Whole, 400, 1),
            (EncoderView::Centre, 400, 1),
            (EncoderView::Split, 400, 2),
            (EncoderView::Split, 200, 1),
        ] {
            let mut count = 0;
            encode_with(&photo(side, side), Device::Cpu, view, 256, |input| {
                count += 1;
                tch::no_grad(|| network.forward(input))
            })
            .unwrap();
            assert_eq!(count, passes, "{view:?} of a {side}² image");
        }
    }

    #[test]
    fn da_clip_refuses_a_view_of_the_compact_encoder() {
        let config = DegradationBackendConfig {
            backend: DegradationBackendKind::Torchscript,
            view: EncoderView::Centre,
            gate_view: GateView::Served,
            ..DegradationBackendConfig::default()
        };
        let error = load(&config, None).err().unwrap().to_string();
        assert!(error.contains("view = \"centre\""), "{error}");
    }
}
