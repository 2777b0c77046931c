//! The degradation service: content and degradation embeddings (`F_c`, `F_d`, 512 floats
//! each) and a probability per degradation kind for one image, over gRPC.
//!
//! The backends live in `clearair_backends::degradation`: a compact encoder trained here on
//! synthetic degradations of real photos by default, DA-CLIP over TorchScript
//! (`backend = "torchscript"`, batched) on GPUs. This crate is the handler, the config and
//! `serve`.
//!
//! # Layout
//! - [`config`]: [`DegradationConfig`], layered from defaults, file and
//!   `CLEARAIR_DEGRADATION__…`; it builds the backend's config.
//! - `handler`: `clearair.v1.DegradationService/Embed`.
//! - `error`: the service's errors and their gRPC status codes (a backend error's by its
//!   fault).

pub mod config;
mod error;
mod handler;

use std::{future::Future, sync::Arc};

use clearair_backends::{
    batch::BatchObserver,
    degradation::{self, DegradationBackend},
};
use clearair_proto::v1::degradation_service_server::DegradationServiceServer;
use clearair_runtime::{configure_grpc, model::serve_model_service};
use tokio::net::TcpListener;

pub use config::DegradationConfig;
pub use error::DegradationError;

/// Serves `clearair.v1.DegradationService` on `listener` until `shutdown` resolves. Health
/// reports NOT_SERVING until the encoder is loaded and has embedded a warm-up image.
pub async fn serve(
    config: DegradationConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DegradationError> {
    if config.backend == clearair_backends::degradation::DegradationBackendKind::Torchscript {
        config
            .batching
            .check_admission("batching", config.server.max_concurrency)
            .map_err(clearair_runtime::RuntimeError::InvalidConfig)?;
    }
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
            let metrics: Arc<dyn BatchObserver> =
                Arc::new(clearair_runtime::metrics::global().service("degradation"));
            let backend = degradation::load(&model_config.backend_config(), Some(metrics))?;
            degradation::warm_up(backend.as_ref())?;
            Ok::<Box<dyn DegradationBackend>, DegradationError>(backend)
        },
    )
    .await
}
