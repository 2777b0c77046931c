//! DA-CLIP over TorchScript against the same model in Python.
//!
//! `deploy/export/daclip.py --random-init --tiny` builds DA-CLIP (open-clip-torch towers plus
//! the controller) with seeded random weights, traces it, and writes the eager model's outputs
//! on a set of images preprocessed by open_clip's own transform. The service then loads the
//! trace, preprocesses the same files in Rust and must agree: the preprocessed pixels exactly
//! (Pillow's bicubic resize is reproduced byte for byte), the embeddings and probabilities
//! within float tolerance. Needs the project's Python environment (`make setup`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use clearair_backends::{
    batch::{BatchObserver, BatchingConfig},
    degradation::{DegradationBackend, DegradationEstimate, torchscript::TorchScriptBackend},
};
use clearair_degradation::{DegradationConfig, config::DegradationBackendKind};
use clearair_imaging::Rgb8Image;
use clearair_model::TorchScriptConfig;
use clearair_proto::v1::{EmbedRequest, degradation_service_client::DegradationServiceClient};
use clearair_testkit::{
    batched_more_than_one, export_tiny_with_reference, load_image, max_difference, read_f32,
    synthetic_png, workspace,
};
use tch::{CModule, Device, Kind, Tensor};

/// Largest difference allowed between Rust and Python embeddings (the same libtorch runs
/// both; the trace and eager mode may order float operations differently).
const EMBEDDING_TOLERANCE: f32 = 1e-4;

/// A gradient with a pattern: odd sizes exercise the crop's rounding and an upscale, which
/// the photo fixtures (all larger than 224) do not.
fn synthetic(dir: &Path, width: u32, height: u32) -> PathBuf {
    synthetic_png(dir, width, height, |x, y| {
        [
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            ((x * 7 + y * 13) % 256) as u8,
        ]
    })
}

struct Export {
    module: PathBuf,
    images: Vec<PathBuf>,
    reference: PathBuf,
}

fn export(dir: &Path) -> Export {
    let samples = workspace().join("tests/fixtures/samples");
    let mut images: Vec<PathBuf> = ["noisy-coffee.png", "hazy-building.png", "dark-chelsea.png"]
        .iter()
        .map(|name| samples.join(name))
        .collect();
    images.push(synthetic(dir, 301, 227));
    images.push(synthetic(dir, 100, 61));
    let module = dir.join("daclip-tiny.pt");
    let reference = dir.join("reference");
    export_tiny_with_reference("daclip.py", 3, &module, &images, &reference, &[]);
    Export {
        module,
        images,
        reference,
    }
}

/// The service's metrics, where the batch sizes are read back from.
fn metrics() -> Option<Arc<dyn BatchObserver>> {
    Some(Arc::new(
        clearair_runtime::metrics::global().service("degradation"),
    ))
}

fn backend(module: &Path, batching: BatchingConfig) -> TorchScriptBackend {
    TorchScriptBackend::load(
        &TorchScriptConfig::with_module(module),
        "cpu",
        &batching,
        metrics(),
    )
    .unwrap()
}

#[test]
fn rust_preprocessing_and_the_trace_match_python() {
    let dir = tempfile::tempdir().unwrap();
    let export = export(dir.path());
    let backend = backend(&export.module, BatchingConfig::default());
    assert_eq!(backend.name(), "daclip");
    let mut worst = [0f32; 3];
    for (index, path) in export.images.iter().enumerate() {
        let stem = export.reference.join(format!("{index:02}"));
        let file = |what: &str| read_f32(&PathBuf::from(format!("{}-{what}.f32", stem.display())));
        let image = load_image(path);
        let pixels = Vec::<f32>::try_from(backend.input(&image).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(
            max_difference(&pixels, &file("pixels")),
            0.0,
            "{}: preprocessing differs from open_clip's transform",
            path.display()
        );
        let estimate = backend.embed(&image).unwrap();
        for (slot, (ours, theirs)) in [
            (&estimate.content, file("content")),
            (&estimate.degradation, file("degradation")),
            (&estimate.probabilities.to_vec(), file("probabilities")),
        ]
        .into_iter()
        .enumerate()
        {
            let difference = max_difference(ours, &theirs);
            worst[slot] = worst[slot].max(difference);
            assert!(
                difference <= EMBEDDING_TOLERANCE,
                "{}: output {slot} differs by {difference}",
                path.display()
            );
        }
        let total: f32 = estimate.probabilities.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
    }
    println!(
        "largest |Rust − Python|: F_c {:.2e}, F_d {:.2e}, probabilities {:.2e}",
        worst[0], worst[1], worst[2]
    );
}

#[test]
fn batched_requests_get_the_results_of_single_ones() {
    let dir = tempfile::tempdir().unwrap();
    let export = export(dir.path());
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
            max_batch_size: 4,
            max_queue_delay_ms: 500,
        },
    ));
    let images: Vec<Rgb8Image> = export.images.iter().map(|p| load_image(p)).collect();
    let alone: Vec<DegradationEstimate> = images.iter().map(|i| single.embed(i).unwrap()).collect();
    let threads: Vec<_> = images
        .iter()
        .cloned()
        .map(|image| {
            let batched = batched.clone();
            std::thread::spawn(move || batched.embed(&image).unwrap())
        })
        .collect();
    for (thread, expected) in threads.into_iter().zip(&alone) {
        let got = thread.join().unwrap();
        assert!(max_difference(&got.content, &expected.content) <= EMBEDDING_TOLERANCE);
        assert!(max_difference(&got.degradation, &expected.degradation) <= EMBEDDING_TOLERANCE);
    }
    assert!(
        batched_more_than_one("degradation"),
        "some batch held more than one image"
    );
}

/// A module returning one `[B, 7]` tensor, with a manifest that promises DA-CLIP's outputs.
fn wrong_shape_module(dir: &Path) -> PathBuf {
    let example = Tensor::ones([2, 3, 224, 224], (Kind::Float, Device::Cpu));
    let mut closure = |inputs: &[Tensor]| {
        vec![
            inputs[0]
                .mean_dim([2i64, 3].as_slice(), false, Kind::Float)
                .repeat([1, 3])
                .narrow(1, 0, 7),
        ]
    };
    let module = CModule::create_by_tracing("Wrong", "forward", &[example], &mut closure).unwrap();
    let path = dir.join("wrong.pt");
    module.save(&path).unwrap();
    let manifest = serde_json::json!({
        "manifest_version": 1, "module": "wrong.pt", "prior": "degradation",
        "architecture": "not-daclip", "backend_name": "wrong",
        "source": {"random_init": true, "seed": 0, "checkpoint": null, "sha256": null},
        "input": {"size": 224, "resize": "shorter-side-bicubic-pil", "crop": "centre",
                  "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "outputs": {"content": 512, "degradation": 512,
                    "kinds": ["noise", "haze", "rain", "blur", "low_light"]},
    });
    std::fs::write(path.with_extension("json"), manifest.to_string()).unwrap();
    path
}

#[test]
fn a_module_of_the_wrong_shape_or_the_wrong_prior_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = wrong_shape_module(dir.path());
    let refusal = || {
        TorchScriptBackend::load(
            &TorchScriptConfig::with_module(&wrong),
            "cpu",
            &BatchingConfig::default(),
            None,
        )
        .unwrap_err()
        .to_string()
    };
    let error = refusal();
    assert!(
        error.contains("wrong.pt") && error.contains("returned 1 outputs; expected 3"),
        "{error}"
    );

    let manifest = wrong.with_extension("json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"degradation\",", "\"quality\",")).unwrap();
    let error = refusal();
    assert!(
        error.contains("wrong.json") && error.contains("a quality model"),
        "{error}"
    );
}

#[tokio::test]
async fn the_service_serves_daclip_and_reports_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let export = tokio::task::spawn_blocking({
        let path = dir.path().to_path_buf();
        move || export(&path)
    })
    .await
    .unwrap();
    let mut config = DegradationConfig {
        backend: DegradationBackendKind::Torchscript,
        torchscript: TorchScriptConfig::with_module(&export.module),
        // DA-CLIP sends the served probabilities only.
        gate_view: clearair_degradation::config::GateView::Served,
        ..DegradationConfig::default()
    };
    config.model.device = "cpu".to_owned();
    config.server.metrics_listen = String::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(clearair_degradation::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let image = load_image(&export.images[0]);
    let mut client = loop {
        if let Ok(client) = DegradationServiceClient::connect(format!("http://{address}")).await {
            break client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let response = loop {
        match client
            .embed(EmbedRequest {
                image: Some(image.to_proto()),
            })
            .await
        {
            Ok(response) => break response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(status) => panic!("Embed failed: {status}"),
        }
    };
    let prior = response.degradation.expect("a prior");
    assert_eq!(prior.backend, "daclip");
    assert_eq!(prior.content.len(), 512);
    assert_eq!(prior.degradation.len(), 512);
    assert_eq!(prior.probabilities.len(), 5);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
