//! Configuration of the orchestrator.

use clearair_imaging::DecodeLimits;
use clearair_runtime::{client::PeerConfig, config::ServerConfig, web::WebConfig};
use serde::{Deserialize, Serialize};

/// What to do when a prior service fails or cannot assess an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Answer with the prior's error (UNAVAILABLE when the service is down).
    Fail,
    /// Use the prior's neutral value and name the prior in the response's `fallbacks`.
    #[default]
    Fallback,
}

/// One failure policy per prior.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorPolicies {
    /// The quality prior.
    pub quality: FailurePolicy,
    /// The region masks.
    pub segmentation: FailurePolicy,
    /// The degradation prior.
    pub degradation: FailurePolicy,
}

/// How the three prior calls are issued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FanOut {
    /// All three at once (the point of the mesh).
    #[default]
    Parallel,
    /// One after the other; only for measuring what parallelism buys (`clearair bench`).
    Sequential,
}

/// Limits on what clients may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputLimits {
    /// Widest image accepted, in pixels.
    pub max_width: u32,
    /// Tallest image accepted, in pixels.
    pub max_height: u32,
    /// Largest image accepted, in pixels (decompression bombs are refused from the header).
    pub max_pixels: u64,
    /// Largest encoded upload, in bytes.
    pub max_encoded_bytes: u64,
}

impl Default for InputLimits {
    fn default() -> Self {
        let defaults = DecodeLimits::default();
        Self {
            max_width: defaults.max_width,
            max_height: defaults.max_height,
            max_pixels: 16_000_000,
            max_encoded_bytes: 48 << 20,
        }
    }
}

impl InputLimits {
    /// The decoder limits these translate to.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_width: self.max_width,
            max_height: self.max_height,
            max_pixels: self.max_pixels,
            max_encoded_bytes: self.max_encoded_bytes,
            ..DecodeLimits::default()
        }
    }
}

/// Everything the orchestrator reads at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// The public gRPC server.
    pub server: ServerConfig,
    /// The web front: the restore page and gRPC-Web on the same API (`listen` empty: off).
    pub web: WebConfig,
    /// The quality service.
    pub quality: PeerConfig,
    /// The segmentation service.
    pub segmentation: PeerConfig,
    /// The degradation service.
    pub degradation: PeerConfig,
    /// The restoration service.
    pub restoration: PeerConfig,
    /// Failure policy per prior.
    pub policy: PriorPolicies,
    /// Parallel (default) or sequential prior calls.
    pub fan_out: FanOut,
    /// Limits on uploads.
    pub limits: InputLimits,
    /// Masks asked of the segmentation service (≤ 16).
    pub max_masks: u32,
    /// Bytes of priors kept in the content-addressed cache (0 disables it).
    pub cache_bytes: usize,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        let peer = |port: u16| PeerConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            ..PeerConfig::default()
        };
        Self {
            server: ServerConfig {
                listen: "0.0.0.0:50051".to_owned(),
                metrics_listen: "0.0.0.0:9461".to_owned(),
                max_concurrency: 16,
                max_queue: 64,
                // Public clients re-connect every 5 minutes, so scaled-out orchestrators
                // get their share of long-lived client connections.
                max_connection_age_ms: 300_000,
                ..ServerConfig::default()
            },
            web: WebConfig {
                listen: "0.0.0.0:8080".to_owned(),
                ..WebConfig::default()
            },
            quality: peer(50052),
            segmentation: peer(50053),
            degradation: peer(50054),
            restoration: peer(50055),
            policy: PriorPolicies::default(),
            fan_out: FanOut::Parallel,
            limits: InputLimits::default(),
            max_masks: clearair_proto::contract::MAX_MASKS,
            cache_bytes: 64 << 20,
        }
    }
}

impl OrchestratorConfig {
    /// The four peers (quality, segmentation, degradation, restoration), to change them
    /// alike (e.g. every peer's TLS).
    pub fn peers_mut(&mut self) -> [&mut PeerConfig; 4] {
        [
            &mut self.quality,
            &mut self.segmentation,
            &mut self.degradation,
            &mut self.restoration,
        ]
    }
}

impl clearair_runtime::launch::ServiceConfig for OrchestratorConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}
