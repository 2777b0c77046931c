//! SAM2 over TorchScript with the Rust mask generator against the upstream
//! `SAM2AutomaticMaskGenerator` on the same weights and thresholds.
//!
//! `deploy/export/sam2_export.py --random-init --tiny` builds SAM2.1 from the `sam2` package
//! with a 16-channel Hiera and seeded random weights, traces the encoder and the decoder, and
//! runs the upstream generator under several settings. Random weights give masks of noise
//! whose boxes mostly span the image, so the settings are chosen to exercise each stage:
//! every filter off and no NMS (all 3 × 64 masks, in score order), the IoU and stability
//! filters on their own, NMS on its own, and SAM2's defaults. Each must give the same number
//! of masks, in the same order, each with IoU ≥ 0.95 against its upstream twin. Needs the
//! project's Python environment (`make setup`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use clearair_backends::{
    batch::{BatchObserver, BatchingConfig},
    segmentation::{
        SegmentationBackend,
        sam2::{AmgConfig, Sam2Backend},
    },
};
use clearair_imaging::Rgb8Image;
use clearair_model::TorchScriptConfig;
use clearair_testkit::{
    batched_more_than_one, export_tiny_with_reference, fresh_folder, load_image, synthetic_png,
    workspace,
};
use serde_json::Value;

/// The service's metrics, where the encoder's batch sizes are read back from.
fn metrics() -> Option<Arc<dyn BatchObserver>> {
    Some(Arc::new(
        clearair_runtime::metrics::global().service("segmentation"),
    ))
}

/// Smallest IoU accepted between a Rust mask and its upstream twin.
const MIN_MASK_IOU: f64 = 0.95;

/// A gradient with a red disc, saved as PNG (not square, so the grid's x and y differ).
fn synthetic(dir: &Path, width: u32, height: u32) -> PathBuf {
    synthetic_png(dir, width, height, |x, y| {
        let inside = (i64::from(x) - 70).pow(2) + (i64::from(y) - 60).pow(2) < 40 * 40;
        if inside {
            [230, 40, 40]
        } else {
            [(x * 255 / width) as u8, 120, (y * 255 / height) as u8]
        }
    })
}

/// The settings the reference runs (SAM2AutomaticMaskGenerator keyword arguments); the
/// thresholds of the second sit inside the spread of this seed's scores.
fn settings() -> Value {
    serde_json::json!([
        {"points_per_side": 8, "points_per_batch": 16, "pred_iou_thresh": 0.0,
         "stability_score_thresh": 0.0, "box_nms_thresh": 1.0},
        {"points_per_side": 8, "points_per_batch": 64, "pred_iou_thresh": 0.44,
         "stability_score_thresh": 0.78, "stability_score_offset": 0.05, "box_nms_thresh": 1.0},
        {"points_per_side": 8, "points_per_batch": 64, "pred_iou_thresh": 0.0,
         "stability_score_thresh": 0.0, "box_nms_thresh": 0.7},
        {"points_per_side": 8}
    ])
}

/// One export and reference run per test process (the Python side takes most of a minute),
/// in cargo's per-target scratch folder (a static is never dropped, so a temp dir would leak).
struct Export {
    module: PathBuf,
    reference: PathBuf,
}

fn export() -> &'static Export {
    static EXPORT: std::sync::OnceLock<Export> = std::sync::OnceLock::new();
    EXPORT.get_or_init(|| {
        let dir = fresh_folder(env!("CARGO_TARGET_TMPDIR"), "sam2-parity");
        let images = [
            workspace().join("tests/fixtures/samples/noisy-coffee.png"),
            synthetic(&dir, 200, 150),
        ];
        let module = dir.join("sam2-tiny.pt");
        let reference = dir.join("reference");
        export_tiny_with_reference(
            "sam2_export.py",
            1,
            &module,
            &images,
            &reference,
            &["--reference-amg", &settings().to_string()],
        );
        Export { module, reference }
    })
}

fn iou(a: &[bool], b: &[u8]) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        let y = y != 0;
        inter += u64::from(x && y);
        union += u64::from(x || y);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[test]
fn the_rust_mask_generator_matches_sam2s() {
    let Export {
        module, reference, ..
    } = export();
    let mut summary = Vec::new();
    for (number, _) in settings().as_array().unwrap().iter().enumerate() {
        let folder = reference.join(format!("amg-{number}"));
        let index: Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("index.json")).unwrap())
                .unwrap();
        let amg: AmgConfig = serde_json::from_value(index["settings"].clone()).unwrap();
        let backend = Sam2Backend::load(
            &TorchScriptConfig::with_module(module),
            "cpu",
            &amg,
            &BatchingConfig::default(),
            metrics(),
        )
        .unwrap();
        for entry in index["images"].as_array().unwrap() {
            let path = PathBuf::from(entry["image"].as_str().unwrap());
            let image = load_image(&path);
            let started = std::time::Instant::now();
            let ours = backend.generate(&image).unwrap();
            let elapsed = started.elapsed();
            let count = entry["count"].as_u64().unwrap() as usize;
            assert_eq!(
                ours.len(),
                count,
                "settings {number}, {}: mask count",
                path.display()
            );
            let plane = (image.width() * image.height()) as usize;
            let stem = entry["stem"].as_str().unwrap();
            let theirs = std::fs::read(folder.join(format!("{stem}-masks.u8"))).unwrap();
            assert_eq!(theirs.len(), count * plane);
            let scores = entry["predicted_iou"].as_array().unwrap();
            let mut worst = 1.0f64;
            for (rank, mask) in ours.iter().enumerate() {
                let pixels = Vec::<bool>::try_from(mask.mask.flatten(0, -1)).unwrap();
                let overlap = iou(&pixels, &theirs[rank * plane..(rank + 1) * plane]);
                worst = worst.min(overlap);
                assert!(
                    overlap >= MIN_MASK_IOU,
                    "settings {number}, {}: mask {rank} has IoU {overlap:.4} with upstream's",
                    path.display()
                );
                let score = scores[rank].as_f64().unwrap();
                assert!(
                    (f64::from(mask.predicted_iou) - score).abs() < 1e-4,
                    "settings {number}: mask {rank} scored {} upstream {score}",
                    mask.predicted_iou
                );
            }
            summary.push(format!(
                "settings {number} {}: {count} masks, smallest IoU {worst:.4}, generated in \
                 {:.1} s",
                path.file_name().unwrap().to_string_lossy(),
                elapsed.as_secs_f64()
            ));
        }
    }
    println!("{}", summary.join("\n"));
}

#[test]
fn the_service_backend_returns_at_most_max_masks_at_the_image_size() {
    let module = &export().module;
    let amg = AmgConfig {
        points_per_side: 8,
        pred_iou_thresh: 0.0,
        stability_score_thresh: 0.0,
        box_nms_thresh: 1.0,
        max_side: 64,
        ..AmgConfig::default()
    };
    let backend = Sam2Backend::load(
        &TorchScriptConfig::with_module(module),
        "cpu",
        &amg,
        &BatchingConfig::default(),
        metrics(),
    )
    .unwrap();
    assert_eq!(backend.name(), "sam2");
    let image = Rgb8Image::filled(160, 90, [90, 140, 200]).unwrap();
    let masks = backend.segment(&image, 5).unwrap();
    assert_eq!(masks.count(), 5, "192 candidates, the best 5 kept");
    assert_eq!(
        (masks.width(), masks.height()),
        (160, 90),
        "scaled back from 64×36"
    );
    let scores = masks.scores();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    // Defaults on random weights find nothing: one whole-image region scored 0.
    let strict = Sam2Backend::load(
        &TorchScriptConfig::with_module(module),
        "cpu",
        &AmgConfig {
            points_per_side: 4,
            ..AmgConfig::default()
        },
        &BatchingConfig::default(),
        metrics(),
    )
    .unwrap();
    assert!(strict.generate(&image).unwrap().is_empty());
    let masks = strict.segment(&image, 16).unwrap();
    assert_eq!((masks.count(), masks.scores()), (1, &[0.0][..]));
    assert!(masks.mask_pixels(0).iter().all(|&p| p));
}

#[test]
fn a_module_of_the_wrong_prior_or_an_unloadable_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("sam2.pt");
    std::fs::write(&module, b"placeholder").unwrap();
    std::fs::write(
        module.with_extension("json"),
        serde_json::json!({
            "manifest_version": 1, "module": "sam2.pt", "prior": "degradation",
            "architecture": "x", "backend_name": "x",
            "source": {"random_init": true, "checkpoint": null, "sha256": null},
        })
        .to_string(),
    )
    .unwrap();
    let config = TorchScriptConfig::with_module(&module);
    let refusal = || {
        Sam2Backend::load(
            &config,
            "cpu",
            &AmgConfig::default(),
            &BatchingConfig::default(),
            metrics(),
        )
        .unwrap_err()
        .to_string()
    };
    let error = refusal();
    assert!(
        error.contains("sam2.json") && error.contains("a degradation model"),
        "{error}"
    );

    let text = std::fs::read_to_string(module.with_extension("json")).unwrap();
    let fixed = text.replace("\"degradation\"", "\"segmentation\"");
    let with_decoder = fixed.replace(
        "\"source\"",
        "\"decoder\": \"sam2-decoder.pt\", \"input\": {\"size\": 1024, \"resize\": \
         \"bilinear-antialias\", \"mean\": [0.5, 0.5, 0.5], \"std\": [0.5, 0.5, 0.5]}, \
         \"outputs\": {\"image_embed\": [256, 64, 64], \"high_res_0\": [32, 256, 256], \
         \"high_res_1\": [64, 128, 128], \"masks_per_prompt\": 3, \"low_res_mask_side\": 256}, \
         \"source\"",
    );
    std::fs::write(module.with_extension("json"), with_decoder).unwrap();
    let error = refusal();
    assert!(
        error.contains("sam2.pt") && error.contains("not a loadable"),
        "{error}"
    );
}

#[test]
fn concurrent_images_share_encoder_batches_and_get_the_masks_of_single_ones() {
    let module = &export().module;
    let amg = AmgConfig {
        points_per_side: 4,
        pred_iou_thresh: 0.0,
        stability_score_thresh: 0.0,
        box_nms_thresh: 1.0,
        ..AmgConfig::default()
    };
    let config = TorchScriptConfig::with_module(module);
    let single = Sam2Backend::load(
        &config,
        "cpu",
        &amg,
        &BatchingConfig {
            max_batch_size: 1,
            max_queue_delay_ms: 0,
        },
        metrics(),
    )
    .unwrap();
    let batched = std::sync::Arc::new(
        Sam2Backend::load(
            &config,
            "cpu",
            &amg,
            &BatchingConfig {
                max_batch_size: 2,
                max_queue_delay_ms: 1_000,
            },
            metrics(),
        )
        .unwrap(),
    );
    let images = [
        Rgb8Image::filled(90, 60, [200, 30, 30]).unwrap(),
        Rgb8Image::filled(50, 80, [20, 90, 240]).unwrap(),
    ];
    let threads: Vec<_> = images
        .iter()
        .cloned()
        .map(|image| {
            let batched = batched.clone();
            std::thread::spawn(move || batched.generate(&image).unwrap())
        })
        .collect();
    for (thread, image) in threads.into_iter().zip(&images) {
        let together = thread.join().unwrap();
        let alone = single.generate(image).unwrap();
        assert_eq!(together.len(), alone.len());
        for (a, b) in together.iter().zip(&alone) {
            assert!((a.predicted_iou - b.predicted_iou).abs() < 1e-4);
            let a = Vec::<bool>::try_from(a.mask.flatten(0, -1)).unwrap();
            let b: Vec<u8> = Vec::<bool>::try_from(b.mask.flatten(0, -1))
                .unwrap()
                .into_iter()
                .map(u8::from)
                .collect();
            assert!(iou(&a, &b) >= MIN_MASK_IOU);
        }
    }
    assert!(
        batched_more_than_one("segmentation"),
        "some encoder batch held both images"
    );
}
