//! The deployment's service configs (`deploy/config/*.toml`, mounted by docker compose and
//! turned into the Helm ConfigMap) load into the services' real config structs — which deny
//! unknown fields — and agree with what the images, compose and the chart assume.

use std::path::PathBuf;

use clearair_e2e::workspace;
use clearair_mesh::MeshConfig;
use clearair_runtime::launch::ServiceConfig;

fn deploy_config(service: &str) -> PathBuf {
    workspace().join(format!("deploy/config/{service}.toml"))
}

/// Loads `service`'s file the way its binary does (defaults → file → environment with
/// `env_prefix`), into the type of `like`.
fn load_like<T: ServiceConfig>(_like: &T, service: &str, env_prefix: &str) -> T {
    let file = deploy_config(service);
    clearair_runtime::config::load(env_prefix, Some(&file))
        .unwrap_or_else(|e| panic!("{} does not load: {e}", file.display()))
}

#[test]
fn every_file_loads_into_its_service_config_and_keeps_the_standard_ports() {
    let defaults = MeshConfig::default();
    let orchestrator = load_like(&defaults.orchestrator, "orchestrator", "CLEARAIR_DT_ORCH");
    let quality = load_like(&defaults.quality, "quality", "CLEARAIR_DT_QUALITY");
    let segmentation = load_like(&defaults.segmentation, "segmentation", "CLEARAIR_DT_SEG");
    let degradation = load_like(&defaults.degradation, "degradation", "CLEARAIR_DT_DEG");
    let restoration = load_like(&defaults.restoration, "restoration", "CLEARAIR_DT_REST");

    // The web front: the image EXPOSEs it, compose publishes it and the chart's `web.port`
    // names it.
    assert_eq!(orchestrator.web.listen, "0.0.0.0:8080");
    assert!(orchestrator.web.page);
    orchestrator.web.validate().expect("valid web settings");

    // The images' CLEARAIR_GRPC_PORT, compose's Prometheus targets and the chart's values use
    // these ports.
    let servers = [
        ("orchestrator", orchestrator.server(), 50051, 9461),
        ("quality", quality.server(), 50052, 9462),
        ("segmentation", segmentation.server(), 50053, 9463),
        ("degradation", degradation.server(), 50054, 9464),
        ("restoration", restoration.server(), 50055, 9465),
    ];
    for (name, server, port, metrics) in servers {
        server.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(server.listen, format!("0.0.0.0:{port}"), "{name}");
        assert_eq!(
            server.metrics_listen,
            format!("0.0.0.0:{metrics}"),
            "{name}"
        );
        assert!(
            !server.tls.enabled,
            "{name}: TLS is switched on by environment"
        );
        assert!(
            server.tls.is_mutual() || !server.tls.enabled,
            "{name}: mutual TLS once enabled"
        );
        assert_eq!(
            server.tls.cert,
            PathBuf::from("/etc/clearair/tls/server.pem"),
            "{name}: the chart and compose mount certificates there"
        );
        assert!(
            server.auth.token().unwrap().is_none(),
            "{name}: no token in a file"
        );
    }

    // The orchestrator's peers are the compose service names on the standard ports.
    for (peer, port) in [
        (&orchestrator.quality, 50052),
        (&orchestrator.segmentation, 50053),
        (&orchestrator.degradation, 50054),
        (&orchestrator.restoration, 50055),
    ] {
        assert!(
            peer.endpoint.ends_with(&format!(":{port}")),
            "{}",
            peer.endpoint
        );
        assert_eq!(peer.tls.cert, PathBuf::from("/etc/clearair/tls/client.pem"));
    }
    assert!(orchestrator.max_masks <= clearair_imaging::MAX_MASKS);
    // The files change only what deployment needs; the models stay the embedded defaults.
    assert_eq!(quality.brisque_params, defaults.quality.brisque_params);
    assert_eq!(
        degradation.model.weights,
        defaults.degradation.model.weights
    );
    assert_eq!(
        restoration.model.weights,
        defaults.restoration.model.weights
    );
    assert_eq!(restoration.backends, defaults.restoration.backends);
    assert_eq!(restoration.refiner, defaults.restoration.refiner);
    assert_eq!(
        restoration.restorer_ensemble,
        defaults.restoration.restorer_ensemble
    );
    assert_eq!(
        restoration.refiner_ensemble,
        defaults.restoration.refiner_ensemble
    );
    assert_eq!(degradation.gate_view, defaults.degradation.gate_view);
    assert_eq!(degradation.view, defaults.degradation.view);
    assert_eq!(degradation.max_side, defaults.degradation.max_side);
    assert_eq!(segmentation.graph, defaults.segmentation.graph);
}

#[test]
fn the_default_mesh_runs_the_backends_the_committed_restorer_was_trained_with() {
    let defaults = MeshConfig::default();
    let manifest =
        clearair_model::ModelManifest::read(&workspace().join("models/clearair-compact.json"))
            .expect("the committed restorer's manifest");
    let trained = manifest.backends.expect("it names its prior backends");
    let running = &defaults.restoration.backends;
    assert_eq!(trained.quality.name, running.quality);
    assert_eq!(trained.segmentation.name, running.segmentation);
    assert_eq!(trained.degradation.name, running.degradation);
    // The degradation service reports the name of its view; the restoration service expects
    // that name.
    assert_eq!(
        defaults.degradation.view.backend_name(),
        running.degradation,
        "the encoder's default view is the one the restorer was trained on"
    );
}

#[test]
fn the_default_mesh_serves_the_committed_blur_refiner_behind_the_reading_its_gate_needs() {
    let defaults = MeshConfig::default();
    let refiner = defaults
        .restoration
        .refiner
        .as_ref()
        .expect("the default mesh runs a refiner");
    let refiner = workspace().join(refiner);
    assert!(refiner.exists(), "{} is committed", refiner.display());
    let manifest = clearair_model::ModelManifest::read(
        &clearair_model::ModelManifest::path_for_weights(&refiner),
    )
    .expect("the refiner's manifest");
    let gate = manifest.refiner_gate.expect("the blur stage is gated");
    assert_eq!(gate.kind, clearair_model::DegradationKind::Blur);
    // Without a reading in the gate's view the gate would stay shut: the degradation
    // service's default sends exactly that reading.
    assert_eq!(gate.view, defaults.degradation.gate_view);
    assert_eq!(
        manifest.refiner_priors.unwrap_or_default(),
        clearair_model::RefinerPriors::Neutral,
        "a blur stage that reads no prior works behind any restorer"
    );
}

#[test]
fn environment_switches_tls_on_and_clears_the_public_client_ca() {
    // SAFETY: these variables are unique to this test; no other code reads them.
    unsafe {
        std::env::set_var("CLEARAIR_DT_SWITCH__SERVER__TLS__ENABLED", "true");
        std::env::set_var("CLEARAIR_DT_SWITCH__SERVER__TLS__CLIENT_CA", "");
        std::env::set_var("CLEARAIR_DT_SWITCH__QUALITY__TLS__ENABLED", "true");
        std::env::set_var(
            "CLEARAIR_DT_SWITCH__QUALITY__ENDPOINT",
            "http://clearair-quality:50052",
        );
    }
    let orchestrator = load_like(
        &MeshConfig::default().orchestrator,
        "orchestrator",
        "CLEARAIR_DT_SWITCH",
    );
    assert!(orchestrator.server.tls.enabled);
    assert!(
        !orchestrator.server.tls.is_mutual(),
        "an empty CLIENT_CA from the environment means server-only TLS on the public API"
    );
    assert!(orchestrator.quality.tls.enabled);
    assert_eq!(
        orchestrator.quality.endpoint,
        "http://clearair-quality:50052"
    );
    assert!(!orchestrator.segmentation.tls.enabled);
}

#[test]
fn prior_services_admit_a_full_batch() {
    let defaults = MeshConfig::default();
    let quality = load_like(&defaults.quality, "quality", "CLEARAIR_DT_QUALITY_B");
    let segmentation = load_like(&defaults.segmentation, "segmentation", "CLEARAIR_DT_SEG_B");
    let degradation = load_like(&defaults.degradation, "degradation", "CLEARAIR_DT_DEG_B");
    for (name, server, batching) in [
        ("quality", &quality.server, &quality.batching),
        ("segmentation", &segmentation.server, &segmentation.batching),
        ("degradation", &degradation.server, &degradation.batching),
        (
            "quality default",
            &defaults.quality.server,
            &defaults.quality.batching,
        ),
        (
            "segmentation default",
            &defaults.segmentation.server,
            &defaults.segmentation.batching,
        ),
        (
            "degradation default",
            &defaults.degradation.server,
            &defaults.degradation.batching,
        ),
    ] {
        batching
            .check_admission("batching", server.max_concurrency)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_backend_with_fewer_slots_than_a_batch_refuses_to_start() {
    let mut config = clearair_e2e::test_config();
    config.quality.backend = clearair_backends::quality::QualityBackendKind::Torchscript;
    config.quality.server.max_concurrency = 4;
    let mut mesh = clearair_mesh::Mesh::start(config)
        .await
        .expect("the listeners bind");
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(60), mesh.any_stopped())
        .await
        .expect("the quality service stops at once");
    let message = stopped.to_string();
    for needle in ["server.max_concurrency is 4", "batching.max_batch_size 8"] {
        assert!(message.contains(needle), "{message}");
    }
}

/// The `CLEARAIR_…` variables compose's production override sets on `service`.
fn production_environment(service: &str) -> Vec<(String, String)> {
    let path = workspace().join("deploy/docker/compose.production.yml");
    let text = std::fs::read_to_string(&path).expect("compose.production.yml");
    let section = format!("  {service}:");
    let body = text
        .split_once(&format!("\n{section}\n"))
        .unwrap_or_else(|| panic!("no service {service} in {}", path.display()))
        .1;
    body.lines()
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .filter_map(|line| line.trim().split_once(": "))
        .filter(|(name, _)| name.starts_with("CLEARAIR_"))
        // A quoted YAML scalar is its text between the quotes (`""` the empty string).
        .map(|(name, value)| {
            let unquoted = value
                .strip_prefix('"')
                .and_then(|quoted| quoted.strip_suffix('"'))
                .unwrap_or(value);
            (name.to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// The backend name `deploy/export/<script>` writes into its module's manifest.
fn exported_backend_name(script: &str) -> String {
    let text = std::fs::read_to_string(workspace().join("deploy/export").join(script)).unwrap();
    let after = text
        .split_once("\"backend_name\": \"")
        .unwrap_or_else(|| panic!("{script} writes no backend_name"))
        .1;
    after.split('"').next().unwrap().to_owned()
}

/// Loads `service`'s deploy config with compose's production variables applied (renamed to
/// a prefix of this test's own, so no other test sees them).
fn load_production<T: ServiceConfig>(like: &T, service: &str) -> T {
    let prefix = format!("CLEARAIR_DT_PROD_{}", service.to_uppercase());
    let real = format!("CLEARAIR_{}__", service.to_uppercase());
    let variables = production_environment(service);
    assert!(!variables.is_empty(), "{service}: no production switches");
    for (name, value) in variables {
        let renamed = name
            .strip_prefix(&real)
            .unwrap_or_else(|| panic!("{name} is not a {service} variable"));
        // SAFETY: the prefix is unique to this test; no other code reads these variables.
        unsafe { std::env::set_var(format!("{prefix}__{renamed}"), value) };
    }
    load_like(like, service, &prefix)
}

#[test]
fn the_production_profile_switches_every_model_service_to_its_exported_backend() {
    use clearair_backends::{
        degradation::DegradationBackendKind, quality::QualityBackendKind,
        segmentation::SegmentationBackendKind,
    };
    let defaults = MeshConfig::default();
    let quality = load_production(&defaults.quality, "quality");
    assert_eq!(quality.backend, QualityBackendKind::Torchscript);
    assert_eq!(quality.device, "cuda", "a missing GPU must fail the start");
    assert_eq!(quality.torchscript.module, PathBuf::from("/models/deqa.pt"));

    let segmentation = load_production(&defaults.segmentation, "segmentation");
    assert_eq!(segmentation.backend, SegmentationBackendKind::Torchscript);
    assert_eq!(segmentation.device, "cuda");
    assert_eq!(
        segmentation.torchscript.module,
        PathBuf::from("/models/sam2.pt")
    );

    let degradation = load_production(&defaults.degradation, "degradation");
    assert_eq!(degradation.backend, DegradationBackendKind::Torchscript);
    assert_eq!(degradation.model.device, "cuda");
    assert_eq!(
        degradation.torchscript.module,
        PathBuf::from("/models/daclip.pt")
    );
    assert_eq!(
        degradation.gate_view,
        clearair_backends::degradation::GateView::Served,
        "DA-CLIP has no tiles reading: it would refuse to start"
    );

    let restoration = load_production(&defaults.restoration, "restoration");
    assert_eq!(restoration.model.device, "cuda");
    assert_eq!(
        restoration.model.weights,
        PathBuf::from("/models/clearair-full.safetensors")
    );
    // The restorer refuses to start unless these match the modules' manifests.
    assert_eq!(
        restoration.backends.quality,
        exported_backend_name("deqa_export.py")
    );
    assert_eq!(
        restoration.backends.segmentation,
        exported_backend_name("sam2_export.py")
    );
    assert_eq!(
        restoration.backends.degradation,
        exported_backend_name("daclip.py")
    );
    // The fallback stage was trained behind the compact restorer: off behind the full one.
    assert!(defaults.restoration.fallback_refiner.is_some());
    assert_eq!(restoration.fallback_refiner, None);
}
