//! Weight files (safetensors through a `VarStore`) and the JSON manifest beside them that
//! records what the weights are and which prior backends they were trained with.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

use crate::config::{ClearAirConfig, EncoderConfig};
use crate::error::{ModelError, Result};

/// Number of trainable scalars in `store`.
pub fn parameter_count(store: &nn::VarStore) -> i64 {
    store
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

fn require_safetensors(path: &Path) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(ModelError::WeightsMismatch {
            path: path.to_path_buf(),
            detail: "weight files must have the .safetensors extension".into(),
        });
    }
    Ok(())
}

/// Writes every variable of `store` to `path` (must end in `.safetensors`), named by its
/// `nn::Path` (e.g. `latent.0.attn.qkv.weight`).
pub fn save_weights(store: &nn::VarStore, path: &Path) -> Result<()> {
    require_safetensors(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ModelError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    store.save(path)?;
    Ok(())
}

/// Loads `path` into `store`, first checking that the file holds exactly the store's
/// variables with the same shapes, so a file from another configuration is reported as
/// such (which tensors differ) rather than as a libtorch copy error.
pub fn load_weights(store: &mut nn::VarStore, path: &Path) -> Result<()> {
    load_weights_widening(store, path, None)
}

/// [`load_weights`], except that the store's variable `widened`, a convolution weight, may
/// read more input channels (its second dimension) than the file's: the file's kernels fill
/// the first channels and the added ones start at zero, so the network computes what the
/// file's did and ignores its added input until training moves those weights. This is how a
/// stage that also reads the upload starts from a trained stage that read the restorer's
/// output alone.
pub fn load_weights_widening(
    store: &mut nn::VarStore,
    path: &Path,
    widened: Option<&str>,
) -> Result<()> {
    require_safetensors(path)?;
    std::fs::metadata(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut stored: HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
    let variables = store.variables();
    if let Some(name) = widened {
        widen_input(name, &variables, &mut stored)?;
    }
    let mismatch = describe_mismatch(&variables, &stored);
    if !mismatch.is_empty() {
        return Err(ModelError::WeightsMismatch {
            path: path.to_path_buf(),
            detail: mismatch,
        });
    }
    tch::no_grad(|| -> Result<()> {
        for (name, variable) in &variables {
            variable.shallow_clone().f_copy_(&stored[name])?;
        }
        Ok(())
    })
}

/// Replaces the file's `name` by the store's shape of it, the file's input channels first and
/// zeros after, when the two differ only in that the store's reads more input channels;
/// leaves any other difference to the mismatch report.
fn widen_input(
    name: &str,
    expected: &HashMap<String, Tensor>,
    stored: &mut HashMap<String, Tensor>,
) -> Result<()> {
    let (Some(variable), Some(file)) = (expected.get(name), stored.get(name)) else {
        return Ok(());
    };
    let (want, have) = (variable.size(), file.size());
    let only_more_inputs = want.len() == have.len()
        && want.len() >= 2
        && have[1] < want[1]
        && want
            .iter()
            .zip(&have)
            .enumerate()
            .all(|(dim, (w, h))| dim == 1 || w == h);
    if only_more_inputs {
        let widened = Tensor::zeros(want.as_slice(), (file.kind(), file.device()));
        widened.narrow(1, 0, have[1]).f_copy_(file)?;
        stored.insert(name.to_owned(), widened);
    }
    Ok(())
}

/// Lists (a few of) the missing, unexpected and reshaped tensors; empty when they match.
fn describe_mismatch(
    expected: &HashMap<String, Tensor>,
    stored: &HashMap<String, Tensor>,
) -> String {
    const SHOWN: usize = 4;
    let sorted = |mut names: Vec<String>| {
        names.sort();
        names
    };
    let missing = sorted(
        expected
            .keys()
            .filter(|n| !stored.contains_key(*n))
            .cloned()
            .collect(),
    );
    let unexpected = sorted(
        stored
            .keys()
            .filter(|n| !expected.contains_key(*n))
            .cloned()
            .collect(),
    );
    let reshaped = sorted(
        expected
            .iter()
            .filter_map(|(name, tensor)| {
                let file = stored.get(name)?;
                (file.size() != tensor.size()).then(|| {
                    format!(
                        "{name} is {:?} in the file, {:?} in the network",
                        file.size(),
                        tensor.size()
                    )
                })
            })
            .collect(),
    );
    let mut parts = Vec::new();
    for (label, items) in [
        ("missing", missing),
        ("unexpected", unexpected),
        ("different shape", reshaped),
    ] {
        if items.is_empty() {
            continue;
        }
        let more = items.len().saturating_sub(SHOWN);
        let mut listed = items.into_iter().take(SHOWN).collect::<Vec<_>>().join(", ");
        if more > 0 {
            listed.push_str(&format!(" and {more} more"));
        }
        parts.push(format!("{label}: {listed}"));
    }
    parts.join("; ")
}

/// The quality backend a restorer was trained with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct QualityBackendSpec {
    /// Backend name, e.g. `brisque` or `deqa`.
    pub name: String,
    /// Width of F_q.
    pub width: i64,
}

/// The segmentation backend a restorer was trained with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SegmentationBackendSpec {
    /// Backend name, e.g. `felzenszwalb` or `sam2`.
    pub name: String,
    /// Most masks per image it produces.
    pub max_masks: i64,
}

/// The degradation-embedding backend a restorer was trained with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DegradationBackendSpec {
    /// Backend name, e.g. `clearair-encoder` or `daclip`.
    pub name: String,
    /// Width of F_c.
    pub content_dim: i64,
    /// Width of F_d.
    pub degradation_dim: i64,
}

/// The three prior backends a restorer's weights belong to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PriorBackends {
    /// Global quality prior.
    pub quality: QualityBackendSpec,
    /// Region masks.
    pub segmentation: SegmentationBackendSpec,
    /// Content and degradation embeddings.
    pub degradation: DegradationBackendSpec,
}

impl PriorBackends {
    /// Checks that `running` backends produce what the weights were trained on. Names and
    /// widths must agree; the running segmenter may produce fewer masks than at training
    /// time but not more. Every difference is reported, each saying what was trained and
    /// what is running.
    pub fn check(&self, running: &PriorBackends) -> Result<()> {
        let mut differences = Vec::new();
        let (trained, now) = (&self.quality, &running.quality);
        if trained != now {
            differences.push(format!(
                "quality: trained with `{}` (F_q width {}), running `{}` (width {})",
                trained.name, trained.width, now.name, now.width
            ));
        }
        let (trained, now) = (&self.segmentation, &running.segmentation);
        if trained.name != now.name || now.max_masks > trained.max_masks {
            differences.push(format!(
                "segmentation: trained with `{}` (at most {} masks), running `{}` (up to {} masks)",
                trained.name, trained.max_masks, now.name, now.max_masks
            ));
        }
        let (trained, now) = (&self.degradation, &running.degradation);
        if trained != now {
            differences.push(format!(
                "degradation: trained with `{}` (F_c {}, F_d {}), running `{}` (F_c {}, F_d {})",
                trained.name,
                trained.content_dim,
                trained.degradation_dim,
                now.name,
                now.content_dim,
                now.degradation_dim
            ));
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(ModelError::BackendMismatch { differences })
        }
    }
}

/// The architecture a weights file belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "read once per process; a Box would only add noise"
)]
pub enum NetworkConfig {
    /// The restorer.
    #[serde(rename = "clearair")]
    ClearAir(ClearAirConfig),
    /// The embedded degradation encoder.
    Encoder(EncoderConfig),
}

/// What a weights file is and how it was made; stored as JSON next to the weights.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelManifest {
    /// Model name, e.g. `clearair-compact`.
    pub name: String,
    /// The network's configuration.
    pub network: NetworkConfig,
    /// Prior backends the restorer was trained with (absent for the encoder, which consumes
    /// no priors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<PriorBackends>,
    /// Training data and split, in words.
    pub data: String,
    /// Optimiser steps taken.
    pub iterations: u64,
    /// Final evaluation figures, e.g. `psnr_noise25` → 30.1.
    pub metrics: BTreeMap<String, f64>,
    /// The exact command that produced the weights.
    pub command: String,
    /// Seed of the run.
    pub seed: u64,
    /// For a refiner (a restorer trained on another restorer's output), which priors it
    /// reads behind that restorer; absent for a restorer trained on uploads, and read as
    /// [`RefinerPriors::Neutral`] when such weights serve as a refiner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refiner_priors: Option<RefinerPriors>,
    /// For a refiner that should run only on the photos the degradation encoder says are
    /// degraded one way (a blur stage, say): how much of its change is kept, from the
    /// encoder's probability of that kind. Absent: the refiner runs on every photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refiner_gate: Option<RefinerGate>,
    /// For a stage that should run only on uploads that read as blurred by their pixels
    /// alone (a fallback stage, where no kind probability is at hand): how much of its change
    /// is kept, from the upload's blur effect. Absent: the stage runs on every photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blur_gate: Option<BlurGate>,
}

/// How much of a refiner's change a photo gets, from the degradation encoder's probability
/// `p` of one `kind` for it: none at or below `low`, all of it at or above `high`, linear in
/// between. A photo with no probabilities (the degradation prior absent or neutral, as when
/// its service is down) gets none: a gated refiner runs only where the encoder saw its kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct RefinerGate {
    /// The kind the refiner is for.
    pub kind: crate::DegradationKind,
    /// Probability at and below which the refiner's change is dropped.
    pub low: f32,
    /// Probability at and above which the refiner's change is kept whole.
    pub high: f32,
    /// Where the probability is read; `low` and `high` were chosen for this view. Absent:
    /// the served probabilities.
    #[serde(default, skip_serializing_if = "GateView::is_served")]
    pub view: GateView,
}

/// Where a refiner's gate reads the degradation encoder's kind probabilities. The priors the
/// networks read keep the encoder's served view; only the gate's share comes from this
/// reading, which the degradation service makes when its `gate_view` names it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GateView {
    /// The probabilities of the served view (no extra encoder pass).
    #[default]
    Served,
    /// The centred square at the image's own scale (one more pass).
    Centre,
    /// Every square tile at the image's own scale, overlapping as little as covers the
    /// image (one batched pass); each kind's probability is its least over the tiles. A
    /// uniform degradation (blur, noise) is in every tile, while a sharp photo with smooth
    /// or out-of-focus regions has at least one tile that reads sharp.
    Tiles,
}

impl GateView {
    /// Every gate view, in the order the names below list them.
    pub const ALL: [GateView; 3] = [GateView::Served, GateView::Centre, GateView::Tiles];

    /// The view as settings, manifests and the wire spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            GateView::Served => "served",
            GateView::Centre => "centre",
            GateView::Tiles => "tiles",
        }
    }

    /// The view spelled `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|view| view.as_str() == name)
    }

    /// Whether this is the served view (the manifest then leaves it out).
    pub fn is_served(&self) -> bool {
        *self == GateView::Served
    }
}

/// Why a gate's text was refused when LOW or HIGH does not parse.
const BOUNDS_NOT_NUMBERS: &str = "LOW and HIGH must be numbers";

/// A gate's LOW or HIGH, spaces around it allowed.
fn gate_bound(field: &str) -> Option<f32> {
    field.trim().parse().ok()
}

/// Checks a gate's `0 ≤ low < high ≤ 1`; the error names the manifest field `field`.
fn check_gate_range(field: &str, low: f32, high: f32) -> Result<()> {
    let ok = low.is_finite()
        && high.is_finite()
        && (0.0..1.0).contains(&low)
        && high > low
        && high <= 1.0;
    if ok {
        Ok(())
    } else {
        Err(ModelError::Config(format!(
            "{field} needs 0 <= low < high <= 1, got low {low} and high {high}"
        )))
    }
}

impl RefinerGate {
    /// Checks `0 ≤ low < high ≤ 1`.
    pub fn validate(&self) -> Result<()> {
        check_gate_range("refiner_gate", self.low, self.high)
    }

    /// The share of the refiner's change kept for a photo with these kind `probabilities`
    /// (in [`crate::DegradationKind::ALL`] order), 0 to 1; 0 without probabilities or when
    /// the gate's kind reads as NaN.
    pub fn weight(&self, probabilities: Option<&[f32]>) -> f32 {
        let Some(p) = probabilities.and_then(|p| p.get(self.kind.index()).copied()) else {
            return 0.0;
        };
        if p.is_nan() {
            return 0.0;
        }
        ((p - self.low) / (self.high - self.low)).clamp(0.0, 1.0)
    }

    /// Parses `KIND:LOW:HIGH[:VIEW]`, e.g. `blur:0.3:0.6` or `blur:0.4:0.6:tiles`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: &str| {
            ModelError::Config(format!(
                "refiner gate {text:?}: {why} (expected KIND:LOW:HIGH[:VIEW], e.g. blur:0.3:0.6 \
                 or blur:0.4:0.6:tiles)"
            ))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (kind, low, high, view) = match parts[..] {
            [kind, low, high] => (kind, low, high, GateView::Served),
            [kind, low, high, view] => (
                kind,
                low,
                high,
                GateView::from_name(view.trim())
                    .ok_or_else(|| invalid("VIEW must be served, centre or tiles"))?,
            ),
            _ => return Err(invalid("three or four fields separated by ':'")),
        };
        let kind = crate::DegradationKind::from_name(kind.trim())
            .ok_or_else(|| invalid("unknown kind"))?;
        let number = |field: &str| gate_bound(field).ok_or_else(|| invalid(BOUNDS_NOT_NUMBERS));
        let gate = Self {
            kind,
            low: number(low)?,
            high: number(high)?,
            view,
        };
        gate.validate()?;
        Ok(gate)
    }
}

/// How much of a stage's change a photo gets from how blurred the upload reads by its pixels
/// alone: its blur effect `b` (`clearair_imaging::sharpness::blur_effect`, 0 sharp to 1
/// flat, read on the whole upload). None at or below `low`, all of it at or above `high`,
/// linear in between; an upload too small to read gets none. Noise and rain streaks read
/// sharper than the photo under them and a blur reads higher, so the gate needs no prior.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct BlurGate {
    /// Blur effect at and below which the stage's change is dropped.
    pub low: f32,
    /// Blur effect at and above which the stage's change is kept whole.
    pub high: f32,
}

impl BlurGate {
    /// Checks `0 ≤ low < high ≤ 1`.
    pub fn validate(&self) -> Result<()> {
        check_gate_range("blur_gate", self.low, self.high)
    }

    /// The share of the stage's change kept for an upload of blur effect `reading`, 0 to 1;
    /// 0 without a reading or when it is NaN.
    pub fn weight(&self, reading: Option<f32>) -> f32 {
        match reading {
            Some(b) if !b.is_nan() => ((b - self.low) / (self.high - self.low)).clamp(0.0, 1.0),
            _ => 0.0,
        }
    }

    /// Parses `LOW:HIGH`, e.g. `0.52:0.6`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: &str| {
            ModelError::Config(format!(
                "blur gate {text:?}: {why} (expected LOW:HIGH, e.g. 0.52:0.6)"
            ))
        };
        let Some((low, high)) = text.split_once(':') else {
            return Err(invalid("two numbers separated by ':'"));
        };
        let number = |field: &str| gate_bound(field).ok_or_else(|| invalid(BOUNDS_NOT_NUMBERS));
        let gate = Self {
            low: number(low)?,
            high: number(high)?,
        };
        gate.validate()?;
        Ok(gate)
    }
}

/// Which priors a refiner reads behind the restorer: every prior neutral (it sees pixels
/// only, and does the same whatever the priors said and whether their services are up), or
/// the priors the mesh computed for the upload, as the restorer in front of it reads them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RefinerPriors {
    /// Zero F_q, F_c and F_d and one mask over the whole tile.
    #[default]
    Neutral,
    /// The upload's priors, the same the restorer in front of it reads.
    Served,
}

impl ModelManifest {
    /// Reads and validates a manifest (its network configuration must pass `validate`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let manifest: Self =
            serde_json::from_str(&text).map_err(|source| ModelError::Manifest {
                path: path.to_path_buf(),
                source,
            })?;
        match &manifest.network {
            NetworkConfig::ClearAir(config) => config.validate()?,
            NetworkConfig::Encoder(config) => config.validate()?,
        }
        if let Some(gate) = &manifest.refiner_gate {
            gate.validate()?;
        }
        if let Some(gate) = &manifest.blur_gate {
            gate.validate()?;
        }
        Ok(manifest)
    }

    /// Writes the manifest as pretty-printed JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|source| ModelError::Manifest {
            path: path.to_path_buf(),
            source,
        })?;
        std::fs::write(path, text + "\n").map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Why these weights cannot be a fallback stage (a refiner run only where a request
    /// carries no prior), or None when they can: it must read neutral priors and have no
    /// gate on kind probabilities, since where it runs there is neither a prior nor a kind
    /// probability. A gate on the upload's pixels (`blur_gate`) it may have.
    pub fn fallback_stage_problem(&self) -> Option<String> {
        let priors = self.refiner_priors.unwrap_or_default();
        (priors != RefinerPriors::Neutral || self.refiner_gate.is_some()).then(|| {
            format!(
                "it names refiner_priors {priors:?} and gate {:?}: a fallback stage runs where \
                 no prior and no kind probability is sent, so it must read neutral priors and \
                 have no gate",
                self.refiner_gate
            )
        })
    }

    /// The conventional manifest path beside a weights file: `x.safetensors` → `x.json`.
    pub fn path_for_weights(weights: &Path) -> PathBuf {
        weights.with_extension("json")
    }
}

#[cfg(test)]
mod tests;
