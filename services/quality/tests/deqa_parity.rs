//! DeQA-Score over TorchScript against the same model in Python.
//!
//! `deploy/export/deqa_export.py --random-init --tiny` builds mPLUG-Owl2 (vision encoder,
//! visual abstractor, LLaMA with the modality-adaptive module) at small widths with seeded
//! random weights, traces it, and writes the eager model's outputs on images preprocessed with
//! Pillow (`expand2square`, bicubic resize to 448, CLIP mean/std). The service preprocesses the
//! same files in Rust and must agree: the pixels exactly, the score and `F_q` within float
//! tolerance. Needs the project's Python environment (`make setup`).

use std::path::{Path, PathBuf};

use clearair_backends::{
    batch::BatchingConfig,
    quality::{QualityBackend, torchscript::TorchScriptBackend},
};
use clearair_imaging::Rgb8Image;
use clearair_model::TorchScriptConfig;
use clearair_testkit::{
    export_tiny_with_reference, fresh_folder, load_image, max_difference, read_f32, synthetic_png,
    workspace,
};

/// Largest difference allowed between Rust and Python outputs.
const TOLERANCE: f32 = 1e-4;

fn synthetic(dir: &Path, width: u32, height: u32) -> PathBuf {
    synthetic_png(dir, width, height, |x, y| {
        [
            (x * 255 / width) as u8,
            ((x * 3 + y * 5) % 256) as u8,
            (y * 255 / height) as u8,
        ]
    })
}

/// One export per test process, in cargo's per-target scratch folder.
struct Export {
    module: PathBuf,
    images: Vec<PathBuf>,
    reference: PathBuf,
}

fn export() -> &'static Export {
    static EXPORT: std::sync::OnceLock<Export> = std::sync::OnceLock::new();
    EXPORT.get_or_init(|| {
        let dir = fresh_folder(env!("CARGO_TARGET_TMPDIR"), "deqa-parity");
        // A photo, a wide image (padded top and bottom, an odd margin) and a small tall one
        // (padded at the sides, then enlarged).
        let images = vec![
            workspace().join("tests/fixtures/samples/dark-chelsea.png"),
            synthetic(&dir, 301, 200),
            synthetic(&dir, 61, 100),
        ];
        let module = dir.join("deqa-tiny.pt");
        let reference = dir.join("reference");
        export_tiny_with_reference("deqa_export.py", 5, &module, &images, &reference, &[]);
        Export {
            module,
            images,
            reference,
        }
    })
}

fn backend(module: &Path, batching: BatchingConfig) -> TorchScriptBackend {
    TorchScriptBackend::load(
        &TorchScriptConfig::with_module(module),
        "cpu",
        &batching,
        None,
    )
    .unwrap()
}

#[test]
fn rust_preprocessing_and_the_trace_match_python() {
    let export = export();
    let backend = backend(&export.module, BatchingConfig::default());
    assert_eq!(backend.name(), "deqa");
    assert_eq!(backend.feature_width(), 64, "the tiny LLaMA's hidden width");
    let (mut worst_score, mut worst_features) = (0f32, 0f32);
    for (index, path) in export.images.iter().enumerate() {
        let file = |what: &str| read_f32(&export.reference.join(format!("{index:02}-{what}.f32")));
        let image = load_image(path);
        let pixels = Vec::<f32>::try_from(backend.input(&image).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(
            max_difference(&pixels, &file("pixels")),
            0.0,
            "{}: preprocessing differs from expand2square + Pillow",
            path.display()
        );
        let estimate = backend.assess(&image).unwrap();
        let score = max_difference(&[estimate.score], &file("score"));
        let features = max_difference(&estimate.features, &file("features"));
        assert!(
            score <= TOLERANCE,
            "{}: score differs by {score}",
            path.display()
        );
        assert!(
            features <= TOLERANCE,
            "{}: F_q differs by {features}",
            path.display()
        );
        assert!((1.0..=5.0).contains(&estimate.score));
        worst_score = worst_score.max(score);
        worst_features = worst_features.max(features);
    }
    println!("largest |Rust − Python|: score {worst_score:.2e}, F_q {worst_features:.2e}");
}

#[test]
fn batched_requests_get_the_results_of_single_ones() {
    let export = export();
    let single = backend(
        &export.module,
        BatchingConfig {
            max_batch_size: 1,
            max_queue_delay_ms: 0,
        },
    );
    let batched = std::sync::Arc::new(backend(
        &export.module,
        BatchingConfig {
            max_batch_size: 3,
            max_queue_delay_ms: 500,
        },
    ));
    let images: Vec<Rgb8Image> = export.images.iter().map(|p| load_image(p)).collect();
    let alone: Vec<_> = images.iter().map(|i| single.assess(i).unwrap()).collect();
    let threads: Vec<_> = images
        .into_iter()
        .map(|image| {
            let batched = batched.clone();
            std::thread::spawn(move || batched.assess(&image).unwrap())
        })
        .collect();
    for (thread, expected) in threads.into_iter().zip(&alone) {
        let got = thread.join().unwrap();
        assert!((got.score - expected.score).abs() <= TOLERANCE);
        assert!(max_difference(&got.features, &expected.features) <= TOLERANCE);
    }
}

#[test]
fn a_manifest_promising_another_width_stops_the_load_with_the_shape() {
    let export = export();
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("deqa.pt");
    std::fs::copy(&export.module, &module).unwrap();
    let manifest = std::fs::read_to_string(export.module.with_extension("json")).unwrap();
    let wide = manifest.replace("\"features\": 64", "\"features\": 4096");
    assert_ne!(wide, manifest);
    std::fs::write(module.with_extension("json"), wide).unwrap();
    let error = TorchScriptBackend::load(
        &TorchScriptConfig::with_module(&module),
        "cpu",
        &BatchingConfig::default(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("deqa.pt") && error.contains("`F_q`") && error.contains("[8, 4096]"),
        "{error}"
    );
}
