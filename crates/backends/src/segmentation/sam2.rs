//! SAM2 over TorchScript with automatic mask generation written here: the two modules
//! `deploy/export/sam2_export.py` writes (image encoder; prompt encoder + mask decoder).
//! SAM2's transform (antialiased bilinear resize to 1024², ImageNet mean/std) runs here with
//! libtorch's own kernel; concurrent requests share encoder batches (`[batching]`); then, per
//! image, what `SAM2AutomaticMaskGenerator` does with one crop layer:
//!
//! 1. a `points_per_side²` grid of single-point prompts, in batches of `points_per_batch`;
//! 2. three masks per prompt, upsampled (bilinear) from the decoder's low-resolution logits
//!    to the image;
//! 3. masks whose predicted IoU is at most `pred_iou_thresh`, or whose stability score (the
//!    IoU of the mask thresholded at `mask_threshold ± stability_score_offset`) is below
//!    `stability_score_thresh`, are dropped (a threshold of 0 turns its filter off);
//! 4. greedy box NMS at `box_nms_thresh` over the boxes around the masks, best predicted IoU
//!    first (as `torchvision.ops.batched_nms` with one category);
//! 5. the best `max_masks` (≤ 16) are kept.
//!
//! Arithmetic follows the upstream code step for step (grid in f64 then f32, the same
//! libtorch upsampling, f32 box IoU), so on the same weights the masks match
//! `SAM2AutomaticMaskGenerator`'s (`tests/sam2_parity.rs`).

use std::sync::Arc;

use clearair_batch::{BatchObserver, Batcher, BatchingConfig};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_model::{ExportManifest, ModelError, ScriptModel, TorchScriptConfig};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::{
    error::{BackendError, Reason},
    segmentation::SegmentationBackend,
};

/// A failure of SAM2's modules.
fn model_failed(source: ModelError) -> BackendError {
    BackendError::Model {
        model: "segmentation",
        source,
    }
}

/// The automatic mask generator's settings; the defaults are SAM2's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmgConfig {
    /// Prompts per side of the point grid.
    pub points_per_side: u32,
    /// Prompts per decoder call.
    pub points_per_batch: u32,
    /// Masks whose predicted IoU is not above this are dropped (0 = keep all).
    pub pred_iou_thresh: f32,
    /// Masks whose stability score is below this are dropped (0 = keep all).
    pub stability_score_thresh: f32,
    /// Half-width of the logit band the stability score compares across.
    pub stability_score_offset: f32,
    /// Logit above which a pixel is in the mask.
    pub mask_threshold: f32,
    /// Box IoU above which the lower-scored of two masks is dropped.
    pub box_nms_thresh: f32,
    /// Images are scaled so their long side is at most this for mask generation; the kept
    /// masks are scaled back to the image (logits at full size would need gigabytes).
    pub max_side: u32,
}

impl Default for AmgConfig {
    fn default() -> Self {
        Self {
            points_per_side: 32,
            points_per_batch: 64,
            pred_iou_thresh: 0.8,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            mask_threshold: 0.0,
            box_nms_thresh: 0.7,
            max_side: 1024,
        }
    }
}

impl AmgConfig {
    /// Checks the values, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.points_per_side == 0 || self.points_per_side > 128 {
            return Err(format!(
                "sam2.points_per_side is {}; use 1..=128 (SAM2's default is 32)",
                self.points_per_side
            ));
        }
        if self.points_per_batch == 0 {
            return Err("sam2.points_per_batch must be at least 1".to_owned());
        }
        for (name, value) in [
            ("pred_iou_thresh", self.pred_iou_thresh),
            ("stability_score_thresh", self.stability_score_thresh),
            ("box_nms_thresh", self.box_nms_thresh),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("sam2.{name} is {value}; it must lie in [0, 1]"));
            }
        }
        if !self.stability_score_offset.is_finite() || !self.mask_threshold.is_finite() {
            return Err("sam2.stability_score_offset and mask_threshold must be finite".into());
        }
        if self.max_side < 16 {
            return Err(format!(
                "sam2.max_side is {}; use at least 16",
                self.max_side
            ));
        }
        Ok(())
    }
}

/// One mask the generator keeps, at the resolution it generated at.
#[derive(Debug)]
pub struct GeneratedMask {
    /// `H × W` booleans on the CPU.
    pub mask: Tensor,
    /// The decoder's predicted IoU.
    pub predicted_iou: f32,
    /// IoU of the mask at `mask_threshold ± stability_score_offset`.
    pub stability_score: f32,
    /// `[x0, y0, x1, y1]`, inclusive pixel indices (`[0, 0, 0, 0]` when empty).
    pub bbox: [f32; 4],
}

/// The grid of prompts, as `build_point_grid` makes it: `n²` points in the unit square,
/// row by row, each at the centre of its cell (numpy's `linspace`, last point exact).
pub fn point_grid(n: u32) -> Vec<[f64; 2]> {
    let offset = 1.0 / (2.0 * f64::from(n));
    let (start, stop) = (offset, 1.0 - offset);
    let step = if n > 1 {
        (stop - start) / f64::from(n - 1)
    } else {
        0.0
    };
    let side: Vec<f64> = (0..n)
        .map(|i| {
            if n > 1 && i == n - 1 {
                stop
            } else {
                f64::from(i) * step + start
            }
        })
        .collect();
    side.iter()
        .flat_map(|&y| side.iter().map(move |&x| [x, y]))
        .collect()
}

/// Boxes around boolean masks `[N, H, W]` as `batched_mask_to_box` computes them.
fn mask_boxes(masks: &Tensor) -> Tensor {
    let size = masks.size();
    let (h, w) = (size[1], size[2]);
    let device = masks.device();
    let edges = |present: Tensor, extent: i64| {
        let coords = present.to_kind(Kind::Int64)
            * Tensor::arange(extent, (Kind::Int64, device)).unsqueeze(0);
        let last = coords.amax([-1i64].as_slice(), false);
        let first = (coords + present.logical_not().to_kind(Kind::Int64) * extent)
            .amin([-1i64].as_slice(), false);
        (first, last)
    };
    let (top, bottom) = edges(masks.any_dim(-1, false), h);
    let (left, right) = edges(masks.any_dim(-2, false), w);
    let boxes = Tensor::stack(&[&left, &top, &right, &bottom], -1);
    // An empty mask gets [0, 0, 0, 0].
    let empty = right.lt_tensor(&left).logical_or(&bottom.lt_tensor(&top));
    (boxes * empty.logical_not().unsqueeze(-1).to_kind(Kind::Int64)).to_kind(Kind::Float)
}

/// Greedy NMS, best score first, suppressing box IoU above `threshold` (torchvision's CPU
/// kernel: areas without +1, f32 arithmetic). Returns the kept indices, best first.
pub fn box_nms(boxes: &[[f32; 4]], scores: &[f32], threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (rank, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let a = &boxes[i];
        for &j in &order[rank + 1..] {
            if suppressed[j] {
                continue;
            }
            let b = &boxes[j];
            let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let inter = w * h;
            let iou = inter / (area(a) + area(b) - inter);
            if iou > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// The manifest's `outputs` section.
#[derive(Debug, Deserialize)]
struct OutputSection {
    image_embed: Vec<i64>,
    high_res_0: Vec<i64>,
    high_res_1: Vec<i64>,
    masks_per_prompt: i64,
    low_res_mask_side: i64,
}

/// The manifest's `input` section.
#[derive(Debug, Deserialize)]
struct InputSection {
    size: i64,
    resize: String,
    mean: [f32; 3],
    std: [f32; 3],
}

/// One image's encoder outputs (`image_embed`, `high_res_0`, `high_res_1`, batch of one).
type Features = Vec<Tensor>;

/// SAM2's two modules and the generator's settings.
pub struct Sam2Backend {
    encoder: Batcher<Tensor, Features, ModelError>,
    decoder: ScriptModel,
    outputs: std::sync::Arc<OutputSection>,
    input: InputSection,
    amg: AmgConfig,
    name: String,
}

impl std::fmt::Debug for Sam2Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sam2Backend")
            .field("batching", self.encoder.config())
            .field("decoder", &self.decoder)
            .field("amg", &self.amg)
            .finish_non_exhaustive()
    }
}

fn check(
    module: &std::path::Path,
    what: &str,
    tensor: &Tensor,
    expected: &[i64],
) -> Result<(), ModelError> {
    let expected: Vec<Option<i64>> = expected.iter().map(|&e| Some(e)).collect();
    clearair_model::check_shape(module, what, tensor, &expected)
}

/// One encoder pass over transformed images `[3, S, S]`, checked and split per image.
fn encode_batch(
    encoder: &ScriptModel,
    outputs: &OutputSection,
    items: Vec<Tensor>,
) -> Result<Vec<Features>, ModelError> {
    let count = items.len() as i64;
    let features = encoder.forward_on_device(&[Tensor::stack(&items, 0)])?;
    if features.len() != 3 {
        return Err(ModelError::Config(format!(
            "{}: the encoder returned {} outputs; expected 3 (image_embed, high_res_0, \
             high_res_1)",
            encoder.path().display(),
            features.len()
        )));
    }
    for (tensor, (what, shape)) in features.iter().zip([
        ("image_embed", &outputs.image_embed),
        ("high_res_0", &outputs.high_res_0),
        ("high_res_1", &outputs.high_res_1),
    ]) {
        let expected: Vec<i64> = std::iter::once(count)
            .chain(shape.iter().copied())
            .collect();
        check(encoder.path(), what, tensor, &expected)?;
    }
    Ok((0..count)
        .map(|i| features.iter().map(|f| f.narrow(0, i, 1)).collect())
        .collect())
}

impl Sam2Backend {
    /// Loads the encoder named by `torchscript` and the decoder its manifest names, on
    /// `device`, runs a full encoder batch and a prompt batch through them and starts the
    /// encoder's batching thread, which reports each batch to `observer`.
    pub fn load(
        torchscript: &TorchScriptConfig,
        device: &str,
        amg: &AmgConfig,
        batching: &BatchingConfig,
        observer: Option<Arc<dyn BatchObserver>>,
    ) -> Result<Self, BackendError> {
        let path = &torchscript.module;
        let what = format!("SAM2 module {}", path.display());
        let load_error = |reason: Reason| BackendError::load(&what, reason);
        amg.validate().map_err(|e| load_error(e.into()))?;
        batching
            .validate("batching")
            .map_err(|e| load_error(e.into()))?;
        let manifest =
            ExportManifest::read_for(path, "segmentation").map_err(|e| load_error(e.into()))?;
        let decoder_name: String = manifest
            .section("decoder")
            .map_err(|e| load_error(e.into()))?;
        let outputs: OutputSection = manifest
            .section("outputs")
            .map_err(|e| load_error(e.into()))?;
        let input: InputSection = manifest
            .section("input")
            .map_err(|e| load_error(e.into()))?;
        if input.resize != "bilinear-antialias" || input.size <= 0 {
            return Err(load_error(
                format!(
                    "{}: input resize `{}` to {}; this build resizes with `bilinear-antialias` \
                     to a positive size",
                    manifest.path.display(),
                    input.resize,
                    input.size
                )
                .into(),
            ));
        }
        let decoder_path = path.with_file_name(&decoder_name);
        let encoder = ScriptModel::load(path, device, torchscript.precision)
            .map_err(|e| load_error(e.into()))?;
        let decoder = ScriptModel::load(&decoder_path, device, torchscript.precision)
            .map_err(|e| load_error(e.into()))?;
        if manifest.source.random_init {
            tracing::warn!(module = %path.display(), "SAM2 modules have random weights");
        }
        let outputs = std::sync::Arc::new(outputs);
        // A full encoder batch: the largest allocation and the encoder's shapes.
        let side = input.size;
        let warm: Vec<Tensor> = (0..batching.max_batch_size)
            .map(|_| Tensor::zeros([3, side, side], (Kind::Float, Device::Cpu)))
            .collect();
        let features = encode_batch(&encoder, &outputs, warm)
            .map_err(|e| load_error(format!("warm-up: {e}").into()))?;
        tracing::info!(
            module = %path.display(),
            architecture = %manifest.architecture,
            parameters = manifest.parameters,
            device = ?encoder.device(),
            points = amg.points_per_side * amg.points_per_side,
            max_batch_size = batching.max_batch_size,
            "SAM2 modules loaded"
        );
        let batch_outputs = outputs.clone();
        let encoder = Batcher::spawn("segmentation-batcher", batching.clone(), observer, {
            move |items| encode_batch(&encoder, &batch_outputs, items)
        })
        .map_err(|e| load_error(format!("starting the batching thread: {e}").into()))?;
        let backend = Self {
            encoder,
            decoder,
            outputs,
            input,
            amg: amg.clone(),
            name: manifest.backend_name.clone(),
        };
        // A full prompt batch: the decoder's shapes.
        let coords = Tensor::full(
            [i64::from(amg.points_per_batch), 1, 2],
            10.0,
            (Kind::Float, Device::Cpu),
        );
        let _shapes_checked = backend
            .decode(&features[0], &coords)
            .map_err(|e| load_error(format!("warm-up: {e}").into()))?;
        Ok(backend)
    }

    /// The generator's settings.
    pub fn amg(&self) -> &AmgConfig {
        &self.amg
    }

    /// SAM2's transform of `image`: RGB / 255, antialiased bilinear resize to `S × S` with
    /// libtorch's kernel (what `F.interpolate(…, antialias=True)` runs), mean/std.
    pub fn transform(&self, image: &Rgb8Image) -> Tensor {
        let (w, h) = (i64::from(image.width()), i64::from(image.height()));
        let pixels = Tensor::from_slice(&image.to_planar_f32()).view([1, 3, h, w]);
        let side = self.input.size;
        let resized = pixels.internal_upsample_bilinear2d_aa([side, side], false, None, None);
        let mean = Tensor::from_slice(&self.input.mean).view([1, 3, 1, 1]);
        let std = Tensor::from_slice(&self.input.std).view([1, 3, 1, 1]);
        ((resized - mean) / std).squeeze_dim(0)
    }

    /// Low-resolution logits `[B, 3, s, s]` and predicted IoUs `[B, 3]` for `coords`
    /// (`[B, 1, 2]` in the encoder's input frame).
    fn decode(&self, features: &[Tensor], coords: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        let count = coords.size()[0];
        let labels = Tensor::ones([count, 1], (Kind::Int, Device::Cpu));
        let mut inputs: Vec<Tensor> = features.iter().map(Tensor::shallow_clone).collect();
        inputs.push(coords.shallow_clone());
        inputs.push(labels);
        let outputs = self.decoder.forward_on_device(&inputs)?;
        let [masks, ious] = <[Tensor; 2]>::try_from(outputs).map_err(|o| {
            ModelError::Config(format!(
                "{}: the decoder returned {} outputs; expected 2 (low_res_masks, \
                 iou_predictions)",
                self.decoder.path().display(),
                o.len()
            ))
        })?;
        let side = self.outputs.low_res_mask_side;
        let per = self.outputs.masks_per_prompt;
        check(
            self.decoder.path(),
            "low_res_masks",
            &masks,
            &[count, per, side, side],
        )?;
        check(self.decoder.path(), "iou_predictions", &ious, &[count, per])?;
        Ok((masks, ious))
    }

    /// Automatic mask generation on `image` at its own resolution: every mask that passes
    /// the filters and NMS, best first (no `max_masks` cut, no resizing).
    pub fn generate(&self, image: &Rgb8Image) -> Result<Vec<GeneratedMask>, BackendError> {
        let features = self
            .encoder
            .submit_blocking(self.transform(image))
            .map_err(|source| BackendError::Batch {
                model: "segmentation",
                source,
            })?;
        self.masks(&features, image.width(), image.height())
            .map_err(model_failed)
    }

    /// The generator's masks for a `w × h` image whose encoder outputs are `features`.
    fn masks(&self, features: &[Tensor], w: u32, h: u32) -> Result<Vec<GeneratedMask>, ModelError> {
        let amg = &self.amg;
        let resolution = self.input.size as f32;
        let grid = point_grid(amg.points_per_side);

        let mut masks_kept = Vec::new();
        let (mut scores, mut stabilities, mut boxes) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in grid.chunks(amg.points_per_batch as usize) {
            // numpy scales the grid in f64, torch takes it as f32, transform_coords
            // normalises by the size and scales to the model's input frame in f32.
            let coords: Vec<f32> = chunk
                .iter()
                .flat_map(|[x, y]| {
                    let px = (x * f64::from(w)) as f32;
                    let py = (y * f64::from(h)) as f32;
                    [px / w as f32 * resolution, py / h as f32 * resolution]
                })
                .collect();
            let coords = Tensor::from_slice(&coords).view([chunk.len() as i64, 1, 2]);
            let (low, ious) = self.decode(features, &coords)?;
            let logits = low
                .upsample_bilinear2d([i64::from(h), i64::from(w)], false, None, None)
                .flatten(0, 1);
            let ious = ious.flatten(0, 1);
            let mut keep = Tensor::ones([ious.size()[0]], (Kind::Bool, ious.device()));
            if amg.pred_iou_thresh > 0.0 {
                keep = keep.logical_and(&ious.gt(f64::from(amg.pred_iou_thresh)));
            }
            let count_above = |level: f32| {
                logits
                    .gt(f64::from(level))
                    .sum_dim_intlist([-1i64, -2].as_slice(), false, Kind::Int)
                    .to_kind(Kind::Float)
            };
            let stability = count_above(amg.mask_threshold + amg.stability_score_offset)
                / count_above(amg.mask_threshold - amg.stability_score_offset);
            if amg.stability_score_thresh > 0.0 {
                keep = keep.logical_and(&stability.ge(f64::from(amg.stability_score_thresh)));
            }
            let index = keep.nonzero().squeeze_dim(1);
            if index.size()[0] == 0 {
                continue;
            }
            let binary = logits
                .index_select(0, &index)
                .gt(f64::from(amg.mask_threshold));
            let batch_boxes = mask_boxes(&binary).to_device(Device::Cpu);
            let batch_boxes = Vec::<f32>::try_from(batch_boxes.flatten(0, -1))?;
            boxes.extend(
                batch_boxes
                    .chunks_exact(4)
                    .map(|b| [b[0], b[1], b[2], b[3]]),
            );
            scores.extend(Vec::<f32>::try_from(
                ious.index_select(0, &index).to_device(Device::Cpu),
            )?);
            stabilities.extend(Vec::<f32>::try_from(
                stability.index_select(0, &index).to_device(Device::Cpu),
            )?);
            masks_kept.push(binary.to_device(Device::Cpu));
        }
        if masks_kept.is_empty() {
            return Ok(Vec::new());
        }
        let all = Tensor::cat(&masks_kept, 0);
        Ok(box_nms(&boxes, &scores, amg.box_nms_thresh)
            .into_iter()
            .map(|i| GeneratedMask {
                mask: all.get(i as i64),
                predicted_iou: scores[i],
                stability_score: stabilities[i],
                bbox: boxes[i],
            })
            .collect())
    }
}

impl SegmentationBackend for Sam2Backend {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_batched(&self) -> bool {
        true
    }

    fn segment(&self, image: &Rgb8Image, max_masks: u32) -> Result<PackedMasks, BackendError> {
        let scaled = image.shrunk_to(self.amg.max_side)?;
        let work = scaled.as_ref().unwrap_or(image);
        let generated = self.generate(work)?;
        let (w, h) = (work.width(), work.height());
        let masks: Vec<Vec<bool>> = if generated.is_empty() {
            // No region passed the filters: one region, the whole image, scored 0, so the
            // restorer still gets a (neutral) region prior.
            vec![vec![true; (w * h) as usize]]
        } else {
            generated
                .iter()
                .take(max_masks as usize)
                .map(|m| Vec::<bool>::try_from(m.mask.flatten(0, -1)))
                .collect::<Result<_, _>>()
                .map_err(|e| model_failed(e.into()))?
        };
        let scores: Vec<f32> = if generated.is_empty() {
            vec![0.0]
        } else {
            generated
                .iter()
                .take(max_masks as usize)
                .map(|m| m.predicted_iou)
                .collect()
        };
        let packed = PackedMasks::from_bool_masks(w, h, &masks, &scores)?;
        Ok(if scaled.is_some() {
            packed.resized(image.width(), image.height())?
        } else {
            packed
        })
    }
}

#[cfg(test)]
mod tests;
