use super::*;

/// A traced module (per-image channel means, then their sum) saved with a manifest for
/// `prior`. (Modules traced from Rust have one output; tuples are covered by the exports'
/// parity tests.)
fn export(dir: &Path, prior: &str, version: u32) -> PathBuf {
    let example = Tensor::ones([2, 3, 4, 4], (Kind::Float, Device::Cpu));
    let mut closure = |inputs: &[Tensor]| {
        let means = inputs[0].mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        let sums = means.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        vec![Tensor::cat(&[means, sums], 1)]
    };
    let module = CModule::create_by_tracing("Prior", "forward", &[example], &mut closure).unwrap();
    let path = dir.join("prior.pt");
    module.save(&path).unwrap();
    let manifest = serde_json::json!({
        "manifest_version": version,
        "module": "prior.pt",
        "prior": prior,
        "architecture": "channel-means",
        "backend_name": "means",
        "parameters": 0,
        "source": {"random_init": true, "seed": 0, "checkpoint": null, "sha256": null},
        "outputs": {"width": 3},
    });
    std::fs::write(path.with_extension("json"), manifest.to_string()).unwrap();
    path
}

#[test]
fn a_module_and_its_manifest_load_and_run_at_each_cpu_precision() {
    let dir = tempfile::tempdir().unwrap();
    let path = export(dir.path(), "quality", EXPORT_MANIFEST_VERSION);
    let manifest = ExportManifest::read_for(&path, "quality").unwrap();
    assert_eq!(manifest.backend_name, "means");
    assert!(manifest.source.random_init);
    #[derive(Debug, Deserialize)]
    struct Outputs {
        width: i64,
    }
    assert_eq!(manifest.section::<Outputs>("outputs").unwrap().width, 3);
    let missing = manifest
        .section::<Outputs>("input")
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("prior.json") && missing.contains("no `input` section"),
        "{missing}"
    );

    let input = Tensor::arange(3 * 2 * 2, (Kind::Float, Device::Cpu)).view([1, 3, 2, 2]);
    for precision in [Precision::Fp32, Precision::Bf16] {
        let model = ScriptModel::load(&path, "cpu", precision).unwrap();
        let outputs = model.forward(std::slice::from_ref(&input)).unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].kind(), Kind::Float, "outputs come back as f32");
        let means = Vec::<f32>::try_from(outputs[0].flatten(0, -1)).unwrap();
        assert_eq!(means, vec![1.5, 5.5, 9.5, 16.5], "{precision:?}");
        check_shape(&path, "means", &outputs[0], &[None, Some(4)]).unwrap();
        let error = check_shape(&path, "means", &outputs[0], &[None, Some(3)])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("prior.pt") && error.contains("`means`") && error.contains("[N, 3]"),
            "{error}"
        );
    }
}

#[test]
fn the_wrong_prior_an_old_manifest_or_a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = export(dir.path(), "segmentation", EXPORT_MANIFEST_VERSION);
    let error = ExportManifest::read_for(&path, "degradation")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("prior.json") && error.contains("a segmentation model"),
        "{error}"
    );

    let old = tempfile::tempdir().unwrap();
    let path = export(old.path(), "degradation", 0);
    let error = ExportManifest::read_for(&path, "degradation")
        .unwrap_err()
        .to_string();
    assert!(error.contains("manifest_version 0"), "{error}");

    let absent = dir.path().join("absent.pt");
    let error = ScriptModel::load(&absent, "cpu", Precision::Fp32)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("absent.pt") && error.contains("deploy/export"),
        "{error}"
    );
    let error = ExportManifest::read_for(&absent, "quality")
        .unwrap_err()
        .to_string();
    assert!(error.contains("absent.pt"), "{error}");
    // A module without its manifest.
    let unlisted = dir.path().join("unlisted.pt");
    std::fs::copy(dir.path().join("prior.pt"), &unlisted).unwrap();
    let error = ExportManifest::read_for(&unlisted, "quality")
        .unwrap_err()
        .to_string();
    assert!(error.contains("unlisted.json"), "{error}");

    let garbage = dir.path().join("garbage.pt");
    std::fs::write(&garbage, b"not a zip archive").unwrap();
    let error = ScriptModel::load(&garbage, "cpu", Precision::Fp32)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("garbage.pt") && error.contains("not a loadable"),
        "{error}"
    );
}

#[test]
fn half_precision_is_refused_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let path = export(dir.path(), "quality", EXPORT_MANIFEST_VERSION);
    let error = ScriptModel::load(&path, "cpu", Precision::Fp16)
        .unwrap_err()
        .to_string();
    assert!(error.contains("fp16 is for GPUs"), "{error}");
}
