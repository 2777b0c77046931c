//! Channels to peer services: lazy connection (a peer that starts later is fine), message
//! limits, compression, optional TLS / mutual TLS and W3C trace-context injection on every
//! call.

use std::time::Duration;

use tonic::{
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

use crate::{RuntimeError, propagation::TraceContextInjector, tls::PeerTls};

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
    /// TLS to the peer, optionally with a client certificate for mutual TLS; off by default.
    pub tls: PeerTls,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:50052".to_owned(),
            connect_timeout_ms: 2_000,
            tls: PeerTls::default(),
        }
    }
}

/// The URL to dial: TLS is decided by `tls.enabled`, so an `http://` endpoint is dialled as
/// `https://` when it is on; an `https://` endpoint with TLS off is a configuration error
/// (tonic would refuse every call with a less helpful message).
fn dial_url(peer: &PeerConfig) -> Result<String, RuntimeError> {
    let endpoint = peer.endpoint.as_str();
    match (peer.tls.enabled, endpoint.strip_prefix("http://")) {
        (true, Some(rest)) => Ok(format!("https://{rest}")),
        (false, _) if endpoint.starts_with("https://") => Err(RuntimeError::InvalidConfig(
            format!("peer endpoint {endpoint:?} is https:// but its tls.enabled is false"),
        )),
        _ => Ok(endpoint.to_owned()),
    }
}

/// Builds a lazily connecting, traced channel to `peer`, over TLS when `peer.tls` says so.
pub fn traced_channel(peer: &PeerConfig) -> Result<TracedChannel, RuntimeError> {
    let url = dial_url(peer)?;
    let mut endpoint = Endpoint::from_shared(url).map_err(|e| {
        RuntimeError::InvalidConfig(format!("peer endpoint {:?}: {e}", peer.endpoint))
    })?;
    if let Some(tls) = peer.tls.load(&format!("peer {} tls", peer.endpoint))? {
        endpoint = endpoint.tls_config(tls)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(endpoint: &str, tls: bool) -> PeerConfig {
        PeerConfig {
            endpoint: endpoint.to_owned(),
            tls: PeerTls {
                enabled: tls,
                ..PeerTls::default()
            },
            ..PeerConfig::default()
        }
    }

    #[test]
    fn tls_decides_the_scheme() {
        assert_eq!(
            dial_url(&peer("http://quality:50052", true)).unwrap(),
            "https://quality:50052"
        );
        assert_eq!(
            dial_url(&peer("https://quality:50052", true)).unwrap(),
            "https://quality:50052"
        );
        assert_eq!(
            dial_url(&peer("http://quality:50052", false)).unwrap(),
            "http://quality:50052"
        );
        let message = dial_url(&peer("https://quality:50052", false))
            .unwrap_err()
            .to_string();
        assert!(message.contains("tls.enabled is false"), "{message}");
    }
}
