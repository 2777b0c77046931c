//! TLS and mutual TLS (rustls) on every hop, switched on by configuration.
//!
//! A server serves TLS when `[server.tls] enabled = true`; with `client_ca` set it also
//! demands a client certificate signed by that CA (mutual TLS) and refuses the handshake
//! otherwise. A peer channel dials TLS when its `[<peer>.tls] enabled = true`, verifying the
//! server against `ca` and presenting `cert`/`key` when the server asks for a client
//! certificate. Off by default: inside one host or behind a mesh sidecar plaintext is fine.
//!
//! Files are PEM and read at start-up, so a missing or unreadable one stops the process with
//! the field named rather than failing the first call.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::RuntimeError;

/// TLS of a gRPC server (`[server.tls]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTls {
    /// Serve TLS instead of plaintext.
    pub enabled: bool,
    /// The server's PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// The server's PEM private key.
    pub key: PathBuf,
    /// PEM bundle of the CAs that sign client certificates. When set, a client without a
    /// certificate signed by one of them is refused during the handshake (mutual TLS).
    pub client_ca: PathBuf,
}

impl ServerTls {
    /// The tonic TLS settings, or `None` when TLS is off; reads and checks the files.
    pub fn load(&self) -> Result<Option<ServerTlsConfig>, RuntimeError> {
        if !self.enabled {
            return Ok(None);
        }
        let cert = read_pem("server.tls.cert", &self.cert)?;
        let key = read_pem("server.tls.key", &self.key)?;
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if !self.client_ca.as_os_str().is_empty() {
            let ca = read_pem("server.tls.client_ca", &self.client_ca)?;
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        Ok(Some(tls))
    }

    /// The same settings for a listener that is not tonic's (the web front): a rustls
    /// configuration offering `alpn` (e.g. `h2`, `http/1.1`), or `None` when TLS is off.
    pub fn rustls(
        &self,
        alpn: &[&[u8]],
    ) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, RuntimeError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        if !self.enabled {
            return Ok(None);
        }
        let invalid = |field: &str, error: &dyn std::fmt::Display| {
            RuntimeError::InvalidConfig(format!("{field}: {error}"))
        };
        let certs =
            |field: &str, path: &Path| -> Result<Vec<CertificateDer<'static>>, RuntimeError> {
                CertificateDer::pem_slice_iter(&read_pem(field, path)?)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(field, &e))
            };
        let chain = certs("server.tls.cert", &self.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&read_pem("server.tls.key", &self.key)?)
            .map_err(|e| invalid("server.tls.key", &e))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("server.tls", &e))?;
        let builder = if self.client_ca.as_os_str().is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certs("server.tls.client_ca", &self.client_ca)? {
                roots
                    .add(ca)
                    .map_err(|e| invalid("server.tls.client_ca", &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid("server.tls.client_ca", &e))?;
            builder.with_client_cert_verifier(verifier)
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| invalid("server.tls", &e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Some(std::sync::Arc::new(config)))
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.enabled && !self.client_ca.as_os_str().is_empty()
    }
}

/// TLS of a channel to a peer service (`[<peer>.tls]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerTls {
    /// Dial TLS. An `http://` endpoint is then dialled as `https://`, so a config only has to
    /// switch this on.
    pub enabled: bool,
    /// PEM bundle of the CAs trusted to sign the peer's certificate.
    pub ca: PathBuf,
    /// This client's PEM certificate chain, presented when the peer demands mutual TLS
    /// (empty: none).
    pub cert: PathBuf,
    /// This client's PEM private key (with `cert`).
    pub key: PathBuf,
    /// Name expected in the peer's certificate; empty: the endpoint's host.
    pub domain: String,
}

impl PeerTls {
    /// The tonic TLS settings, or `None` when TLS is off; reads and checks the files.
    /// `field` names the peer's config section in errors (e.g. `quality.tls`).
    pub fn load(&self, field: &str) -> Result<Option<ClientTlsConfig>, RuntimeError> {
        if !self.enabled {
            return Ok(None);
        }
        let ca = read_pem(&format!("{field}.ca"), &self.ca)?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        match (
            self.cert.as_os_str().is_empty(),
            self.key.as_os_str().is_empty(),
        ) {
            (true, true) => {}
            (false, false) => {
                let cert = read_pem(&format!("{field}.cert"), &self.cert)?;
                let key = read_pem(&format!("{field}.key"), &self.key)?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            _ => {
                return Err(RuntimeError::InvalidConfig(format!(
                    "{field}.cert and {field}.key go together: set both for mutual TLS or neither"
                )));
            }
        }
        if !self.domain.is_empty() {
            tls = tls.domain_name(self.domain.clone());
        }
        Ok(Some(tls))
    }
}

/// Reads a PEM file named by config field `field`, checking it holds at least one PEM block
/// so a wrong path (a DER file, an empty file) is reported with the field at start-up.
fn read_pem(field: &str, path: &Path) -> Result<Vec<u8>, RuntimeError> {
    if path.as_os_str().is_empty() {
        return Err(RuntimeError::InvalidConfig(format!(
            "{field} is required when TLS is enabled"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        RuntimeError::InvalidConfig(format!("{field}: cannot read {}: {e}", path.display()))
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(RuntimeError::InvalidConfig(format!(
            "{field}: {} is not a PEM file",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_loads_nothing() {
        assert!(ServerTls::default().load().unwrap().is_none());
        assert!(PeerTls::default().load("quality.tls").unwrap().is_none());
        assert!(!ServerTls::default().is_mutual());
    }

    #[test]
    fn missing_files_name_the_field() {
        let server = ServerTls {
            enabled: true,
            cert: PathBuf::from("/nonexistent/server.pem"),
            key: PathBuf::from("/nonexistent/server.key"),
            ..ServerTls::default()
        };
        let message = server.load().unwrap_err().to_string();
        assert!(message.contains("server.tls.cert"), "{message}");
        assert!(message.contains("/nonexistent/server.pem"), "{message}");

        let peer = PeerTls {
            enabled: true,
            ..PeerTls::default()
        };
        let message = peer.load("restoration.tls").unwrap_err().to_string();
        assert!(
            message.contains("restoration.tls.ca is required"),
            "{message}"
        );
    }

    #[test]
    fn a_file_without_a_pem_block_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let der = dir.path().join("ca.der");
        std::fs::write(&der, [0x30, 0x82, 0x01, 0x0a, 0x02]).unwrap();
        let peer = PeerTls {
            enabled: true,
            ca: der,
            ..PeerTls::default()
        };
        let message = peer.load("quality.tls").unwrap_err().to_string();
        assert!(message.contains("is not a PEM file"), "{message}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let peer = PeerTls {
            enabled: true,
            ca,
            cert: dir.path().join("client.pem"),
            ..PeerTls::default()
        };
        let message = peer.load("degradation.tls").unwrap_err().to_string();
        assert!(message.contains("go together"), "{message}");
    }

    #[test]
    fn mutual_only_with_a_client_ca() {
        let tls = ServerTls {
            enabled: true,
            client_ca: PathBuf::from("ca.pem"),
            ..ServerTls::default()
        };
        assert!(tls.is_mutual());
        assert!(
            !ServerTls {
                enabled: false,
                ..tls
            }
            .is_mutual()
        );
    }
}
