//! The segmentation service: at most 16 region masks per image, bit-packed, with a score each.
//!
//! The embedded backend is Felzenszwalb–Huttenlocher graph segmentation merged to ≤ 16 regions;
//! SAM2 (`backend = "torchscript"`) with automatic mask generation written in Rust implements
//! the same [`SegmentationBackend`] on GPUs.
//!
//! # Layout
//! - [`config`]: [`SegmentationConfig`], layered from defaults, file and
//!   `CLEARAIR_SEGMENTATION__…`.
//! - [`backend`]: the [`SegmentationBackend`] trait and the graph backend.
//! - [`sam2`]: SAM2 over TorchScript and automatic mask generation.
//! - `handler`: `clearair.v1.SegmentationService/Segment`.
//! - `error`: the service's errors and their gRPC status codes.

pub mod backend;
pub mod config;
mod error;
mod handler;
pub mod sam2;

use std::future::Future;

use clearair_proto::v1::segmentation_service_server::SegmentationServiceServer;
use clearair_runtime::{configure_grpc, model::serve_model_service};
use tokio::net::TcpListener;

pub use backend::SegmentationBackend;
pub use config::SegmentationConfig;
pub use error::SegmentationError;

/// Serves `clearair.v1.SegmentationService` on `listener` until `shutdown` resolves. Health
/// reports NOT_SERVING until the backend has segmented a warm-up image.
pub async fn serve(
    config: SegmentationConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SegmentationError> {
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
            let backend = backend::load(&model_config)?;
            backend::warm_up(backend.as_ref())?;
            Ok::<Box<dyn SegmentationBackend>, _>(backend)
        },
    )
    .await
}
