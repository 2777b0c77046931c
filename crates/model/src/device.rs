//! Device strings: `cpu`, `cuda`, `cuda:N`, `auto`.

use std::sync::Once;

use tch::{Cuda, Device};

use crate::error::{ModelError, Result};

/// Loads `libtorch_cuda.so` into the process once, before anything asks libtorch about CUDA.
///
/// Nothing in a Rust binary references a symbol of that library directly (libtorch registers
/// its CUDA backend from the library's static initialisers), so the linker's default
/// `--as-needed` leaves it out and libtorch reports no GPU. Python's `import torch` loads it
/// explicitly; so do we. libtorch caches its CUDA hooks on the first query, which is why this
/// must run first. Where the library does not exist (a CPU-only libtorch) nothing happens.
fn load_cuda_backend() {
    static LOAD: Once = Once::new();
    LOAD.call_once(|| {
        // SAFETY: dlopen with a constant, NUL-terminated name; the handle is deliberately
        // leaked so the library stays loaded for the life of the process. A null handle
        // means a CPU-only libtorch, which `Cuda::is_available` then reports.
        unsafe {
            libc::dlopen(
                c"libtorch_cuda.so".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_GLOBAL,
            );
        }
    });
}

/// Parses a device string. `auto` picks CUDA device 0 when one is usable and the CPU
/// otherwise; asking for CUDA explicitly on a machine without it is an error, never a silent
/// fall back to a CPU hundreds of times slower.
pub fn parse_device(spec: &str) -> Result<Device> {
    let fail = |reason: String| ModelError::Device {
        spec: spec.to_string(),
        reason,
    };
    let cuda = |index: usize| {
        load_cuda_backend();
        if !Cuda::is_available() {
            return Err(fail(
                "CUDA was requested but libtorch sees no usable CUDA device (no GPU, or a \
                 CPU-only libtorch without libtorch_cuda.so on the library path)"
                    .into(),
            ));
        }
        let count = Cuda::device_count().max(0) as usize;
        if index >= count {
            return Err(fail(format!("only {count} CUDA device(s) are visible")));
        }
        Ok(Device::Cuda(index))
    };
    match spec.trim().to_ascii_lowercase().as_str() {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            load_cuda_backend();
            Ok(Device::cuda_if_available())
        }
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:") {
            Some(index) => {
                let index = index
                    .parse::<usize>()
                    .map_err(|_| fail(format!("`{index}` is not a device index")))?;
                cuda(index)
            }
            None => Err(fail("expected `cpu`, `cuda`, `cuda:N` or `auto`".into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_auto() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device(" CPU ").unwrap(), Device::Cpu);
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !Cuda::is_available());
    }

    #[test]
    fn cuda_is_an_error_exactly_when_unavailable() {
        for spec in ["cuda", "cuda:0"] {
            match parse_device(spec) {
                Ok(device) => assert_eq!(device, Device::Cuda(0)),
                Err(error) => {
                    assert!(!Cuda::is_available());
                    assert!(
                        error.to_string().contains("no usable CUDA device"),
                        "{error}"
                    );
                }
            }
        }
        assert!(parse_device("cuda:999").is_err());
    }

    #[test]
    fn rejects_garbage() {
        let error = parse_device("gpu").unwrap_err().to_string();
        assert!(
            error.contains("`gpu`") && error.contains("cuda:N"),
            "{error}"
        );
        let error = parse_device("cuda:x").unwrap_err().to_string();
        assert!(error.contains("`x` is not a device index"), "{error}");
    }
}
