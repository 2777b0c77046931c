//! What the prior services' parity tests share (a dev-dependency only).
//!
//! The parity tests run an export tool of `deploy/export/` in the project's Python
//! environment (`make setup`), which writes a TorchScript module and the upstream model's
//! outputs as raw little-endian `f32` files; the service loads the module, computes the same
//! outputs in Rust and compares.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
};

use clearair_imaging::{DecodeLimits, OutputFormat, Rgb8Image, decode, encode};

/// The repository root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `deploy/export/<script>` with `args` in the project's Python environment and panics
/// with a hint when it fails.
pub fn run_export<I, S>(script: &str, args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let status = std::process::Command::new(workspace().join(".venv/bin/python"))
        .arg(workspace().join("deploy/export").join(script))
        .args(args)
        .status()
        .unwrap_or_else(|e| {
            panic!("the project's Python environment runs deploy/export/{script} (make setup): {e}")
        });
    assert!(status.success(), "deploy/export/{script} failed: {status}");
}

/// Runs `deploy/export/<script> --random-init --tiny --seed <seed> --out <module>`, asking
/// for the upstream model's outputs on `images` in `reference` (plus `extra` arguments).
pub fn export_tiny_with_reference(
    script: &str,
    seed: u32,
    module: &Path,
    images: &[PathBuf],
    reference: &Path,
    extra: &[&str],
) {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--random-init".into(),
        "--tiny".into(),
        "--seed".into(),
        seed.to_string().into(),
        "--out".into(),
        module.into(),
        "--reference-images".into(),
    ];
    args.extend(images.iter().map(Into::into));
    args.push("--reference-out".into());
    args.push(reference.into());
    args.extend(extra.iter().map(Into::into));
    run_export(script, args);
}

/// A fresh folder `name` under `parent` (a test's `CARGO_TARGET_TMPDIR`, so it stays in the
/// build tree rather than piling up in the system temp dir).
pub fn fresh_folder(parent: &str, name: &str) -> PathBuf {
    let dir = Path::new(parent).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test folder");
    dir
}

/// A raw little-endian `f32` file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The largest absolute difference between two equally long slices.
pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A `width × height` image whose pixel at `(x, y)` is `pixel(x, y)`, saved as PNG in `dir`.
pub fn synthetic_png(
    dir: &Path,
    width: u32,
    height: u32,
    pixel: impl Fn(u32, u32) -> [u8; 3],
) -> PathBuf {
    let data = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| pixel(x, y))
        .collect();
    let image = Rgb8Image::new(width, height, data).expect("consistent synthetic image");
    let (bytes, _) = encode(&image, OutputFormat::Png, 90).expect("PNG encoding");
    let path = dir.join(format!("synthetic-{width}x{height}.png"));
    std::fs::write(&path, bytes).expect("write the synthetic image");
    path
}

/// An image file decoded as the services decode uploads.
pub fn load_image(path: &Path) -> Rgb8Image {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode(&bytes, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .image
}

/// The value of the Prometheus sample whose line starts with `sample` (name and labels).
pub fn metric(sample: &str) -> f64 {
    clearair_runtime::metrics::global()
        .render()
        .lines()
        .find(|l| l.starts_with(sample))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample}"))
}

/// Whether some batch of `service` held more than one item (batch-size sum above count).
pub fn batched_more_than_one(service: &str) -> bool {
    let labels = format!("{{service=\"{service}\"}}");
    metric(&format!("clearair_batch_size_sum{labels}"))
        > metric(&format!("clearair_batch_size_count{labels}"))
}
