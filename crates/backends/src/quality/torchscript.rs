//! DeQA-Score over TorchScript: the module `deploy/export/deqa_export.py` writes, fed by
//! mPLUG-Owl2's preprocessing done in Rust and run in dynamic batches.
//!
//! Contract (checked at load and on every batch): input `[B, 3, S, S]` float pixels — the
//! image padded to a square with the manifest's colour (mPLUG-Owl2's `expand2square`), resized
//! to `S` with Pillow's bicubic filter, CLIP mean/std; outputs `(score [B], F_q [B, W])`, the
//! score in 1..5 from the level-word logits and `W` the manifest's feature width (4096 for
//! DeQA-Score).

use std::sync::Arc;

use clearair_batch::{BatchObserver, Batcher, BatchingConfig};
use clearair_imaging::{ClipPreprocess, Rgb8Image};
use clearair_model::{
    ExportManifest, ModelError, ScriptModel, check_shape, torchscript::TorchScriptConfig,
};
use clearair_priors::QualityLevel;
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::{
    error::{BackendError, Reason},
    quality::{QualityBackend, QualityEstimate},
};

/// The manifest's `input` section.
#[derive(Debug, Deserialize)]
struct InputSection {
    size: u32,
    pad: String,
    pad_colour: [u8; 3],
    resize: String,
    mean: [f32; 3],
    std: [f32; 3],
}

/// The manifest's `outputs` section.
#[derive(Debug, Deserialize)]
struct OutputSection {
    features: usize,
}

/// The DeQA-Score backend.
pub struct TorchScriptBackend {
    batcher: Batcher<Tensor, (f32, Vec<f32>), ModelError>,
    preprocess: ClipPreprocess,
    pad_colour: [u8; 3],
    width: usize,
    name: String,
}

impl std::fmt::Debug for TorchScriptBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchScriptBackend")
            .field("name", &self.name)
            .field("width", &self.width)
            .field("batching", self.batcher.config())
            .finish_non_exhaustive()
    }
}

/// mPLUG-Owl2's `expand2square`: the image centred on a square of `colour`, offsets floored.
pub fn expand_to_square(image: &Rgb8Image, colour: [u8; 3]) -> Result<Rgb8Image, BackendError> {
    let (w, h) = (image.width(), image.height());
    if w == h {
        return Ok(image.clone());
    }
    let side = w.max(h);
    let mut square = Rgb8Image::filled(side, side, colour)?;
    let (left, top) = ((side - w) / 2, (side - h) / 2);
    let stride = side as usize * 3;
    let row = w as usize * 3;
    let source = image.as_bytes();
    let target = square.as_bytes_mut();
    for y in 0..h as usize {
        let start = (top as usize + y) * stride + left as usize * 3;
        target[start..start + row].copy_from_slice(&source[y * row..(y + 1) * row]);
    }
    Ok(square)
}

fn run_batch(
    model: &ScriptModel,
    width: usize,
    items: Vec<Tensor>,
) -> Result<Vec<(f32, Vec<f32>)>, ModelError> {
    let count = items.len() as i64;
    let outputs = model.forward(&[Tensor::stack(&items, 0)])?;
    let [scores, features] = <[Tensor; 2]>::try_from(outputs).map_err(|o| {
        ModelError::Config(format!(
            "{}: the module returned {} outputs; expected 2 (score, F_q)",
            model.path().display(),
            o.len()
        ))
    })?;
    check_shape(model.path(), "score", &scores, &[Some(count)])?;
    check_shape(
        model.path(),
        "F_q",
        &features,
        &[Some(count), Some(width as i64)],
    )?;
    let scores = Vec::<f32>::try_from(scores)?;
    let features = Vec::<f32>::try_from(features.contiguous().flatten(0, -1))?;
    if !scores.iter().chain(&features).all(|v| v.is_finite()) {
        return Err(ModelError::Config(format!(
            "{}: the module returned NaN or infinite values",
            model.path().display()
        )));
    }
    Ok(scores
        .into_iter()
        .zip(features.chunks_exact(width).map(<[f32]>::to_vec))
        .collect())
}

impl TorchScriptBackend {
    /// Loads the module, runs a full warm-up batch and starts the batching thread, which
    /// reports each batch to `observer`.
    pub fn load(
        torchscript: &TorchScriptConfig,
        device: &str,
        batching: &BatchingConfig,
        observer: Option<Arc<dyn BatchObserver>>,
    ) -> Result<Self, BackendError> {
        let path = &torchscript.module;
        let what = format!("DeQA-Score module {}", path.display());
        let load_error = |reason: Reason| BackendError::load(&what, reason);
        batching
            .validate("batching")
            .map_err(|e| load_error(e.into()))?;
        let manifest =
            ExportManifest::read_for(path, "quality").map_err(|e| load_error(e.into()))?;
        let input: InputSection = manifest
            .section("input")
            .map_err(|e| load_error(e.into()))?;
        let outputs: OutputSection = manifest
            .section("outputs")
            .map_err(|e| load_error(e.into()))?;
        if input.pad != "square-mean-colour" || input.resize != "shorter-side-bicubic-pil" {
            return Err(load_error(
                format!(
                    "{}: input pad `{}` / resize `{}`; this build does `square-mean-colour` / \
                     `shorter-side-bicubic-pil`",
                    manifest.path.display(),
                    input.pad,
                    input.resize
                )
                .into(),
            ));
        }
        if input.size == 0 || outputs.features == 0 {
            return Err(load_error(
                format!(
                    "{}: input size {} and feature width {} must be positive",
                    manifest.path.display(),
                    input.size,
                    outputs.features
                )
                .into(),
            ));
        }
        let model = ScriptModel::load(path, device, torchscript.precision)
            .map_err(|e| load_error(e.into()))?;
        if manifest.source.random_init {
            tracing::warn!(module = %path.display(), "DeQA-Score module has random weights");
        }
        let width = outputs.features;
        let side = i64::from(input.size);
        let warm: Vec<Tensor> = (0..batching.max_batch_size)
            .map(|_| Tensor::zeros([3, side, side], (Kind::Float, Device::Cpu)))
            .collect();
        run_batch(&model, width, warm)
            .map_err(|e| load_error(format!("warm-up batch: {e}").into()))?;
        tracing::info!(
            module = %path.display(),
            architecture = %manifest.architecture,
            parameters = manifest.parameters,
            device = ?model.device(),
            precision = ?model.precision(),
            features = width,
            "DeQA-Score module loaded"
        );
        let batcher = Batcher::spawn("quality-batcher", batching.clone(), observer, {
            move |items| run_batch(&model, width, items)
        })
        .map_err(|e| load_error(format!("starting the batching thread: {e}").into()))?;
        Ok(Self {
            batcher,
            preprocess: ClipPreprocess {
                size: input.size,
                mean: input.mean,
                std: input.std,
            },
            pad_colour: input.pad_colour,
            width,
            name: manifest.backend_name,
        })
    }

    /// The network input for `image`, `[3, S, S]`.
    pub fn input(&self, image: &Rgb8Image) -> Result<Tensor, BackendError> {
        let square = expand_to_square(image, self.pad_colour)?;
        let planar = self.preprocess.apply(&square)?;
        let side = i64::from(self.preprocess.size);
        Ok(Tensor::from_slice(&planar).view([3, side, side]))
    }
}

impl QualityBackend for TorchScriptBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn feature_width(&self) -> usize {
        self.width
    }

    fn is_batched(&self) -> bool {
        true
    }

    fn assess(&self, image: &Rgb8Image) -> Result<QualityEstimate, BackendError> {
        let input = self.input(image)?;
        let (score, features) =
            self.batcher
                .submit_blocking(input)
                .map_err(|source| BackendError::Batch {
                    model: "quality",
                    source,
                })?;
        Ok(QualityEstimate {
            features,
            score,
            raw_score: score,
            level: QualityLevel::from_score(score),
        })
    }
}
