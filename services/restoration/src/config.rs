//! Configuration of the restoration service.

use clearair_backends::{
    ModelConfig, Precision, degradation::DegradationBackendConfig, quality::BRISQUE_BACKEND_NAME,
    segmentation::GRAPH_BACKEND_NAME,
};
use clearair_model::ClearAirConfig;
use clearair_runtime::config::ServerConfig;
use serde::{Deserialize, Serialize};

/// Everything the restoration service reads at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestorationConfig {
    /// The gRPC server.
    pub server: ServerConfig,
    /// The restorer's weights and device.
    pub model: ModelConfig,
    /// A refiner's weights (manifest beside them): a second network, trained on the
    /// restorer's output (`clearair train restorer --after`), run on it tile by tile on the
    /// restorer's device and in its precision, with every prior neutral or, when its
    /// manifest's `refiner_priors` is `served`, with the request's priors. Unset: the
    /// restorer alone; an empty path (`refiner = ""`, or the variable set empty) turns the
    /// default off.
    #[serde(deserialize_with = "empty_path_is_none")]
    pub refiner: Option<std::path::PathBuf>,
    /// The refiner runs on this many flips and transposes of each tile (1, 2, 4 or 8) and
    /// the outputs, turned back, are averaged: a better guess for that many times the
    /// refiner's cost, paid only where its gate opens.
    pub refiner_ensemble: u8,
    /// The fallback stage's weights (manifest beside them): a network trained on the
    /// restorer's output with every prior neutral (`clearair train restorer --after
    /// <restorer> --after-priors neutral --after-neutral 1 --all-neutral 1`, on every kind),
    /// run behind the restorer, in place of the refiner, on the requests that carry no prior
    /// (every prior service down, or an image sent alone). It must read no prior and have
    /// no gate on kind probabilities; its manifest's `blur_gate`, if any, keeps its change
    /// only on uploads whose blur effect reads high. Unset: such requests get the restorer
    /// alone; an empty path turns the default off, as for `refiner`.
    #[serde(deserialize_with = "empty_path_is_none")]
    pub fallback_refiner: Option<std::path::PathBuf>,
    /// The fallback stage runs on this many flips and transposes of each tile (1, 2, 4 or
    /// 8), as `refiner_ensemble`.
    pub fallback_refiner_ensemble: u8,
    /// The restorer runs on this many flips and transposes of each tile (1, 2, 4 or 8), the
    /// masks turned alike, and the outputs, turned back, are averaged: a better guess on
    /// every image for that many times the restorer's cost.
    pub restorer_ensemble: u8,
    /// Which prior backends the mesh runs, by name. The weights' manifest must name the same
    /// ones (the service refuses to start otherwise) and every prior a request carries must
    /// come from them; the widths of F_q, F_c and F_d are the weights' (their manifest), set
    /// nowhere by hand.
    pub backends: BackendNames,
    /// Images with a side above this are restored in overlapping tiles of this size, so
    /// memory stays bounded whatever the image size.
    pub tile_size: u32,
    /// Overlap between neighbouring tiles, blended with a linear ramp.
    pub tile_overlap: u32,
    /// Largest image accepted, in pixels.
    pub max_pixels: u64,
}

/// The prior backends the mesh runs, by the names their services report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendNames {
    /// The quality backend (`brisque`, `deqa`).
    pub quality: String,
    /// The segmentation backend (`graph`, `sam2`).
    pub segmentation: String,
    /// The degradation backend (`clearair-encoder`, or `clearair-encoder/centre` and
    /// `clearair-encoder/split` for the encoder's other views, or `daclip`).
    pub degradation: String,
}

impl Default for BackendNames {
    /// The embedded defaults: BRISQUE, graph segmentation, the compact encoder in the
    /// degradation service's default view.
    fn default() -> Self {
        Self {
            quality: BRISQUE_BACKEND_NAME.to_owned(),
            segmentation: GRAPH_BACKEND_NAME.to_owned(),
            degradation: DegradationBackendConfig::default()
                .view
                .backend_name()
                .to_owned(),
        }
    }
}

impl Default for RestorationConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50055".to_owned(),
                metrics_listen: "0.0.0.0:9465".to_owned(),
                max_concurrency: 2,
                max_queue: 16,
                ..ServerConfig::default()
            },
            model: ModelConfig {
                // bf16 where the CPU computes it natively (within 0.1 dB of fp32 in
                // `clearair eval`; the README's speed section), fp32 elsewhere.
                precision: Precision::Auto,
                ..ModelConfig::with_weights("models/clearair-compact.safetensors")
            },
            // The committed blur stage, behind its gate (models/README.md).
            refiner: Some(std::path::PathBuf::from(
                "models/clearair-blur-refiner.safetensors",
            )),
            // Eight passes of the blur stage where its gate opens: blur +0.94 → +1.03 in
            // `clearair eval`, paid only on the photos the encoder reads as blurred.
            refiner_ensemble: 8,
            // The committed fallback stage: it reads the upload beside the restorer's output
            // on the requests that carry no prior, where the upload reads blurred (its
            // manifest's blur_gate; models/README.md). Two passes, as it was measured.
            fallback_refiner: Some(std::path::PathBuf::from(
                "models/clearair-fallback-stage.safetensors",
            )),
            fallback_refiner_ensemble: 2,
            // Two passes (the tile and its mirror image): every row of `clearair eval`
            // better than one pass, for twice the restorer's time (README, speed).
            restorer_ensemble: 2,
            backends: BackendNames::default(),
            tile_size: 512,
            tile_overlap: 32,
            max_pixels: 40_000_000,
        }
    }
}

/// A path setting where the empty path means none: a file or an environment variable can
/// only turn a default stage off this way.
fn empty_path_is_none<'de, D>(deserializer: D) -> Result<Option<std::path::PathBuf>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let path = Option::<std::path::PathBuf>::deserialize(deserializer)?;
    Ok(path.filter(|path| !path.as_os_str().is_empty()))
}

impl RestorationConfig {
    /// The network configuration used with `random_init` (no manifest to read it from): the
    /// compact network for the quality backend's F_q width.
    pub fn random_init_network(&self) -> Result<ClearAirConfig, String> {
        let width =
            clearair_backends::quality::feature_width(&self.backends.quality).ok_or_else(|| {
                format!(
                    "random_init needs an F_q width, and the quality backend `{}` has none \
                     known without its weights' manifest",
                    self.backends.quality
                )
            })?;
        Ok(ClearAirConfig::compact(width as i64))
    }
}

impl clearair_runtime::launch::ServiceConfig for RestorationConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_path_turns_a_default_stage_off() {
        let folder = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let file = folder.path().join("restoration.toml");
            std::fs::write(&file, text).unwrap();
            clearair_runtime::config::load::<RestorationConfig>(
                "CLEARAIR_RESTORATION_CONFIG_TEST",
                Some(&file),
            )
            .unwrap()
        };
        let defaults = load("");
        assert_eq!(defaults, RestorationConfig::default());
        assert!(defaults.refiner.is_some() && defaults.fallback_refiner.is_some());
        let off = load("fallback_refiner = \"\"\n");
        assert_eq!(off.fallback_refiner, None);
        assert_eq!(off.refiner, defaults.refiner);
        let both_off = load("refiner = \"\"\nfallback_refiner = \"\"\n");
        assert_eq!((both_off.refiner, both_off.fallback_refiner), (None, None));
        let other = load("fallback_refiner = \"elsewhere.safetensors\"\n");
        assert_eq!(
            other.fallback_refiner,
            Some(std::path::PathBuf::from("elsewhere.safetensors"))
        );
    }
}
