use super::*;
use crate::clearair::ClearAirNet;
use crate::test_support::{random_priors, scratch_dir, tiny_config};
use tch::{Device, Kind};

fn backends() -> PriorBackends {
    PriorBackends {
        quality: QualityBackendSpec {
            name: "brisque".into(),
            width: 36,
        },
        segmentation: SegmentationBackendSpec {
            name: "felzenszwalb".into(),
            max_masks: 16,
        },
        degradation: DegradationBackendSpec {
            name: "clearair-encoder".into(),
            content_dim: 512,
            degradation_dim: 512,
        },
    }
}

#[test]
fn save_then_load_reproduces_the_outputs() {
    let dir = scratch_dir("roundtrip");
    let path = dir.path().join("tiny.safetensors");
    let config = tiny_config(36);
    tch::manual_seed(1);
    let original_store = nn::VarStore::new(Device::Cpu);
    let original = ClearAirNet::new(&original_store.root(), &config);
    save_weights(&original_store, &path).unwrap();

    tch::manual_seed(2);
    let mut loaded_store = nn::VarStore::new(Device::Cpu);
    let loaded = ClearAirNet::new(&loaded_store.root(), &config);
    let image = Tensor::rand([1, 3, 20, 12], (Kind::Float, Device::Cpu));
    let priors = random_priors(&config, 1, 20, 12, 3);
    let before = tch::no_grad(|| loaded.forward_t(&image, &priors, false));
    load_weights(&mut loaded_store, &path).unwrap();
    let (expected, got) = tch::no_grad(|| {
        (
            original.forward_t(&image, &priors, false),
            loaded.forward_t(&image, &priors, false),
        )
    });
    assert!(
        !before.equal(&expected),
        "differently seeded networks must differ before loading"
    );
    assert!(got.equal(&expected));
}

#[test]
fn loading_another_configuration_names_the_differing_tensors() {
    let dir = scratch_dir("mismatch");
    let path = dir.path().join("brisque.safetensors");
    let store = nn::VarStore::new(Device::Cpu);
    let _network = ClearAirNet::new(&store.root(), &tiny_config(36));
    save_weights(&store, &path).unwrap();

    let mut other = nn::VarStore::new(Device::Cpu);
    let _network = ClearAirNet::new(&other.root(), &tiny_config(4096));
    let error = load_weights(&mut other, &path).unwrap_err();
    let ModelError::WeightsMismatch { detail, .. } = &error else {
        panic!("expected WeightsMismatch, got {error:?}")
    };
    assert!(detail.contains("different shape"), "{detail}");
    assert!(
        detail.contains("quality_embedding.norm.weight is [36] in the file, [4096] in the network"),
        "{detail}"
    );
    assert!(!detail.contains("missing"), "{detail}");

    let mut encoder_store = nn::VarStore::new(Device::Cpu);
    let _encoder =
        crate::encoder::DegradationEncoder::new(&encoder_store.root(), &EncoderConfig::default());
    let error = load_weights(&mut encoder_store, &path)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("missing: ") && error.contains("unexpected: ") && error.contains("more"),
        "{error}"
    );
}

#[test]
fn weights_need_the_safetensors_extension_and_an_existing_file() {
    let mut store = nn::VarStore::new(Device::Cpu);
    let error = save_weights(&store, Path::new("weights.pt"))
        .unwrap_err()
        .to_string();
    assert!(error.contains(".safetensors"), "{error}");
    let missing = scratch_dir("missing").path().join("absent.safetensors");
    assert!(matches!(
        load_weights(&mut store, &missing),
        Err(ModelError::Io { .. })
    ));
}

#[test]
fn counts_trainable_parameters() {
    let store = nn::VarStore::new(Device::Cpu);
    let _linear = crate::layers::linear(store.root() / "fc", 3, 4);
    assert_eq!(parameter_count(&store), 3 * 4 + 4);
}

#[test]
fn matching_backends_pass_and_each_difference_is_explained() {
    let trained = backends();
    assert!(trained.check(&trained).is_ok());
    let mut fewer_masks = backends();
    fewer_masks.segmentation.max_masks = 8;
    assert!(
        trained.check(&fewer_masks).is_ok(),
        "fewer masks than trained is fine"
    );

    let mut running = backends();
    running.quality = QualityBackendSpec {
        name: "deqa".into(),
        width: 4096,
    };
    running.segmentation.max_masks = 32;
    let error = trained.check(&running).unwrap_err();
    let ModelError::BackendMismatch { differences } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        differences,
        &[
            "quality: trained with `brisque` (F_q width 36), running `deqa` (width 4096)",
            "segmentation: trained with `felzenszwalb` (at most 16 masks), running `felzenszwalb` (up to 32 masks)",
        ]
    );
    assert!(
        error
            .to_string()
            .starts_with("restorer weights do not match the running prior backends: quality")
    );
}

#[test]
fn manifest_round_trips_through_json() {
    let dir = scratch_dir("manifest");
    let weights = dir.path().join("clearair-compact.safetensors");
    let path = ModelManifest::path_for_weights(&weights);
    assert_eq!(path, dir.path().join("clearair-compact.json"));
    let manifest = ModelManifest {
        name: "clearair-compact".into(),
        network: NetworkConfig::ClearAir(ClearAirConfig::compact(36)),
        backends: Some(backends()),
        data: "DIV2K train crops, synthetic degradations".into(),
        iterations: 1200,
        metrics: BTreeMap::from([("psnr_noise25".to_string(), 29.5)]),
        command: "clearair train restorer --config compact".into(),
        seed: 7,
        refiner_priors: None,
        refiner_gate: None,
        blur_gate: None,
    };
    manifest.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"kind\": \"clearair\""), "{text}");
    // A restorer's manifest says nothing of refiners, as before there were any.
    assert!(!text.contains("refiner"), "{text}");
    assert_eq!(ModelManifest::read(&path).unwrap(), manifest);
    let refiner = ModelManifest {
        refiner_priors: Some(RefinerPriors::Served),
        ..manifest.clone()
    };
    refiner.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"refiner_priors\": \"served\""), "{text}");
    assert_eq!(ModelManifest::read(&path).unwrap(), refiner);
    manifest.write(&path).unwrap();

    let mut broken = manifest.clone();
    if let NetworkConfig::ClearAir(config) = &mut broken.network {
        config.heads[1] = 5;
    }
    broken.write(&path).unwrap();
    assert!(matches!(
        ModelManifest::read(&path),
        Err(ModelError::Config(_))
    ));
    std::fs::write(&path, "{").unwrap();
    assert!(matches!(
        ModelManifest::read(&path),
        Err(ModelError::Manifest { .. })
    ));
}

#[test]
fn a_refiner_gate_keeps_nothing_below_low_everything_above_high_and_a_line_between() {
    let gate = RefinerGate::parse("blur:0.3:0.6").unwrap();
    assert_eq!(
        gate,
        RefinerGate {
            kind: crate::DegradationKind::Blur,
            low: 0.3,
            high: 0.6,
            view: GateView::Served,
        }
    );
    // A fourth field names the view the thresholds were chosen in.
    assert_eq!(
        RefinerGate::parse("blur:0.4:0.6:tiles").unwrap(),
        RefinerGate {
            low: 0.4,
            view: GateView::Tiles,
            ..gate
        }
    );
    let with_blur = |p: f32| [0.9, 0.9, 0.9, p, 0.9];
    let weight = |p: f32| gate.weight(Some(&with_blur(p)));
    assert_eq!(weight(0.0), 0.0);
    assert_eq!(weight(0.3), 0.0);
    assert!((weight(0.45) - 0.5).abs() < 1e-6, "{}", weight(0.45));
    assert_eq!(weight(0.6), 1.0);
    assert_eq!(weight(1.0), 1.0);
    // The other kinds do not open it; no probabilities, too few, or NaN keep it shut.
    assert_eq!(gate.weight(Some(&[1.0, 1.0, 1.0, 0.1, 1.0])), 0.0);
    assert_eq!(gate.weight(None), 0.0);
    assert_eq!(gate.weight(Some(&[0.9, 0.9])), 0.0);
    assert_eq!(weight(f32::NAN), 0.0);
    for bad in [
        "blur:0.6:0.3",
        "blur:0.5:0.5",
        "blur:-0.1:0.5",
        "blur:0.2:1.5",
        "blur:NaN:0.5",
        "fog:0.2:0.5",
        "blur:0.2",
        "blur:x:0.5",
        "blur:0.2:0.5:everywhere",
        "blur:0.2:0.5:tiles:x",
    ] {
        let error = RefinerGate::parse(bad).unwrap_err().to_string();
        assert!(error.contains("refiner"), "{bad}: {error}");
    }
}

/// A refiner's manifest on the compact network, reading neutral priors, with no gate.
fn refiner_manifest() -> ModelManifest {
    ModelManifest {
        name: "clearair-compact".into(),
        network: NetworkConfig::ClearAir(ClearAirConfig::compact(36)),
        backends: Some(backends()),
        data: "blur windows behind the restorer".into(),
        iterations: 10,
        metrics: BTreeMap::new(),
        command: "clearair train restorer --after r --gate blur:0.3:0.6".into(),
        seed: 1,
        refiner_priors: None,
        refiner_gate: None,
        blur_gate: None,
    }
}

#[test]
fn a_blur_gate_keeps_nothing_below_low_everything_above_high_and_a_line_between() {
    let gate = BlurGate::parse("0.52:0.6").unwrap();
    assert_eq!(
        gate,
        BlurGate {
            low: 0.52,
            high: 0.6
        }
    );
    let weight = |b: f32| gate.weight(Some(b));
    assert_eq!(weight(0.1), 0.0);
    assert_eq!(weight(0.52), 0.0);
    assert!((weight(0.56) - 0.5).abs() < 1e-5, "{}", weight(0.56));
    assert_eq!(weight(0.6), 1.0);
    assert_eq!(weight(1.0), 1.0);
    // No reading (an upload too small to read) or NaN keeps it shut.
    assert_eq!(gate.weight(None), 0.0);
    assert_eq!(weight(f32::NAN), 0.0);
    for bad in [
        "0.6:0.5",
        "0.5:0.5",
        "-0.1:0.5",
        "0.5:1.5",
        "0.5",
        "a:0.6",
        "0.1:0.2:0.3",
    ] {
        let error = BlurGate::parse(bad).unwrap_err().to_string();
        assert!(
            error.contains("blur gate") || error.contains("blur_gate"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn a_manifest_keeps_its_blur_gate_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stage.json");
    let manifest = ModelManifest {
        blur_gate: Some(BlurGate::parse("0.52:0.6").unwrap()),
        ..refiner_manifest()
    };
    manifest.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"blur_gate\""), "{text}");
    assert_eq!(ModelManifest::read(&path).unwrap(), manifest);
    // A gate on the pixels is what a fallback stage may have: it needs no prior.
    assert_eq!(manifest.fallback_stage_problem(), None);
    std::fs::write(&path, text.replace("0.52", "0.72")).unwrap();
    let error = ModelManifest::read(&path).unwrap_err().to_string();
    assert!(error.contains("blur_gate"), "{error}");
}

#[test]
fn a_fallback_stage_reads_no_prior_and_has_no_gate() {
    let neutral = refiner_manifest();
    assert_eq!(neutral.fallback_stage_problem(), None);
    let served = ModelManifest {
        refiner_priors: Some(RefinerPriors::Served),
        ..neutral.clone()
    };
    assert!(served.fallback_stage_problem().unwrap().contains("Served"));
    let gated = ModelManifest {
        refiner_gate: Some(RefinerGate::parse("blur:0.3:0.6").unwrap()),
        ..neutral
    };
    assert!(gated.fallback_stage_problem().unwrap().contains("no gate"));
}

#[test]
fn a_manifest_keeps_its_refiner_gate_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gated.json");
    let manifest = ModelManifest {
        refiner_gate: Some(RefinerGate::parse("blur:0.3:0.6").unwrap()),
        ..refiner_manifest()
    };
    manifest.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"refiner_gate\""), "{text}");
    assert!(text.contains("\"kind\": \"blur\""), "{text}");
    // A gate on the served probabilities says nothing of its view.
    assert!(!text.contains("\"view\""), "{text}");
    assert_eq!(ModelManifest::read(&path).unwrap(), manifest);
    // One read in tiles names it, and keeps it through a round trip.
    let tiles = ModelManifest {
        refiner_gate: Some(RefinerGate::parse("blur:0.4:0.6:tiles").unwrap()),
        ..manifest.clone()
    };
    tiles.write(&path).unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"view\": \"tiles\""),
    );
    assert_eq!(ModelManifest::read(&path).unwrap(), tiles);
    manifest.write(&path).unwrap();
    let broken = text.replace("\"low\": 0.3", "\"low\": 0.9");
    assert_ne!(broken, text);
    std::fs::write(&path, broken).unwrap();
    let error = ModelManifest::read(&path).unwrap_err().to_string();
    assert!(error.contains("refiner_gate"), "{error}");
}
