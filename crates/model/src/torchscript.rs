//! TorchScript prior models exported by `deploy/export/` (DA-CLIP, SAM2, DeQA-Score): the
//! module file, the manifest written beside it, the device and the precision it runs at.
//!
//! The manifest is read before the module, so a file meant for another prior, an unknown
//! manifest version or a missing file fails with the file's name and what was expected.
//! Outputs are checked by each service against the widths its manifest promises.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::{Deserialize, de::DeserializeOwned};
use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::{ModelError, Result, parse_device};

/// The manifest version `deploy/export/common.py` writes.
pub const EXPORT_MANIFEST_VERSION: u32 = 1;

/// Floating-point precision a module runs at. Inputs are cast to it; outputs come back as
/// `f32` on the CPU whatever it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (the export's own precision; the only sensible one on a CPU).
    #[default]
    Fp32,
    /// IEEE half precision (GPUs).
    Fp16,
    /// bfloat16 (GPUs with native support, and recent CPUs).
    Bf16,
}

impl Precision {
    /// The tensor kind of this precision.
    pub fn kind(self) -> Kind {
        match self {
            Self::Fp32 => Kind::Float,
            Self::Fp16 => Kind::Half,
            Self::Bf16 => Kind::BFloat16,
        }
    }
}

/// Where a service finds its exported module and how it runs it (the device comes from the
/// service's `[model]` section).
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TorchScriptConfig {
    /// The `.pt` file written by `deploy/export/`; its manifest (`.json`) sits beside it.
    pub module: PathBuf,
    /// `fp32`, `fp16` (GPUs) or `bf16`.
    pub precision: Precision,
}

impl TorchScriptConfig {
    /// A config reading `module` at fp32.
    pub fn with_module(module: impl Into<PathBuf>) -> Self {
        Self {
            module: module.into(),
            precision: Precision::Fp32,
        }
    }
}

impl Default for TorchScriptConfig {
    fn default() -> Self {
        Self::with_module("models/prior.pt")
    }
}

/// Where an export's weights came from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ExportSource {
    /// Seeded random weights (tests and benchmarks), not a checkpoint.
    pub random_init: bool,
    /// The checkpoint's file name, when there was one.
    pub checkpoint: Option<String>,
    /// SHA-256 of that checkpoint.
    pub sha256: Option<String>,
}

/// The manifest beside an exported module. The fields every prior shares are typed; each
/// service reads its own sections with [`ExportManifest::section`].
#[derive(Clone, Debug, Deserialize)]
pub struct ExportManifest {
    /// Version of the manifest format.
    pub manifest_version: u32,
    /// The module's file name.
    pub module: String,
    /// `quality`, `segmentation` or `degradation`.
    pub prior: String,
    /// The exported architecture, e.g. `daclip-vit-b-32`.
    pub architecture: String,
    /// The backend name reported in every prior (and checked by the restorer's manifest).
    pub backend_name: String,
    /// Parameter count of the module.
    #[serde(default)]
    pub parameters: u64,
    /// Where the weights came from.
    pub source: ExportSource,
    /// The rest, per prior.
    #[serde(flatten)]
    pub sections: serde_json::Map<String, serde_json::Value>,
    /// The manifest file this was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl ExportManifest {
    /// Reads the manifest beside `module` (`x.pt` → `x.json`) and checks it describes a
    /// `prior` export of a version this build understands.
    pub fn read_for(module: &Path, prior: &str) -> Result<Self> {
        require_module(module)?;
        let path = module.with_extension("json");
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let mut manifest: Self =
            serde_json::from_str(&text).map_err(|source| ModelError::Manifest {
                path: path.clone(),
                source,
            })?;
        manifest.path = path;
        if manifest.manifest_version != EXPORT_MANIFEST_VERSION {
            return Err(manifest.invalid(format!(
                "manifest_version {} (this build reads {EXPORT_MANIFEST_VERSION}); export the \
                 model again with this release's deploy/export",
                manifest.manifest_version
            )));
        }
        if manifest.prior != prior {
            return Err(manifest.invalid(format!(
                "it describes a {} model; this service needs a {prior} model",
                manifest.prior
            )));
        }
        Ok(manifest)
    }

    /// The section `key`, deserialised.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let value = self
            .sections
            .get(key)
            .ok_or_else(|| self.invalid(format!("no `{key}` section")))?;
        T::deserialize(value).map_err(|e| self.invalid(format!("section `{key}`: {e}")))
    }

    /// An error naming this manifest.
    pub fn invalid(&self, reason: String) -> ModelError {
        ModelError::Config(format!("{}: {reason}", self.path.display()))
    }
}

/// A loaded TorchScript module on its device, at its precision.
pub struct ScriptModel {
    // CModule is Sync, but a forward pass borrows the module's graph executor state; one
    // pass at a time also suits a batching service (the batcher is the only caller).
    module: Mutex<CModule>,
    path: PathBuf,
    device: Device,
    precision: Precision,
}

impl std::fmt::Debug for ScriptModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptModel")
            .field("path", &self.path)
            .field("device", &self.device)
            .field("precision", &self.precision)
            .finish_non_exhaustive()
    }
}

impl ScriptModel {
    /// Loads `path` onto `device` (a device string: `cpu`, `cuda:0`, `auto`) at `precision`.
    pub fn load(path: &Path, device: &str, precision: Precision) -> Result<Self> {
        require_module(path)?;
        let device = parse_device(device)?;
        if device == Device::Cpu && precision == Precision::Fp16 {
            return Err(ModelError::Config(format!(
                "{}: fp16 is for GPUs; use fp32 or bf16 on the CPU",
                path.display()
            )));
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            ModelError::Config(format!(
                "{} is not a loadable TorchScript module: {e}",
                path.display()
            ))
        })?;
        module.set_eval();
        if precision != Precision::Fp32 {
            module.to(device, precision.kind(), false);
        }
        Ok(Self {
            module: Mutex::new(module),
            path: path.to_path_buf(),
            device,
            precision,
        })
    }

    /// The module file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where it runs.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The precision it runs at.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Runs the module on floating `inputs` (cast to its device and precision) and returns
    /// every output tensor, flattened out of tuples and lists, as `f32` on the CPU.
    pub fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(self
            .forward_on_device(inputs)?
            .into_iter()
            .map(|t| t.to_device(Device::Cpu))
            .collect())
    }

    /// As [`ScriptModel::forward`], but the outputs stay on the module's device (as `f32`),
    /// for callers that keep computing there. Integer inputs keep their kind.
    pub fn forward_on_device(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let inputs: Vec<IValue> = inputs
            .iter()
            .map(|t| {
                let t = t.to_device(self.device);
                IValue::Tensor(if t.is_floating_point() {
                    t.to_kind(self.precision.kind())
                } else {
                    t
                })
            })
            .collect();
        let output = {
            let module = self.module.lock().expect("module lock poisoned");
            tch::no_grad(|| module.forward_is(&inputs))
        }
        .map_err(|e| {
            ModelError::Config(format!("{}: forward pass failed: {e}", self.path.display()))
        })?;
        let mut tensors = Vec::new();
        flatten(output, &mut tensors, &self.path)?;
        Ok(tensors
            .into_iter()
            .map(|t| t.to_kind(Kind::Float))
            .collect())
    }
}

/// A missing module file, named with the hint that makes one.
fn require_module(path: &Path) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    Err(ModelError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such TorchScript module (export one with deploy/export/)",
        ),
    })
}

fn flatten(value: IValue, out: &mut Vec<Tensor>, path: &Path) -> Result<()> {
    match value {
        IValue::Tensor(tensor) => out.push(tensor),
        IValue::Tuple(items) | IValue::GenericList(items) => {
            for item in items {
                flatten(item, out, path)?;
            }
        }
        IValue::TensorList(items) => out.extend(items),
        other => {
            return Err(ModelError::Config(format!(
                "{}: the module returned {other:?}; expected tensors",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Checks that `tensor` has `expected` shape (`None` matches any size), naming the module
/// and the output in the error.
pub fn check_shape(
    module: &Path,
    output: &str,
    tensor: &Tensor,
    expected: &[Option<i64>],
) -> Result<()> {
    let got = tensor.size();
    let fits = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(g, e)| e.is_none_or(|e| e == *g));
    if fits {
        return Ok(());
    }
    let want: Vec<String> = expected
        .iter()
        .map(|e| e.map_or_else(|| "N".to_owned(), |v| v.to_string()))
        .collect();
    Err(ModelError::Config(format!(
        "{}: output `{output}` has shape {got:?}; expected [{}]",
        module.display(),
        want.join(", ")
    )))
}

#[cfg(test)]
mod tests;
