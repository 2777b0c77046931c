//! `clearair-orchestrator`: the public API of the mesh as its own process.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clearair_runtime::launch::launch(
        "clearair-orchestrator",
        "CLEARAIR_ORCHESTRATOR",
        clearair_orchestrator::serve,
    )
    .await
}
