//! What every service binary does: parse `--config`, set up telemetry, load the layered
//! config, bind, start the metrics endpoint and serve until SIGTERM.

use std::{error::Error, future::Future, path::PathBuf, pin::Pin};

use clap::Parser;
use serde::{Serialize, de::DeserializeOwned};
use tokio::net::TcpListener;

use crate::{RuntimeError, config::ServerConfig};

/// A service's configuration: it holds a [`ServerConfig`].
pub trait ServiceConfig: Serialize + DeserializeOwned + Default + Send + 'static {
    /// The gRPC server part.
    fn server(&self) -> &ServerConfig;
}

/// Command line of every service binary.
#[derive(Debug, Parser)]
#[command(version, about = "A ClearAIR mesh service")]
pub struct ServiceArgs {
    /// TOML config file; environment variables (`CLEARAIR_<SERVICE>__…`) override it.
    #[arg(long, env = "CLEARAIR_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The shutdown trigger handed to a service's `serve`.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The `main` of every binary: the memory policy ([`crate::memory`]) before any thread
/// starts, then a multi-threaded tokio runtime running `future`.
pub fn run<T, E>(future: impl Future<Output = Result<T, E>>) -> Result<T, E>
where
    E: From<std::io::Error>,
{
    crate::memory::retain_freed_memory();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Runs a service binary: `binary` names it in telemetry, `env_prefix` is its configuration
/// prefix (e.g. `CLEARAIR_QUALITY`), `serve` is the library's entry point.
pub async fn launch<C, F, Fut, E>(
    binary: &'static str,
    env_prefix: &str,
    serve: F,
) -> Result<(), Box<dyn Error + Send + Sync>>
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Error + Send + Sync + 'static,
{
    let args = ServiceArgs::parse();
    let _telemetry = crate::telemetry::init(binary)?;
    let config: C = crate::config::load(env_prefix, args.config.as_deref())?;
    let server = config.server();
    let listener =
        TcpListener::bind(&server.listen)
            .await
            .map_err(|source| RuntimeError::Bind {
                address: server.listen.clone(),
                source,
            })?;
    if !server.metrics_listen.is_empty() {
        let addr =
            crate::metrics::spawn_metrics_endpoint(&server.metrics_listen, std::future::pending())
                .await?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    tracing::info!(addr = %listener.local_addr()?, binary, "listening");
    serve(config, listener, Box::pin(crate::shutdown::signal())).await?;
    tracing::info!(binary, "stopped");
    Ok(())
}
