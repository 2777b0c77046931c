use tch::CModule;

use super::*;

/// A traced stand-in for an image prior (per-image channel means) with a manifest for
/// `prior` whose input is 32 pixels square.
fn export(dir: &Path, prior: &str) -> PathBuf {
    let example = Tensor::ones([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let mut closure =
        |inputs: &[Tensor]| vec![inputs[0].mean_dim([2i64, 3].as_slice(), false, Kind::Float)];
    let module = CModule::create_by_tracing("Prior", "forward", &[example], &mut closure).unwrap();
    let path = dir.join(format!("{prior}.pt"));
    module.save(&path).unwrap();
    let manifest = serde_json::json!({
        "manifest_version": 1, "module": format!("{prior}.pt"), "prior": prior,
        "architecture": "channel-means", "backend_name": "means",
        "source": {"random_init": true, "checkpoint": null, "sha256": null},
        "input": {"size": 32},
    });
    std::fs::write(path.with_extension("json"), manifest.to_string()).unwrap();
    path
}

fn args() -> PriorsBenchArgs {
    PriorsBenchArgs {
        quality: None,
        segmentation: None,
        degradation: None,
        device: "cpu".to_owned(),
        precision: Precision::Fp32,
        batches: vec![1, 4],
        runs: 3,
        warmup: 1,
        prompts: 8,
        json: None,
    }
}

#[test]
fn every_batch_size_of_every_named_module_is_measured_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.json");
    let args = PriorsBenchArgs {
        quality: Some(export(dir.path(), "quality")),
        degradation: Some(export(dir.path(), "degradation")),
        json: Some(json.clone()),
        ..args()
    };
    let mut seen = 0;
    let results = run(&args, |_| seen += 1).unwrap();
    assert_eq!(seen, 4, "progress after each measurement");
    let rows: Vec<(&str, i64)> = results
        .iter()
        .map(|m| (m.module.as_str(), m.batch))
        .collect();
    assert_eq!(
        rows,
        [
            ("quality", 1),
            ("quality", 4),
            ("degradation", 1),
            ("degradation", 4)
        ]
    );
    for m in &results {
        assert!(m.p50_ms > 0.0 && m.max_ms >= m.p50_ms, "{m:?}");
        assert!((m.per_second - m.batch as f64 / (m.p50_ms / 1e3)).abs() < 1e-6);
        assert!(format_row(m).contains("channel-means"));
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(written.as_array().unwrap().len(), 4);
}

#[test]
fn nothing_to_measure_or_a_module_of_another_prior_is_an_error() {
    assert!(
        run(&args(), |_| {})
            .unwrap_err()
            .to_string()
            .contains("--quality")
    );
    let dir = tempfile::tempdir().unwrap();
    let wrong = PriorsBenchArgs {
        quality: Some(export(dir.path(), "degradation")),
        ..args()
    };
    let error = format!("{:#}", run(&wrong, |_| {}).unwrap_err());
    assert!(error.contains("a degradation model"), "{error}");
    let zero = PriorsBenchArgs {
        degradation: Some(export(dir.path(), "degradation")),
        batches: vec![0],
        ..args()
    };
    assert!(
        run(&zero, |_| {})
            .unwrap_err()
            .to_string()
            .contains("--batches")
    );
}
