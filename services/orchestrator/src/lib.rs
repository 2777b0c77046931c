//! The orchestrator: the public `clearair.v1.ClearAir` API of the mesh.
//!
//! It decodes each upload once (validating format, dimensions and pixel budget before any
//! pixel is decoded), calls the quality, segmentation and degradation services **in parallel**
//! under the request's deadline, applies each prior's failure policy (a prior that falls back
//! is left out; the restorer fills in its neutral value), caches priors by the image's
//! content hash, calls the restoration service and encodes the result. A client that leaves
//! stops the work of its call.
//!
//! # Layout
//! - [`config`]: [`OrchestratorConfig`] (peers, policies, limits, cache).
//! - `clients`: traced clients of the four model services.
//! - `priors`: the parallel fan-out, response checks and fallback policy.
//! - `cache`: the byte-bounded LRU prior cache.
//! - `pipeline`: `Pipeline` runs a request end to end — decode → priors → restore →
//!   encode, timed — for Restore and RestoreStream; output options parsed once.
//! - `handler`: Restore and Analyze; `stream`: RestoreStream.
//! - `summary`: the priors' summary clients see.
//! - `page`: the restore page (`web/`) served with gRPC-Web by the web front.
//! - `error`: errors and their gRPC status codes: the client's faults INVALID_ARGUMENT, ours
//!   INTERNAL (source chain logged), a client that left CANCELLED.

mod cache;
mod clients;
pub mod config;
mod error;
mod handler;
mod page;
mod pipeline;
mod priors;
mod stream;
mod summary;

use std::{future::Future, sync::Arc};

use clearair_proto::v1::{PriorKind, clear_air_server::ClearAirServer};
use clearair_runtime::{configure_grpc, server::GrpcServer, web::WebFront};
use tokio::net::TcpListener;

pub use config::OrchestratorConfig;
pub use error::OrchestratorError;

/// Serves `clearair.v1.ClearAir` on `listener` until `shutdown` resolves. Peers are connected
/// lazily, so the orchestrator may start before them; it reports SERVING at once, and calls
/// made while a peer is down follow the prior's failure policy.
pub async fn serve(
    config: OrchestratorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OrchestratorError> {
    serve_with_web(config, listener, None, shutdown).await
}

/// [`serve`], and the web front — the restore page and gRPC-Web — on `web` (bound to
/// `config.web.listen` by the caller) when given.
pub async fn serve_with_web(
    config: OrchestratorConfig,
    listener: TcpListener,
    web: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OrchestratorError> {
    let mut server = GrpcServer::new("orchestrator", config.server.clone()).await?;
    let server_config = config.server.clone();
    let config_web = config.web.clone();
    let pipeline = Arc::new(pipeline::Pipeline::new(config)?);
    for kind in [
        PriorKind::Quality,
        PriorKind::Segmentation,
        PriorKind::Degradation,
    ] {
        clearair_runtime::metrics::global().expect_fallbacks(priors::prior_name(kind));
    }
    server
        .add_service(configure_grpc!(
            ClearAirServer::new(handler::ClearAirHandler::new(pipeline)),
            &server_config
        ))
        .await;
    if let Some(web) = web {
        server.with_web(WebFront::new(web, config_web, page::ASSETS)?)?;
    }
    server.readiness().set_serving().await;
    server.serve(listener, shutdown).await?;
    Ok(())
}
