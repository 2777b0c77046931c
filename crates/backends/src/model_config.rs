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
    /// Arithmetic of the forward pass: `fp32` (the default), `bf16`, or `auto` (bf16 on CPUs
    /// with AVX-512 BF16 or AMX, else fp32; the restoration service's default). bf16 is the
    /// restorer's only; see the README's speed section.
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
    /// `bf16` on a CPU that computes bfloat16 natively (AVX-512 BF16 or AMX-BF16), `fp32`
    /// everywhere else (older CPUs, where bf16 is emulated and slower, and CUDA). The
    /// restoration service's default; see [`Precision::resolve`].
    Auto,
}

impl Precision {
    /// `Bf16` when `bf16`, else `Fp32` (the command-line switches).
    pub fn bf16_if(bf16: bool) -> Self {
        if bf16 { Self::Bf16 } else { Self::Fp32 }
    }

    /// The precision to run in on `device`: `Auto` decided, the others as they are.
    pub fn resolve(self, device: tch::Device) -> Self {
        match self {
            Self::Auto if device == tch::Device::Cpu && cpu_has_native_bf16() => Self::Bf16,
            Self::Auto => Self::Fp32,
            fixed => fixed,
        }
    }

    /// Converts the weights in `store` (loaded in fp32) to this precision (`Auto` must be
    /// resolved first; like [`Precision::kind`], it reads as fp32).
    pub fn convert(self, store: &mut tch::nn::VarStore) {
        if self == Self::Bf16 {
            store.bfloat16();
        }
    }

    /// The tensor kind of the forward pass (`Auto` must be resolved first; it reads as fp32).
    pub fn kind(self) -> tch::Kind {
        match self {
            Self::Fp32 | Self::Auto => tch::Kind::Float,
            Self::Bf16 => tch::Kind::BFloat16,
        }
    }
}

/// Whether this CPU computes bfloat16 in hardware (the `avx512_bf16` or `amx_bf16` flags of
/// Linux's `/proc/cpuinfo`); `false` where that cannot be read.
pub fn cpu_has_native_bf16() -> bool {
    static NATIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NATIVE.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| native_bf16_in(&info))
    })
}

/// Whether a `/proc/cpuinfo` text names a native bfloat16 unit in its first `flags` line.
fn native_bf16_in(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "flags").then_some(value)
        })
        .is_some_and(|flags| {
            flags
                .split_whitespace()
                .any(|flag| flag == "avx512_bf16" || flag == "amx_bf16")
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_bf16_only_with_native_units_on_the_cpu() {
        let with = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n";
        let amx = "flags\t: fpu avx512f amx_bf16 amx_tile\n";
        let without = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n";
        assert!(native_bf16_in(with));
        assert!(native_bf16_in(amx));
        assert!(!native_bf16_in(without));
        assert!(!native_bf16_in("no flags line"));
        assert_eq!(Precision::Fp32.resolve(tch::Device::Cpu), Precision::Fp32);
        assert_eq!(Precision::Bf16.resolve(tch::Device::Cpu), Precision::Bf16);
        assert_eq!(
            Precision::Auto.resolve(tch::Device::Cuda(0)),
            Precision::Fp32
        );
        let here = Precision::Auto.resolve(tch::Device::Cpu);
        assert_eq!(here == Precision::Bf16, cpu_has_native_bf16());
    }
}
