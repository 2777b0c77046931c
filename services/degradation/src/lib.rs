//! The degradation service: content and degradation embeddings (`F_c`, `F_d`, 512 floats
//! each) and a probability per degradation kind for one image.
//!
//! The embedded backend is a compact encoder trained here on synthetic degradations of real
//! photos; DA-CLIP over TorchScript (`backend = "torchscript"`) implements the same
//! [`DegradationBackend`] on GPUs.
//!
//! # Layout
//! - [`config`]: [`DegradationConfig`], layered from defaults, file and
//!   `CLEARAIR_DEGRADATION__…`.
//! - [`backend`]: the [`DegradationBackend`] trait and the encoder backend.
//! - [`torchscript`]: DA-CLIP exported by `deploy/export/daclip.py`, CLIP preprocessing in
//!   Rust, dynamic batching.
//! - `handler`: `clearair.v1.DegradationService/Embed`.
//! - `error`: the service's errors and their gRPC status codes.

pub mod backend;
pub mod config;
mod error;
mod handler;
pub mod torchscript;

use std::future::Future;

use clearair_proto::v1::degradation_service_server::DegradationServiceServer;
use clearair_runtime::{configure_grpc, model::serve_model_service};
use tokio::net::TcpListener;

pub use backend::{DegradationBackend, DegradationEstimate};
pub use config::DegradationConfig;
pub use error::DegradationError;

/// Serves `clearair.v1.DegradationService` on `listener` until `shutdown` resolves. Health
/// reports NOT_SERVING until the encoder is loaded and has embedded a warm-up image.
pub async fn serve(
    config: DegradationConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DegradationError> {
    let server_config = config.server.clone();
    let model_config = config.clone();
    let build = |slot, metrics| {
        configure_grpc!(
            DegradationServiceServer::new(handler::DegradationHandler::new(slot, metrics, &config)),
            &config.server
        )
    };
    serve_model_service(
        "degradation",
        server_config,
        listener,
        shutdown,
        build,
        move || {
            let backend = backend::load(&model_config)?;
            backend::warm_up(backend.as_ref())?;
            Ok::<Box<dyn DegradationBackend>, _>(backend)
        },
    )
    .await
}
