//! `clearair-orchestrator`: the public API of the mesh as its own process.

use clearair_orchestrator::{OrchestratorConfig, OrchestratorError};
use clearair_runtime::launch::Shutdown;
use tokio::net::TcpListener;

async fn serve(
    config: OrchestratorConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), OrchestratorError> {
    let web = if config.web.is_enabled() {
        let bound = TcpListener::bind(&config.web.listen)
            .await
            .map_err(|source| clearair_runtime::RuntimeError::Bind {
                address: config.web.listen.clone(),
                source,
            })?;
        Some(bound)
    } else {
        None
    };
    clearair_orchestrator::serve_with_web(config, listener, web, shutdown).await
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clearair_runtime::launch::run(clearair_runtime::launch::launch(
        "clearair-orchestrator",
        "CLEARAIR_ORCHESTRATOR",
        serve,
    ))
}
