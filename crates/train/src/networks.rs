//! Loading trained networks by their weights file and manifest, as the services do.

use std::path::Path;

use clearair_backends::degradation::EncoderView;
use clearair_model::{
    ClearAirConfig, ClearAirNet, DegradationEncoder, EncoderConfig, ModelManifest, NetworkConfig,
    load_weights,
};
use tch::{Device, nn};

use crate::error::{Result, TrainError};

/// A network with the store that owns its weights.
#[derive(Debug)]
pub struct Loaded<N> {
    /// The weights.
    pub store: nn::VarStore,
    /// The network.
    pub network: N,
    /// Its manifest.
    pub manifest: ModelManifest,
}

/// The encoder view a restorer was trained on, read from its manifest's degradation backend
/// (the whole image when the manifest names no backends, as the earliest ones did), so it is
/// evaluated on the embeddings it will be served.
pub fn trained_encoder_view(manifest: &ModelManifest) -> Result<EncoderView> {
    let Some(backends) = &manifest.backends else {
        return Ok(EncoderView::Whole);
    };
    let name = &backends.degradation.name;
    EncoderView::from_backend_name(name).ok_or_else(|| {
        TrainError::Setting(format!(
            "the restorer was trained on the `{name}` degradation backend; training and \
             evaluation run the compact encoder ({})",
            EncoderView::ALL.map(EncoderView::backend_name).join(", ")
        ))
    })
}

/// The restorer configuration called `name` (`compact` or `full`) for F_q of `quality_dim`.
pub fn restorer_config(name: &str, quality_dim: i64) -> Result<ClearAirConfig> {
    match name {
        "compact" => Ok(ClearAirConfig::compact(quality_dim)),
        "full" => Ok(ClearAirConfig::full(quality_dim)),
        other => Err(TrainError::Setting(format!(
            "unknown restorer config `{other}` (expected `compact` or `full`)"
        ))),
    }
}

/// Loads the degradation encoder whose weights are at `weights` (manifest beside it).
pub fn load_encoder(weights: &Path, device: Device) -> Result<Loaded<DegradationEncoder>> {
    let manifest = ModelManifest::read(&ModelManifest::path_for_weights(weights))?;
    let NetworkConfig::Encoder(config) = &manifest.network else {
        return Err(TrainError::Setting(format!(
            "{} holds a restorer, not the degradation encoder",
            weights.display()
        )));
    };
    let mut store = nn::VarStore::new(device);
    let network = DegradationEncoder::new(&store.root(), config);
    load_weights(&mut store, weights)?;
    Ok(Loaded {
        store,
        network,
        manifest,
    })
}

/// Loads the restorer whose weights are at `weights` (manifest beside it).
pub fn load_restorer(weights: &Path, device: Device) -> Result<Loaded<ClearAirNet>> {
    let manifest = ModelManifest::read(&ModelManifest::path_for_weights(weights))?;
    let NetworkConfig::ClearAir(config) = &manifest.network else {
        return Err(TrainError::Setting(format!(
            "{} holds the degradation encoder, not a restorer",
            weights.display()
        )));
    };
    let mut store = nn::VarStore::new(device);
    let network = ClearAirNet::new(&store.root(), config);
    load_weights(&mut store, weights)?;
    Ok(Loaded {
        store,
        network,
        manifest,
    })
}

/// A freshly initialised encoder (seeded by the caller through `tch::manual_seed`).
pub fn new_encoder(config: &EncoderConfig, device: Device) -> (nn::VarStore, DegradationEncoder) {
    let store = nn::VarStore::new(device);
    let network = DegradationEncoder::new(&store.root(), config);
    (store, network)
}
