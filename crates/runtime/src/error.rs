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
    /// An I/O error, e.g. binding the metrics listener.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
