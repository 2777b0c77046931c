//! The quality service: the global quality prior `F_q` and a 1..5 score for one image.
//!
//! The embedded backend is BRISQUE (36 natural-scene-statistics features and the published
//! SVR); DeQA-Score over TorchScript (`backend = "torchscript"`, `F_q` 4096 wide) implements
//! the same [`QualityBackend`] trait on GPUs.
//!
//! # Layout
//! - [`config`]: [`QualityConfig`], layered from defaults, file and `CLEARAIR_QUALITY__…`.
//! - [`backend`]: the [`QualityBackend`] trait and the BRISQUE backend.
//! - [`torchscript`]: DeQA-Score exported by `deploy/export/deqa_export.py`, mPLUG-Owl2's
//!   preprocessing in Rust, dynamic batching.
//! - `handler`: `clearair.v1.QualityService/Assess`.
//! - `error`: the service's errors and their gRPC status codes.

pub mod backend;
pub mod config;
mod error;
mod handler;
pub mod torchscript;

use std::future::Future;

use clearair_proto::v1::quality_service_server::QualityServiceServer;
use clearair_runtime::{configure_grpc, model::serve_model_service};
use tokio::net::TcpListener;

pub use backend::{QualityBackend, QualityEstimate};
pub use config::QualityConfig;
pub use error::QualityError;

/// Serves `clearair.v1.QualityService` on `listener` until `shutdown` resolves. Health reports
/// NOT_SERVING until the backend is loaded and has assessed a warm-up image.
pub async fn serve(
    config: QualityConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QualityError> {
    let server_config = config.server.clone();
    let model_config = config.clone();
    let build = |slot, metrics| {
        configure_grpc!(
            QualityServiceServer::new(handler::QualityHandler::new(slot, metrics, &config)),
            &config.server
        )
    };
    serve_model_service(
        "quality",
        server_config,
        listener,
        shutdown,
        build,
        move || {
            let backend = backend::load(&model_config)?;
            backend::warm_up(backend.as_ref())?;
            Ok::<Box<dyn QualityBackend>, _>(backend)
        },
    )
    .await
}
