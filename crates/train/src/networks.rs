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

/// Loads weights to run as the first network, the one that reads the upload alone: a stage
/// that also reads the upload (`sees_upload`) is refused here, by name, before a forward pass
/// would fail on its six input channels.
pub fn load_first_restorer(weights: &Path, device: Device) -> Result<Loaded<ClearAirNet>> {
    let loaded = load_restorer(weights, device)?;
    match loaded.network.config().restorer_problem() {
        Some(problem) => Err(TrainError::Setting(format!(
            "{}: {problem}",
            weights.display()
        ))),
        None => Ok(loaded),
    }
}

/// A freshly initialised encoder (seeded by the caller through `tch::manual_seed`).
pub fn new_encoder(config: &EncoderConfig, device: Device) -> (nn::VarStore, DegradationEncoder) {
    let store = nn::VarStore::new(device);
    let network = DegradationEncoder::new(&store.root(), config);
    (store, network)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_that_sees_the_upload_is_refused_as_the_first_network_by_name() {
        let folder = tempfile::tempdir().unwrap();
        let committed =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/clearair-compact.json");
        let manifest = ModelManifest::read(&committed).unwrap();
        let NetworkConfig::ClearAir(mut config) = manifest.network.clone() else {
            panic!("the committed manifest is a restorer's");
        };
        let write = |config: &ClearAirConfig, name: &str| {
            let store = nn::VarStore::new(Device::Cpu);
            let _network = ClearAirNet::new(&store.root(), config);
            let weights = folder.path().join(name);
            clearair_model::save_weights(&store, &weights).unwrap();
            let mut manifest = manifest.clone();
            manifest.network = NetworkConfig::ClearAir(config.clone());
            manifest
                .write(&ModelManifest::path_for_weights(&weights))
                .unwrap();
            weights
        };
        let restorer = write(&config, "restorer.safetensors");
        config.sees_upload = true;
        let stage = write(&config, "stage.safetensors");
        assert!(load_first_restorer(&restorer, Device::Cpu).is_ok());
        // Behind a restorer the stage loads as any network does.
        assert!(load_restorer(&stage, Device::Cpu).is_ok());
        let error = load_first_restorer(&stage, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(error.contains("stage.safetensors"), "{error}");
        assert!(error.contains("sees the upload"), "{error}");
    }
}
