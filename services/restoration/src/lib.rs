//! The restoration service: the ClearAIR network restores an image given its three priors.
//!
//! Every prior is validated (widths, finiteness, mask geometry, the backend it came from)
//! before any model work, and an absent one takes the restorer's neutral value
//! (`clearair_backends::restoration::neutral`), so the image alone is a valid request; large
//! images are restored in overlapping, feathered tiles
//! (`clearair_backends::restoration::restore_in_tiles`) so memory stays bounded. The weights' manifest must name the prior backends the mesh runs, or the
//! service refuses to start and says what differs.
//!
//! # Layout
//! - [`config`]: [`RestorationConfig`], layered from defaults, file and
//!   `CLEARAIR_RESTORATION__…`.
//! - [`restorer`]: loading, the manifest check, and the network shared by every request.
//! - `handler`: `clearair.v1.RestorationService/Restore` and request validation.
//! - `error`: the service's errors and their gRPC status codes.

pub mod config;
mod error;
mod handler;
pub mod restorer;

use std::future::Future;

use clearair_proto::v1::restoration_service_server::RestorationServiceServer;
use clearair_runtime::{configure_grpc, model::serve_model_service};
use tokio::net::TcpListener;

pub use config::RestorationConfig;
pub use error::RestorationError;
pub use restorer::Restorer;

/// Serves `clearair.v1.RestorationService` on `listener` until `shutdown` resolves. Health
/// reports NOT_SERVING until the network is loaded, checked and warm.
pub async fn serve(
    config: RestorationConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RestorationError> {
    let server_config = config.server.clone();
    let model_config = config.clone();
    let build = |slot, metrics| {
        configure_grpc!(
            RestorationServiceServer::new(handler::RestorationHandler::new(slot, metrics, &config)),
            &config.server
        )
    };
    serve_model_service(
        "restoration",
        server_config,
        listener,
        shutdown,
        build,
        move || {
            let restorer = Restorer::load(&model_config)?;
            restorer::warm_up(&restorer)?;
            Ok(restorer)
        },
    )
    .await
}
