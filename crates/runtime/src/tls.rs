//! TLS and mutual TLS (rustls) on every hop, switched on by configuration.
//!
//! A server serves TLS when `[server.tls] enabled = true`; with `client_ca` set it also
//! demands a client certificate signed by that CA (mutual TLS) and refuses the handshake
//! otherwise. A peer channel dials TLS when its `[<peer>.tls] enabled = true`, verifying the
//! server against `ca` and presenting `cert`/`key` when the server asks for a client
//! certificate. Off by default: inside one host or behind a mesh sidecar plaintext is fine.
//!
//! Files are PEM and read at start-up, so a missing or unreadable one stops the process with
//! the field named rather than failing the first call. They are then read again every
//! `reload_interval_ms` (30 s): when their bytes change (cert-manager renewed the Secret and
//! the kubelet swapped the mounted files), new connections use the new certificates — the
//! server's next handshake, a peer's next dial — without a restart. Connections already open
//! keep the certificates they were made with until they close (the server's
//! `max_connection_age_ms` bounds that). A set of files that does not load (a half-written
//! update, a key that does not match its certificate) is logged and counted in
//! `clearair_tls_reloads_total{result="error"}`, and the certificates in use stay.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio_rustls::{TlsAcceptor, rustls};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::{RuntimeError, metrics};

/// How often the certificate files are read again, by default.
const DEFAULT_RELOAD_INTERVAL_MS: u64 = 30_000;

/// ALPN of the native gRPC listener.
const GRPC_ALPN: &[&[u8]] = &[b"h2"];
/// ALPN of the web front (gRPC-Web and the page over HTTP/2 or HTTP/1.1).
const WEB_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// TLS of a gRPC server (`[server.tls]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Milliseconds between reads of the files; changed files apply to new connections
    /// (0: read once, at start-up).
    pub reload_interval_ms: u64,
}

impl Default for ServerTls {
    fn default() -> Self {
        Self {
            enabled: false,
            cert: PathBuf::new(),
            key: PathBuf::new(),
            client_ca: PathBuf::new(),
            reload_interval_ms: DEFAULT_RELOAD_INTERVAL_MS,
        }
    }
}

/// The bytes of a server's TLS files, as read at one moment.
#[derive(Clone, Debug, PartialEq)]
struct ServerFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl ServerFiles {
    /// A rustls configuration offering `alpn`.
    fn config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, RuntimeError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let invalid = |field: &str, error: &dyn std::fmt::Display| {
            RuntimeError::InvalidConfig(format!("{field}: {error}"))
        };
        let certs =
            |field: &str, pem: &[u8]| -> Result<Vec<CertificateDer<'static>>, RuntimeError> {
                CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(field, &e))
            };
        let chain = certs("server.tls.cert", &self.cert)?;
        let key =
            PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| invalid("server.tls.key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("server.tls", &e))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in certs("server.tls.client_ca", pem)? {
                    roots
                        .add(ca)
                        .map_err(|e| invalid("server.tls.client_ca", &e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid("server.tls.client_ca", &e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        // Checks that the key is the certificate's.
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| invalid("server.tls", &e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ServerTls {
    /// Reads the files (all of them, now).
    fn read(&self) -> Result<ServerFiles, RuntimeError> {
        Ok(ServerFiles {
            cert: read_pem("server.tls.cert", &self.cert)?,
            key: read_pem("server.tls.key", &self.key)?,
            client_ca: if self.client_ca.as_os_str().is_empty() {
                None
            } else {
                Some(read_pem("server.tls.client_ca", &self.client_ca)?)
            },
        })
    }

    /// The server's TLS, following its files (see the module documentation), or `None` when
    /// TLS is off. Reads and checks the files now, so a wrong one stops the start; `service`
    /// labels the reload log lines and metric. Call [`ReloadingServerTls::watch`] to follow
    /// the files.
    pub fn reloading(&self, service: &str) -> Result<Option<ReloadingServerTls>, RuntimeError> {
        if !self.enabled {
            return Ok(None);
        }
        let loaded = LoadedServer::new(self.read()?)?;
        metrics::global().expect_tls_reloads("server", service);
        Ok(Some(ReloadingServerTls {
            state: Arc::new(ServerState {
                settings: self.clone(),
                service: service.to_owned(),
                loaded: RwLock::new(loaded),
            }),
        }))
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.enabled && !self.client_ca.as_os_str().is_empty()
    }
}

/// A server's certificates in use: the files they came from and the configurations of both
/// listeners.
#[derive(Debug)]
struct LoadedServer {
    files: ServerFiles,
    grpc: Arc<rustls::ServerConfig>,
    web: Arc<rustls::ServerConfig>,
}

impl LoadedServer {
    fn new(files: ServerFiles) -> Result<Self, RuntimeError> {
        Ok(Self {
            grpc: files.config(GRPC_ALPN)?,
            web: files.config(WEB_ALPN)?,
            files,
        })
    }
}

#[derive(Debug)]
struct ServerState {
    settings: ServerTls,
    service: String,
    loaded: RwLock<LoadedServer>,
}

/// A server's TLS that follows its files: each handshake takes the certificates in use at
/// that moment. Cheap to clone; clones share the certificates.
#[derive(Clone, Debug)]
pub struct ReloadingServerTls {
    state: Arc<ServerState>,
}

impl ReloadingServerTls {
    /// The acceptor of the native gRPC listener (ALPN `h2`).
    pub fn grpc_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.loaded().grpc.clone())
    }

    /// The acceptor of the web front (ALPN `h2`, `http/1.1`).
    pub fn web_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.loaded().web.clone())
    }

    fn loaded(&self) -> std::sync::RwLockReadGuard<'_, LoadedServer> {
        self.state
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the files again; when they changed and load, new handshakes use them. Returns
    /// whether the certificates changed; an error leaves the ones in use in place.
    pub fn reload(&self) -> Result<bool, RuntimeError> {
        let state = &self.state;
        let outcome = state.settings.read().and_then(|files| {
            if files == self.loaded().files {
                return Ok(false);
            }
            let next = LoadedServer::new(files)?;
            *state.loaded.write().unwrap_or_else(PoisonError::into_inner) = next;
            Ok(true)
        });
        report_reload("server", &state.service, &outcome);
        outcome
    }

    /// Reads the files every `reload_interval_ms` while the server lives (no-op at 0); must
    /// be called within a Tokio runtime.
    pub fn watch(&self) {
        let interval = Duration::from_millis(self.state.settings.reload_interval_ms);
        if interval.is_zero() {
            return;
        }
        let weak = Arc::downgrade(&self.state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(state) = weak.upgrade() else { break };
                // Reading files blocks; it is a few kilobytes every few seconds.
                let _ = ReloadingServerTls { state }.reload();
            }
        });
    }
}

/// Longest a client may take over its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections of `listener` after their TLS handshake, each made with the certificates in
/// use when it was accepted. Handshakes run concurrently, so a slow or silent client holds up
/// no one (and is dropped after 10 s); a failed handshake (no client certificate, a foreign
/// CA) is logged at debug level and never reaches the server. Ends when the receiver is
/// dropped.
pub(crate) fn incoming(
    listener: tokio::net::TcpListener,
    tls: ReloadingServerTls,
    service: &'static str,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(service, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = tls.grpc_acceptor();
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(service, %peer, %error, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(service, %peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Logs and counts one reload attempt of `side` (`server` or `client`) `name`.
pub(crate) fn report_reload(side: &str, name: &str, outcome: &Result<bool, RuntimeError>) {
    match outcome {
        Ok(false) => {}
        Ok(true) => {
            tracing::info!(
                side,
                name,
                "TLS certificates reloaded; new connections use them"
            );
            metrics::global().record_tls_reload(side, name, true);
        }
        Err(error) => {
            tracing::warn!(side, name, %error,
                "TLS files changed but do not load; the certificates in use stay");
            metrics::global().record_tls_reload(side, name, false);
        }
    }
}

/// TLS of a channel to a peer service (`[<peer>.tls]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Milliseconds between reads of the files; changed files apply to new connections,
    /// which are made at once (0: read once, at start-up).
    pub reload_interval_ms: u64,
}

impl Default for PeerTls {
    fn default() -> Self {
        Self {
            enabled: false,
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            domain: String::new(),
            reload_interval_ms: DEFAULT_RELOAD_INTERVAL_MS,
        }
    }
}

/// The bytes of a peer channel's TLS files, as read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PeerFiles {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl PeerTls {
    /// The tonic TLS settings, or `None` when TLS is off; reads and checks the files.
    /// `field` names the peer's config section in errors (e.g. `quality.tls`).
    pub fn load(&self, field: &str) -> Result<Option<ClientTlsConfig>, RuntimeError> {
        if !self.enabled {
            return Ok(None);
        }
        Ok(Some(self.config(&self.read(field)?)))
    }

    /// Reads the files (all of them, now).
    pub(crate) fn read(&self, field: &str) -> Result<PeerFiles, RuntimeError> {
        let ca = read_pem(&format!("{field}.ca"), &self.ca)?;
        let identity = match (
            self.cert.as_os_str().is_empty(),
            self.key.as_os_str().is_empty(),
        ) {
            (true, true) => None,
            (false, false) => Some((
                read_pem(&format!("{field}.cert"), &self.cert)?,
                read_pem(&format!("{field}.key"), &self.key)?,
            )),
            _ => {
                return Err(RuntimeError::InvalidConfig(format!(
                    "{field}.cert and {field}.key go together: set both for mutual TLS or neither"
                )));
            }
        };
        Ok(PeerFiles { ca, identity })
    }

    /// The tonic TLS settings from files read by [`PeerTls::read`].
    pub(crate) fn config(&self, files: &PeerFiles) -> ClientTlsConfig {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&files.ca));
        if let Some((cert, key)) = &files.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        if !self.domain.is_empty() {
            tls = tls.domain_name(self.domain.clone());
        }
        tls
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
        assert!(ServerTls::default().reloading("test").unwrap().is_none());
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
        let message = server.reloading("test").unwrap_err().to_string();
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

    /// Two certificate sets of two throwaway CAs, made by the project's script.
    fn two_cert_sets() -> (tempfile::TempDir, tempfile::TempDir) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/tls/make-certs.sh");
        let make = || {
            let dir = tempfile::tempdir().unwrap();
            let status = std::process::Command::new(&script)
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .status()
                .expect("deploy/tls/make-certs.sh runs (it needs openssl)");
            assert!(status.success(), "make-certs.sh failed: {status}");
            dir
        };
        (make(), make())
    }

    fn reloads(result: &str) -> f64 {
        let page = metrics::global().render();
        let wanted = format!(
            "clearair_tls_reloads_total{{name=\"unit\",result=\"{result}\",side=\"server\"}} "
        );
        page.lines()
            .find_map(|line| line.strip_prefix(&wanted))
            .unwrap_or_else(|| panic!("no {wanted} in\n{page}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn a_server_follows_its_files_and_keeps_the_last_good_set() {
        let (a, b) = two_cert_sets();
        let live = tempfile::tempdir().unwrap();
        let put = |from: &Path, name: &str, to: &str| {
            std::fs::copy(from.join(name), live.path().join(to)).unwrap();
        };
        for name in ["server.pem", "server.key", "ca.pem"] {
            put(a.path(), name, name);
        }
        let settings = ServerTls {
            enabled: true,
            cert: live.path().join("server.pem"),
            key: live.path().join("server.key"),
            client_ca: live.path().join("ca.pem"),
            reload_interval_ms: 0,
        };
        let tls = settings.reloading("unit").unwrap().unwrap();
        assert_eq!(reloads("ok"), 0.0, "published at 0 before any reload");
        let first = tls.grpc_acceptor().config().clone();
        assert_eq!(first.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(tls.web_acceptor().config().alpn_protocols.len(), 2);

        assert!(!tls.reload().unwrap(), "unchanged files change nothing");
        assert!(Arc::ptr_eq(&first, tls.grpc_acceptor().config()));

        // A half-done update: B's certificate beside A's key. Refused; A stays.
        put(b.path(), "server.pem", "server.pem");
        let message = tls.reload().unwrap_err().to_string();
        assert!(message.contains("server.tls"), "{message}");
        assert!(Arc::ptr_eq(&first, tls.grpc_acceptor().config()));
        assert_eq!(reloads("error"), 1.0);

        // The update completes: B is used from the next handshake on.
        put(b.path(), "server.key", "server.key");
        put(b.path(), "ca.pem", "ca.pem");
        assert!(tls.reload().unwrap());
        let second = tls.grpc_acceptor().config().clone();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(reloads("ok"), 1.0);

        // A file that disappears (a Secret being swapped) is an error, not an outage.
        std::fs::remove_file(live.path().join("ca.pem")).unwrap();
        let message = tls.reload().unwrap_err().to_string();
        assert!(message.contains("server.tls.client_ca"), "{message}");
        assert!(Arc::ptr_eq(&second, tls.grpc_acceptor().config()));
    }
}
