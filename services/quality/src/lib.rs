//! The quality service: the global quality prior `F_q` and a 1..5 score for one image, over
//! gRPC.
//!
//! The backends live in `clearair_backends::quality`: BRISQUE by default (36
//! natural-scene-statistics features and the published SVR), DeQA-Score over TorchScript
//! (`backend = "torchscript"`, `F_q` 4096 wide, batched) on GPUs. This crate is the handler,
//! the config and `serve`.
//!
//! # Layout
//! - [`config`]: [`QualityConfig`], layered from defaults, file and `CLEARAIR_QUALITY__…`;
//!   it builds the backend's config.
//! - `handler`: `clearair.v1.QualityService/Assess`.
//! - `error`: the service's errors and their gRPC status codes (a backend error's by its
//!   fault).

pub mod config;
mod error;
mod handler;

use std::{future::Future, sync::Arc};

use clearair_backends::{
    batch::BatchObserver,
    quality::{self, QualityBackend},
};
use clearair_proto::v1::quality_service_server::QualityServiceServer;
use clearair_runtime::{configure_grpc, model::serve_model_service};
use tokio::net::TcpListener;

pub use config::QualityConfig;
pub use error::QualityError;

/// Serves `clearair.v1.QualityService` on `listener` until `shutdown` resolves. Health reports
/// NOT_SERVING until the backend is loaded and has assessed a warm-up image.
pub async fn serve(
    config: QualityConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QualityError> {
    if config.backend == clearair_backends::quality::QualityBackendKind::Torchscript {
        config
            .batching
            .check_admission("batching", config.server.max_concurrency)
            .map_err(clearair_runtime::RuntimeError::InvalidConfig)?;
    }
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
            let metrics: Arc<dyn BatchObserver> =
                Arc::new(clearair_runtime::metrics::global().service("quality"));
            let backend = quality::load(&model_config.backend_config(), Some(metrics))?;
            quality::warm_up(backend.as_ref())?;
            Ok::<Box<dyn QualityBackend>, QualityError>(backend)
        },
    )
    .await
}
