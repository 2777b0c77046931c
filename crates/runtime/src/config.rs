//! Typed configuration, layered with the `config` crate: built-in defaults → an optional file
//! (TOML) → environment variables.
//!
//! Environment variables use the service's prefix and `__` between levels, so the field
//! `server.max_concurrency` of the quality service is `CLEARAIR_QUALITY__SERVER__MAX_CONCURRENCY`.

use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{RuntimeError, auth::AuthConfig, tls::ServerTls};

/// Settings every gRPC server in the mesh shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the gRPC server binds to (the binaries bind it; tests pass their own listener).
    pub listen: String,
    /// Address of the Prometheus `/metrics` HTTP endpoint; empty disables it.
    pub metrics_listen: String,
    /// Largest gRPC message received or sent, in bytes. Images exceed tonic's 4 MiB default.
    pub max_message_bytes: usize,
    /// Requests processed at once by the service's model; further requests wait in the queue.
    pub max_concurrency: usize,
    /// Requests allowed to wait for a processing slot; beyond that the server answers
    /// RESOURCE_EXHAUSTED at once rather than queueing without bound.
    pub max_queue: usize,
    /// Server-side cap on any request's duration in milliseconds (0: none). A shorter
    /// `grpc-timeout` from the client wins.
    pub request_timeout_ms: u64,
    /// On SIGTERM, how long in-flight calls may take to finish before the process exits, in ms.
    pub drain_timeout_ms: u64,
    /// Close each client connection after this long, in ms (0: never): the server says GOAWAY
    /// and the calls in flight finish (each within `request_timeout_ms`). Clients then reconnect — through a load balancer
    /// or a re-resolved name, to whichever replica is there now — so long-lived connections
    /// do not stay pinned to the first pods of a scaled-out Deployment.
    pub max_connection_age_ms: u64,
    /// TLS, optionally mutual (`[server.tls]`); off by default.
    pub tls: ServerTls,
    /// Bearer token required on the server's own services (`[server.auth]`); off by default.
    pub auth: AuthConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:50051".to_owned(),
            metrics_listen: String::new(),
            max_message_bytes: 64 << 20,
            max_concurrency: 4,
            max_queue: 32,
            request_timeout_ms: 120_000,
            drain_timeout_ms: 30_000,
            max_connection_age_ms: 0,
            tls: ServerTls::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if self.max_concurrency == 0 {
            return Err(RuntimeError::InvalidConfig(
                "server.max_concurrency must be at least 1".to_owned(),
            ));
        }
        if self.max_message_bytes < 4 << 20 {
            return Err(RuntimeError::InvalidConfig(format!(
                "server.max_message_bytes is {}; it must be at least 4 MiB (4194304)",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    /// The server-side request timeout, if any.
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        (self.request_timeout_ms > 0)
            .then(|| std::time::Duration::from_millis(self.request_timeout_ms))
    }
}

/// Keys whose environment value is a comma-separated list (also under `orchestrator.`, where
/// one config holds every service's).
const LIST_KEYS: [&str; 5] = [
    "web.allowed_origins",
    "quality.endpoints",
    "segmentation.endpoints",
    "degradation.endpoints",
    "restoration.endpoints",
];

/// Loads `T` from its defaults, then `file` (if given), then environment variables starting with
/// `env_prefix` followed by `__` (e.g. `CLEARAIR_QUALITY__SERVER__LISTEN`).
pub fn load<T>(env_prefix: &str, file: Option<&Path>) -> Result<T, RuntimeError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let wrap = |source| RuntimeError::Config {
        file: file.map(Path::to_path_buf),
        source: Box::new(source),
    };
    let defaults = config::Config::try_from(&T::default()).map_err(wrap)?;
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    let mut environment = config::Environment::with_prefix(env_prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        // The lists a deployment sets by environment, comma-separated: web origins and
        // the replicas of each peer.
        .list_separator(",");
    for key in LIST_KEYS {
        environment = environment
            .with_list_parse_key(key)
            .with_list_parse_key(&format!("orchestrator.{key}"));
    }
    builder = builder.add_source(environment);
    builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(wrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        server: ServerConfig,
        model_path: String,
    }

    #[test]
    fn layers_defaults_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("example.toml");
        std::fs::write(
            &file,
            "model_path = \"from-file\"\n[server]\nmax_queue = 7\nmax_concurrency = 3\n",
        )
        .unwrap();
        // SAFETY: this test is the only reader of this uniquely prefixed variable.
        unsafe { std::env::set_var("CLEARAIR_CFGTEST__SERVER__MAX_CONCURRENCY", "9") };
        let loaded: Example = load("CLEARAIR_CFGTEST", Some(&file)).unwrap();
        assert_eq!(loaded.model_path, "from-file");
        assert_eq!(loaded.server.max_queue, 7);
        assert_eq!(
            loaded.server.max_concurrency, 9,
            "environment overrides the file"
        );
        assert_eq!(loaded.server.max_message_bytes, 64 << 20, "default kept");
    }

    #[test]
    fn allowed_origins_are_a_comma_separated_list_in_the_environment() {
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct WithWeb {
            server: ServerConfig,
            web: crate::web::WebConfig,
        }
        // SAFETY: these tests are the only readers of these uniquely prefixed variables.
        unsafe {
            std::env::set_var(
                "CLEARAIR_CFGWEB__WEB__ALLOWED_ORIGINS",
                "https://a.example.com,http://127.0.0.1:3000",
            );
            std::env::set_var("CLEARAIR_CFGWEB__SERVER__LISTEN", "127.0.0.1:1,2");
        }
        let loaded: WithWeb = load("CLEARAIR_CFGWEB", None).unwrap();
        assert_eq!(
            loaded.web.allowed_origins,
            ["https://a.example.com", "http://127.0.0.1:3000"]
        );
        assert_eq!(
            loaded.server.listen, "127.0.0.1:1,2",
            "other keys stay strings"
        );
    }

    #[test]
    fn a_peer_s_replicas_are_a_comma_separated_list_in_the_environment() {
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct WithPeer {
            restoration: crate::client::PeerConfig,
        }
        // SAFETY: this test is the only reader of this uniquely prefixed variable.
        unsafe {
            std::env::set_var(
                "CLEARAIR_CFGPEER__RESTORATION__ENDPOINTS",
                "http://127.0.0.2:50055,http://127.0.0.3:50055",
            );
        }
        let loaded: WithPeer = load("CLEARAIR_CFGPEER", None).unwrap();
        assert_eq!(
            loaded.restoration.endpoints,
            ["http://127.0.0.2:50055", "http://127.0.0.3:50055"]
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[server]\nmax_concurency = 3\n").unwrap();
        let err = load::<Example>("CLEARAIR_CFGTEST_BAD", Some(&file)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("bad.toml"), "{message}");
        assert!(message.contains("max_concurency"), "{message}");
    }

    #[test]
    fn validation_names_the_field() {
        let config = ServerConfig {
            max_concurrency: 0,
            ..ServerConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_concurrency")
        );
    }
}
