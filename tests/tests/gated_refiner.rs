//! A refiner gated in another view than the served one, through the whole mesh: the
//! degradation service sends the gate's reading beside the served probabilities, the
//! orchestrator carries it, and the restoration service opens the gate on it. Without that
//! reading the gate stays shut and the upload gets the restorer's output alone.

use clearair_e2e::{
    photo, public_client, restore_request, start_mesh, with_committed_encoder, workspace,
};
use clearair_mesh::MeshConfig;
use clearair_model::{GateView, ModelManifest, RefinerGate};

/// The committed networks (deterministic priors and outputs from one mesh to the next),
/// with `refiner` behind the restorer and the degradation service reading `gate_view`.
fn committed(config: &mut MeshConfig, refiner: Option<std::path::PathBuf>, gate_view: GateView) {
    with_committed_encoder(config);
    config.degradation.gate_view = gate_view;
    config.restoration.model.random_init = false;
    config.restoration.model.weights = workspace().join("models/clearair-compact.safetensors");
    config.restoration.refiner = refiner;
}

async fn restored(
    refiner: Option<std::path::PathBuf>,
    gate_view: GateView,
) -> clearair_imaging::Rgb8Image {
    let mesh = start_mesh(|config| committed(config, refiner, gate_view)).await;
    let response = public_client(&mesh)
        .await
        .restore(restore_request(photo()))
        .await
        .expect("restores")
        .into_inner();
    assert!(response.fallbacks.is_empty(), "{:?}", response.fallbacks);
    clearair_imaging::decode(&response.image.expect("an image").data, &Default::default())
        .expect("decodes")
        .image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_in_the_tiles_view_opens_on_the_reading_the_degradation_service_sends() {
    // The committed restorer as its own refiner (it reads no prior as a refiner), gated on
    // blur in the tiles view and open at any probability above a millionth.
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("refiner.safetensors");
    std::fs::copy(
        workspace().join("models/clearair-compact.safetensors"),
        &weights,
    )
    .unwrap();
    let mut manifest = ModelManifest::read(&workspace().join("models/clearair-compact.json"))
        .expect("the committed manifest");
    manifest.refiner_gate = Some(RefinerGate::parse("blur:0:0.000001:tiles").unwrap());
    manifest
        .write(&ModelManifest::path_for_weights(&weights))
        .unwrap();

    let alone = restored(None, GateView::Served).await;
    let opened = restored(Some(weights.clone()), GateView::Tiles).await;
    let shut = restored(Some(weights), GateView::Served).await;
    assert_ne!(opened, alone, "the tiles reading opens the gate");
    assert_eq!(shut, alone, "without the tiles reading the gate stays shut");
}
