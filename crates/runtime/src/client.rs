//! Channels to peer services: lazy connection (a peer that starts later is fine), message
//! limits, compression and W3C trace-context injection on every call.

use std::time::Duration;

use tonic::{
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

use crate::{RuntimeError, propagation::TraceContextInjector};

/// A channel whose every request carries the caller's trace context.
pub type TracedChannel = InterceptedService<Channel, TraceContextInjector>;

/// Settings of a connection to a peer service.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's URL, e.g. `http://127.0.0.1:50052`.
    pub endpoint: String,
    /// Time allowed to establish a connection, in ms.
    pub connect_timeout_ms: u64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:50052".to_owned(),
            connect_timeout_ms: 2_000,
        }
    }
}

/// Builds a lazily connecting, traced channel to `peer`.
pub fn traced_channel(peer: &PeerConfig) -> Result<TracedChannel, RuntimeError> {
    let endpoint = Endpoint::from_shared(peer.endpoint.clone()).map_err(|e| {
        RuntimeError::InvalidConfig(format!("peer endpoint {:?}: {e}", peer.endpoint))
    })?;
    let channel = endpoint
        .connect_timeout(Duration::from_millis(peer.connect_timeout_ms))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(InterceptedService::new(channel, TraceContextInjector))
}

/// Applies message limits and compression to a generated client.
#[macro_export]
macro_rules! configure_client {
    ($client:expr, $max_message_bytes:expr) => {
        $client
            .max_decoding_message_size($max_message_bytes)
            .max_encoding_message_size($max_message_bytes)
            .accept_compressed(::tonic::codec::CompressionEncoding::Zstd)
            .accept_compressed(::tonic::codec::CompressionEncoding::Gzip)
    };
}
