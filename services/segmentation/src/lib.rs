//! The segmentation service: at most 16 region masks per image, bit-packed, with a score
//! each, over gRPC.
//!
//! The backends live in `clearair_backends::segmentation`: Felzenszwalb–Huttenlocher graph
//! segmentation merged to ≤ 16 regions by default, SAM2 over TorchScript
//! (`backend = "torchscript"`) with automatic mask generation written in Rust on GPUs. This
//! crate is the handler, the config and `serve`.
//!
//! # Layout
//! - [`config`]: [`SegmentationConfig`], layered from defaults, file and
//!   `CLEARAIR_SEGMENTATION__…`; it builds the backend's config.
//! - `handler`: `clearair.v1.SegmentationService/Segment`.
//! - `error`: the service's errors and their gRPC status codes (a backend error's by its
//!   fault).

pub mod config;
mod error;
mod handler;

use std::{future::Future, sync::Arc};

use clearair_backends::{
    batch::BatchObserver,
    segmentation::{self, SegmentationBackend},
};
use clearair_proto::v1::segmentation_service_server::SegmentationServiceServer;
use clearair_runtime::{configure_grpc, model::serve_model_service};
use tokio::net::TcpListener;

pub use config::SegmentationConfig;
pub use error::SegmentationError;

/// Serves `clearair.v1.SegmentationService` on `listener` until `shutdown` resolves. Health
/// reports NOT_SERVING until the backend has segmented a warm-up image.
pub async fn serve(
    config: SegmentationConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SegmentationError> {
    if config.backend == clearair_backends::segmentation::SegmentationBackendKind::Torchscript {
        config
            .batching
            .check_admission("batching", config.server.max_concurrency)
            .map_err(clearair_runtime::RuntimeError::InvalidConfig)?;
    }
    let server_config = config.server.clone();
    let model_config = config.clone();
    let build = |slot, metrics| {
        configure_grpc!(
            SegmentationServiceServer::new(handler::SegmentationHandler::new(
                slot, metrics, &config
            )),
            &config.server
        )
    };
    serve_model_service(
        "segmentation",
        server_config,
        listener,
        shutdown,
        build,
        move || {
            let metrics: Arc<dyn BatchObserver> =
                Arc::new(clearair_runtime::metrics::global().service("segmentation"));
            let backend = segmentation::load(&model_config.backend_config(), Some(metrics))?;
            segmentation::warm_up(backend.as_ref())?;
            Ok::<Box<dyn SegmentationBackend>, SegmentationError>(backend)
        },
    )
    .await
}
