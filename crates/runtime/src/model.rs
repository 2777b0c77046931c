//! Models load after the server is up (so health answers NOT_SERVING meanwhile) and run off
//! the async runtime.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
};

use tokio::net::TcpListener;
use tonic::Status;

use crate::{RuntimeError, server::GrpcServer};

/// A model that is loaded in the background; requests before that get UNAVAILABLE.
#[derive(Debug)]
pub struct ModelSlot<M> {
    cell: Arc<OnceLock<Arc<M>>>,
    name: &'static str,
}

impl<M> Clone for ModelSlot<M> {
    fn clone(&self) -> Self {
        Self {
            cell: self.cell.clone(),
            name: self.name,
        }
    }
}

impl<M> ModelSlot<M> {
    /// An empty slot for the model called `name` in error messages.
    pub fn new(name: &'static str) -> Self {
        Self {
            cell: Arc::new(OnceLock::new()),
            name,
        }
    }

    /// The loaded model, or UNAVAILABLE while it is still loading.
    pub fn get(&self) -> Result<Arc<M>, Status> {
        self.cell.get().cloned().ok_or_else(|| {
            Status::unavailable(format!(
                "the {} model is still loading; retry shortly",
                self.name
            ))
        })
    }

    /// Whether the model is loaded.
    pub fn is_loaded(&self) -> bool {
        self.cell.get().is_some()
    }

    fn fill(&self, model: M) {
        // Only `serve_loading` fills a slot, once.
        let _ = self.cell.set(Arc::new(model));
    }
}

/// Runs `work` on the blocking thread pool (forward passes must not stall the async runtime).
pub async fn blocking<T, F>(work: F) -> Result<T, Status>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("model task failed: {e}")))
}

/// Serves `server` while `load` (model loading and warm-up) runs on a blocking thread. On
/// success the model goes into `slot` and health flips to SERVING; on failure the server stops
/// and the load error is returned, so a bad model file stops the process with its reason.
pub async fn serve_loading<M, E, L>(
    server: GrpcServer,
    slot: ModelSlot<M>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    load: L,
) -> Result<(), E>
where
    M: Send + Sync + 'static,
    E: From<RuntimeError> + Send + 'static,
    L: FnOnce() -> Result<M, E> + Send + 'static,
{
    let readiness = server.readiness();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            Ok(()) = stopped => {}
        }
    };
    let serving = tokio::spawn(server.serve(listener, shutdown));
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(load).await;
    match loaded {
        Ok(Ok(model)) => {
            slot.fill(model);
            readiness.set_serving().await;
            tracing::info!(
                model = slot.name,
                seconds = started.elapsed().as_secs_f32(),
                "model loaded and warm; SERVING"
            );
            // Keep `stop` alive: dropping it would end the server.
            let _stop = stop;
            serving
                .await
                .map_err(|source| {
                    E::from(RuntimeError::Task {
                        task: "the server task".to_owned(),
                        source,
                    })
                })?
                .map_err(E::from)
        }
        Ok(Err(error)) => {
            let _ = stop.send(());
            let _ = serving.await;
            Err(error)
        }
        Err(join) => {
            let _ = stop.send(());
            let _ = serving.await;
            Err(E::from(RuntimeError::Task {
                task: format!("loading the {} model", slot.name),
                source: join,
            }))
        }
    }
}

/// Everything a model service's `serve` does: a [`GrpcServer`] named `service`, the gRPC
/// service `build` makes around the (not yet loaded) model, and [`serve_loading`] with `load`.
pub async fn serve_model_service<M, S, E, B, L>(
    service: &'static str,
    config: crate::config::ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    build: B,
    load: L,
) -> Result<(), E>
where
    M: Send + Sync + 'static,
    E: From<RuntimeError> + Send + 'static,
    B: FnOnce(ModelSlot<M>, crate::metrics::ServiceMetrics) -> S,
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    L: FnOnce() -> Result<M, E> + Send + 'static,
{
    let mut server = GrpcServer::new(service, config).await?;
    let slot = ModelSlot::new(service);
    server
        .add_service(build(slot.clone(), server.metrics()))
        .await;
    serve_loading(server, slot, listener, shutdown, load).await
}
