//! Compiles `proto/clearair/v1/*.proto` with a vendored protoc, so a fresh machine needs no
//! system protoc, and keeps the descriptor set for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<PathBuf> = [
        "types",
        "quality",
        "segmentation",
        "degradation",
        "restoration",
        "clearair",
    ]
    .iter()
    .map(|name| root.join(format!("clearair/v1/{name}.proto")))
    .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("clearair_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptor)
        .compile_protos(&files, &[root])?;
    Ok(())
}
