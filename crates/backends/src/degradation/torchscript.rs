//! DA-CLIP over TorchScript: the module `deploy/export/daclip.py` writes, fed by CLIP's
//! preprocessing done in Rust and run in dynamic batches.
//!
//! Contract (checked at load and on every batch): input `[B, 3, S, S]` float CLIP-normalised
//! pixels (`S` from the manifest, 224 for ViT-B/32); outputs `(F_c [B, 512], F_d [B, 512],
//! probabilities [B, 5])`, the kinds in the mesh's order.

use std::sync::Arc;

use clearair_batch::{BatchObserver, Batcher, BatchingConfig};
use clearair_imaging::{ClipPreprocess, Rgb8Image};
use clearair_model::{
    DegradationKind, ExportManifest, ModelError, ScriptModel, check_shape,
    torchscript::TorchScriptConfig,
};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::{
    degradation::{DegradationBackend, DegradationEstimate, EMBEDDING_WIDTH},
    error::{BackendError, Reason},
};

/// The manifest's `input` section.
#[derive(Debug, Deserialize)]
struct InputSection {
    size: u32,
    resize: String,
    crop: String,
    mean: [f32; 3],
    std: [f32; 3],
}

/// The manifest's `outputs` section.
#[derive(Debug, Deserialize)]
struct OutputSection {
    content: i64,
    degradation: i64,
    kinds: Vec<String>,
}

/// Kind names as the export writes them, in [`DegradationKind::ALL`] order.
const KIND_NAMES: [&str; 5] = ["noise", "haze", "rain", "blur", "low_light"];

/// The DA-CLIP backend.
pub struct TorchScriptBackend {
    batcher: Batcher<Tensor, DegradationEstimate, ModelError>,
    preprocess: ClipPreprocess,
    name: String,
}

impl std::fmt::Debug for TorchScriptBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchScriptBackend")
            .field("name", &self.name)
            .field("preprocess", &self.preprocess)
            .field("batching", self.batcher.config())
            .finish_non_exhaustive()
    }
}

/// Reads and checks the manifest's input and output sections.
fn contract(manifest: &ExportManifest) -> Result<ClipPreprocess, ModelError> {
    let input: InputSection = manifest.section("input")?;
    if input.resize != "shorter-side-bicubic-pil" || input.crop != "centre" {
        return Err(manifest.invalid(format!(
            "input resize `{}` / crop `{}`; this build preprocesses with \
             `shorter-side-bicubic-pil` / `centre`",
            input.resize, input.crop
        )));
    }
    if input.size == 0 || input.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(manifest.invalid(format!(
            "input size {} and std {:?} must be positive",
            input.size, input.std
        )));
    }
    let outputs: OutputSection = manifest.section("outputs")?;
    let width = EMBEDDING_WIDTH as i64;
    if outputs.content != width || outputs.degradation != width {
        return Err(manifest.invalid(format!(
            "F_c/F_d are {}/{} wide; the mesh carries {width}",
            outputs.content, outputs.degradation
        )));
    }
    if outputs.kinds != KIND_NAMES {
        return Err(manifest.invalid(format!(
            "kinds {:?}; the mesh expects {KIND_NAMES:?} in that order",
            outputs.kinds
        )));
    }
    Ok(ClipPreprocess {
        size: input.size,
        mean: input.mean,
        std: input.std,
    })
}

/// One forward pass over stacked inputs, checked and split per image.
fn run_batch(
    model: &ScriptModel,
    items: Vec<Tensor>,
) -> Result<Vec<DegradationEstimate>, ModelError> {
    let count = items.len() as i64;
    let input = Tensor::stack(&items, 0);
    let outputs = model.forward(&[input])?;
    let [content, degradation, probabilities] = <[Tensor; 3]>::try_from(outputs).map_err(|o| {
        ModelError::Config(format!(
            "{}: the module returned {} outputs; expected 3 (F_c, F_d, probabilities)",
            model.path().display(),
            o.len()
        ))
    })?;
    let width = Some(EMBEDDING_WIDTH as i64);
    let kinds = Some(DegradationKind::ALL.len() as i64);
    check_shape(model.path(), "F_c", &content, &[Some(count), width])?;
    check_shape(model.path(), "F_d", &degradation, &[Some(count), width])?;
    check_shape(
        model.path(),
        "probabilities",
        &probabilities,
        &[Some(count), kinds],
    )?;
    let rows = |t: &Tensor| -> Result<Vec<Vec<f32>>, ModelError> {
        let flat = Vec::<f32>::try_from(t.contiguous().flatten(0, -1))?;
        let width = flat.len() / count as usize;
        Ok(flat.chunks_exact(width).map(<[f32]>::to_vec).collect())
    };
    let (content, degradation, probabilities) =
        (rows(&content)?, rows(&degradation)?, rows(&probabilities)?);
    content
        .into_iter()
        .zip(degradation)
        .zip(probabilities)
        .map(|((content, degradation), probabilities)| {
            let finite = content
                .iter()
                .chain(&degradation)
                .chain(&probabilities)
                .all(|v| v.is_finite());
            if !finite {
                return Err(ModelError::Config(format!(
                    "{}: the module returned NaN or infinite values",
                    model.path().display()
                )));
            }
            Ok(DegradationEstimate {
                content,
                degradation,
                probabilities: probabilities.try_into().expect("width checked above"),
                gate: None,
            })
        })
        .collect()
}

impl TorchScriptBackend {
    /// Loads the module named by `torchscript` onto `device`, runs a full warm-up batch
    /// through it and starts the batching thread, which reports each batch to `observer`.
    pub fn load(
        torchscript: &TorchScriptConfig,
        device: &str,
        batching: &BatchingConfig,
        observer: Option<Arc<dyn BatchObserver>>,
    ) -> Result<Self, BackendError> {
        let path = &torchscript.module;
        let what = format!("DA-CLIP module {}", path.display());
        let load_error = |reason: Reason| BackendError::load(&what, reason);
        batching
            .validate("batching")
            .map_err(|e| load_error(e.into()))?;
        let manifest =
            ExportManifest::read_for(path, "degradation").map_err(|e| load_error(e.into()))?;
        let preprocess = contract(&manifest).map_err(|e| load_error(e.into()))?;
        let model = ScriptModel::load(path, device, torchscript.precision)
            .map_err(|e| load_error(e.into()))?;
        if manifest.source.random_init {
            tracing::warn!(module = %path.display(), "DA-CLIP module has random weights");
        }
        // A full batch: the largest allocation the service will make, and the shapes.
        let side = i64::from(preprocess.size);
        let warm: Vec<Tensor> = (0..batching.max_batch_size)
            .map(|_| Tensor::zeros([3, side, side], (Kind::Float, Device::Cpu)))
            .collect();
        run_batch(&model, warm).map_err(|e| load_error(format!("warm-up batch: {e}").into()))?;
        tracing::info!(
            module = %path.display(),
            architecture = %manifest.architecture,
            parameters = manifest.parameters,
            device = ?model.device(),
            precision = ?model.precision(),
            max_batch_size = batching.max_batch_size,
            "DA-CLIP module loaded"
        );
        let batcher = Batcher::spawn(
            "degradation-batcher",
            batching.clone(),
            observer,
            move |items| run_batch(&model, items),
        )
        .map_err(|e| load_error(format!("starting the batching thread: {e}").into()))?;
        Ok(Self {
            batcher,
            preprocess,
            name: manifest.backend_name,
        })
    }

    /// The network input for `image` (CLIP's preprocessing), `[3, S, S]`.
    pub fn input(&self, image: &Rgb8Image) -> Result<Tensor, BackendError> {
        let planar = self.preprocess.apply(image)?;
        let side = i64::from(self.preprocess.size);
        Ok(Tensor::from_slice(&planar).view([3, side, side]))
    }
}

impl DegradationBackend for TorchScriptBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_batched(&self) -> bool {
        true
    }

    fn embed(&self, image: &Rgb8Image) -> Result<DegradationEstimate, BackendError> {
        let input = self.input(image)?;
        self.batcher
            .submit_blocking(input)
            .map_err(|source| BackendError::Batch {
                model: "degradation",
                source,
            })
    }
}
