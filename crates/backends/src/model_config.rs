//! Where a network-backed backend gets its weights and where it runs them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a network gets its weights and where it runs them (the degradation encoder, the
/// restorer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The safetensors file; its manifest (`.json`) sits beside it.
    pub weights: PathBuf,
    /// Start from freshly initialised weights instead of `weights` (seeded, for tests and
    /// benchmarks only; the service logs a warning).
    pub random_init: bool,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
    pub device: String,
    /// Arithmetic of the forward pass: `fp32` (the default) or `bf16` (the restorer only; on
    /// CPUs with AVX-512 BF16 or AMX it is faster, see the README's speed section).
    pub precision: Precision,
}

/// Arithmetic a network runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    Fp32,
    /// bfloat16 weights and features; inputs are cast in and the output back to fp32.
    Bf16,
}

impl Precision {
    /// `Bf16` when `bf16`, else `Fp32` (the command-line switches).
    pub fn bf16_if(bf16: bool) -> Self {
        if bf16 { Self::Bf16 } else { Self::Fp32 }
    }

    /// Converts the weights in `store` (loaded in fp32) to this precision.
    pub fn convert(self, store: &mut tch::nn::VarStore) {
        if self == Self::Bf16 {
            store.bfloat16();
        }
    }

    /// The tensor kind of the forward pass.
    pub fn kind(self) -> tch::Kind {
        match self {
            Self::Fp32 => tch::Kind::Float,
            Self::Bf16 => tch::Kind::BFloat16,
        }
    }
}

impl ModelConfig {
    /// A config reading `weights` on the CPU.
    pub fn with_weights(weights: impl Into<PathBuf>) -> Self {
        Self {
            weights: weights.into(),
            random_init: false,
            device: "cpu".to_owned(),
            precision: Precision::Fp32,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::with_weights("models/model.safetensors")
    }
}
