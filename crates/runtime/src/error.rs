use std::path::PathBuf;

/// Failures of the shared runtime: configuration, telemetry and serving.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A configuration source could not be read or did not match the config struct.
    #[error("configuration error{}: {source}", file.as_ref().map(|f| format!(" in {}", f.display())).unwrap_or_default())]
    Config {
        /// The config file involved, if any.
        file: Option<PathBuf>,
        /// What the `config` crate reported.
        #[source]
        source: Box<config::ConfigError>,
    },
    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Telemetry (tracing / OpenTelemetry) could not be initialised.
    #[error("telemetry setup failed: {0}")]
    Telemetry(String),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not be built from the descriptor sets.
    #[error("reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot bind {address}: {source}")]
    Bind {
        /// The configured address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A task of the server itself panicked or was cancelled (the server task, a model load).
    #[error("{task} failed: {source}")]
    Task {
        /// What the task was doing.
        task: String,
        /// The join error (a panic's message is in it).
        #[source]
        source: tokio::task::JoinError,
    },
    /// An I/O error, e.g. binding the metrics listener.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
