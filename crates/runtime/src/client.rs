//! Channels to peer services: lazy connection (a peer that starts later is fine), calls spread
//! over every replica ([`crate::balance`]), message limits, compression, optional TLS / mutual
//! TLS and W3C trace-context injection on every call.

use tonic::service::interceptor::InterceptedService;

use crate::{
    RuntimeError, balance::BalancedChannel, propagation::TraceContextInjector, tls::PeerTls,
};

/// A channel over every replica of a peer whose every request carries the caller's trace
/// context.
pub type TracedChannel = InterceptedService<BalancedChannel, TraceContextInjector>;

/// Settings of a connection to a peer service.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's URL, e.g. `http://127.0.0.1:50052`. A DNS name stands for every address it
    /// resolves to (a Kubernetes headless Service: every ready pod); calls are spread over them.
    pub endpoint: String,
    /// The URLs of every replica, when they are listed by hand (e.g.
    /// `["http://10.0.0.5:50055", "http://10.0.0.6:50055"]`); when not empty it replaces
    /// `endpoint`. Names in it are resolved like `endpoint`.
    pub endpoints: Vec<String>,
    /// How often names are resolved again, in ms, so replicas that come and go are followed
    /// (0: once, at the first call).
    pub resolve_interval_ms: u64,
    /// Time allowed to establish a connection, in ms.
    pub connect_timeout_ms: u64,
    /// TLS to the peer, optionally with a client certificate for mutual TLS; off by default.
    pub tls: PeerTls,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:50052".to_owned(),
            endpoints: Vec::new(),
            resolve_interval_ms: 5_000,
            connect_timeout_ms: 2_000,
            tls: PeerTls::default(),
        }
    }
}

/// The URL to dial: TLS is decided by `tls.enabled`, so an `http://` endpoint is dialled as
/// `https://` when it is on; an `https://` endpoint with TLS off is a configuration error
/// (tonic would refuse every call with a less helpful message).
fn dial_url(peer: &PeerConfig, endpoint: &str) -> Result<String, RuntimeError> {
    match (peer.tls.enabled, endpoint.strip_prefix("http://")) {
        (true, Some(rest)) => Ok(format!("https://{rest}")),
        (false, _) if endpoint.starts_with("https://") => Err(RuntimeError::InvalidConfig(
            format!("peer endpoint {endpoint:?} is https:// but its tls.enabled is false"),
        )),
        _ => Ok(endpoint.to_owned()),
    }
}

/// Builds a lazily connecting, traced channel over every replica of `peer`, over TLS when
/// `peer.tls` says so; must be called within a Tokio runtime.
pub fn traced_channel(peer: &PeerConfig) -> Result<TracedChannel, RuntimeError> {
    let urls = if peer.endpoints.is_empty() {
        std::slice::from_ref(&peer.endpoint)
    } else {
        peer.endpoints.as_slice()
    };
    let dial_urls = urls
        .iter()
        .map(|url| dial_url(peer, url))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InterceptedService::new(
        BalancedChannel::new(peer, dial_urls)?,
        TraceContextInjector,
    ))
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

    fn dial_url_of(peer: &PeerConfig) -> Result<String, RuntimeError> {
        dial_url(peer, &peer.endpoint)
    }

    #[test]
    fn tls_decides_the_scheme() {
        assert_eq!(
            dial_url_of(&peer("http://quality:50052", true)).unwrap(),
            "https://quality:50052"
        );
        assert_eq!(
            dial_url_of(&peer("https://quality:50052", true)).unwrap(),
            "https://quality:50052"
        );
        assert_eq!(
            dial_url_of(&peer("http://quality:50052", false)).unwrap(),
            "http://quality:50052"
        );
        let message = dial_url_of(&peer("https://quality:50052", false))
            .unwrap_err()
            .to_string();
        assert!(message.contains("tls.enabled is false"), "{message}");
    }
}
