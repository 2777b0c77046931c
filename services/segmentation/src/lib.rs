//! The segmentation service: at most 16 region masks per image, bit-packed, with a score each.
//!
//! The embedded backend is Felzenszwalb–Huttenlocher graph segmentation merged to ≤ 16 regions;
//! SAM2 with automatic mask generation implements the same [`SegmentationBackend`] on GPUs.
//!
//! # Layout
//! - [`config`]: [`SegmentationConfig`], layered from defaults, file and
//!   `CLEARAIR_SEGMENTATION__…`.
//! - [`backend`]: the [`SegmentationBackend`] trait and the graph backend.
//! - `handler`: `clearair.v1.SegmentationService/Segment`.
//! - `error`: the service's errors and their gRPC status codes.

pub mod backend;
pub mod config;
mod error;
mod handler;

use std::future::Future;

use clearair_proto::v1::segmentation_service_server::SegmentationServiceServer;
use clearair_runtime::{
    configure_grpc,
    model::{ModelSlot, serve_loading},
    server::GrpcServer,
};
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
    let mut server = GrpcServer::new("segmentation", config.server.clone()).await?;
    let slot = ModelSlot::<Box<dyn SegmentationBackend>>::new("segmentation");
    let handler = handler::SegmentationHandler::new(slot.clone(), server.metrics(), &config);
    server
        .add_service(configure_grpc!(
            SegmentationServiceServer::new(handler),
            &config.server
        ))
        .await;
    serve_loading(server, slot, listener, shutdown, move || {
        let backend = backend::load(&config)?;
        backend::warm_up(backend.as_ref())?;
        Ok(backend)
    })
    .await
}
