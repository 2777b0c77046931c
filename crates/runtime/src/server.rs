//! The standard server shape: one [`GrpcServer`] per service process (or per service inside
//! `clearair up`), serving on a listener the caller binds.
//!
//! The tower stack, outermost first — each layer sees everything the ones below it produce:
//! 1. [`TraceContextLayer`]: the request span, parented on the caller's W3C trace context, so
//!    everything below is traced.
//! 2. [`MetricsLayer`]: requests by status code and latency, including shed and timed-out calls.
//! 3. [`DeadlineLayer`]: `grpc-timeout` (capped by `request_timeout_ms`) → DEADLINE_EXCEEDED.
//! 4. per added service only, [`BearerAuthLayer`] when `[server.auth]` sets a token:
//!    UNAUTHENTICATED before the call can take an admission slot.
//! 5. per added service only, [`AdmissionLayer`]: concurrency limit + bounded queue → load
//!    shedding with RESOURCE_EXHAUSTED. Health and reflection bypass 4 and 5, so probes never
//!    queue and need no token.
//!
//! With `[server.tls]` enabled the listener speaks TLS (rustls); with a `client_ca` it refuses
//! clients without a certificate that CA signed.

use std::{convert::Infallible, future::Future, pin::Pin, time::Duration};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{body::Body, server::NamedService, service::RoutesBuilder, transport::Server};
use tonic_health::{
    ServingStatus,
    server::{HealthReporter, HealthService},
};
use tower::{Layer, Service};

use crate::{
    RuntimeError,
    admission::AdmissionLayer,
    auth::BearerAuthLayer,
    config::ServerConfig,
    deadline::DeadlineLayer,
    metrics::{self, MetricsLayer, ServiceMetrics},
    propagation::TraceContextLayer,
    tls::ReloadingServerTls,
    web::WebFront,
};

/// Applies the mesh's message limits and compression to a generated tonic server.
///
/// ```ignore
/// let svc = clearair_runtime::configure_grpc!(QualityServiceServer::new(handler), &config.server);
/// ```
#[macro_export]
macro_rules! configure_grpc {
    ($server:expr, $config:expr) => {{
        let config: &$crate::config::ServerConfig = $config;
        $server
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes)
            .accept_compressed(::tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(::tonic::codec::CompressionEncoding::Zstd)
            .send_compressed(::tonic::codec::CompressionEncoding::Zstd)
            .send_compressed(::tonic::codec::CompressionEncoding::Gzip)
    }};
}

/// HTTP/2 receive window of each stream: 1 MiB, so an image streams in without a round trip per
/// 64 KiB.
const STREAM_WINDOW: u32 = 1 << 20;

/// HTTP/2 receive window of a connection, sized for every stream that may sit in the service
/// at once. A request waiting in the admission queue has sent its headers but not had its
/// body read, and its unread data holds connection-level credit: were the connection window
/// smaller than the queue's share, the queued requests could take all of it, the requests
/// holding the slots could never receive the rest of their bodies, and the service would stall
/// with an idle CPU. Each stream holds at most [`STREAM_WINDOW`] unread, so room for all the
/// slots, the queue and a few refused-but-not-yet-dropped streams rules that out.
fn connection_window(max_concurrency: usize, max_queue: usize) -> u32 {
    let streams = (max_concurrency.max(1) + max_queue + 4) as u64;
    // h2 caps a window at 2^31 − 1.
    (streams * u64::from(STREAM_WINDOW)).min((1 << 31) - 1) as u32
}

/// Marks a server's services SERVING once their models are loaded and warm, and NOT_SERVING
/// while draining.
#[derive(Clone, Debug)]
pub struct Readiness {
    reporter: HealthReporter,
    names: Vec<&'static str>,
}

impl Readiness {
    async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for name in &self.names {
            self.reporter.set_service_status(*name, status).await;
        }
    }

    /// Reports every service of the server, and the server as a whole, as SERVING.
    pub async fn set_serving(&self) {
        self.set(ServingStatus::Serving).await;
    }

    /// Reports every service of the server, and the server as a whole, as NOT_SERVING.
    pub async fn set_not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }
}

/// A gRPC server under construction: add services, then [`GrpcServer::serve`].
#[derive(Debug)]
pub struct GrpcServer {
    service: &'static str,
    config: ServerConfig,
    reporter: HealthReporter,
    names: Vec<&'static str>,
    routes: RoutesBuilder,
    admission: AdmissionLayer,
    auth: BearerAuthLayer,
    tls: Option<ReloadingServerTls>,
    metrics: ServiceMetrics,
    web: Option<WebFront>,
}

impl GrpcServer {
    /// A server for the service labelled `service` in logs and metrics; reports NOT_SERVING
    /// until [`Readiness::set_serving`]. Reads the TLS files and the bearer token now, so a
    /// wrong path stops the service at start-up.
    pub async fn new(service: &'static str, config: ServerConfig) -> Result<Self, RuntimeError> {
        config.validate()?;
        let tls = config.tls.reloading(service)?;
        let auth = BearerAuthLayer::new(config.auth.token()?);
        if tls.is_some() || auth.is_enabled() {
            tracing::info!(
                service,
                tls = tls.is_some(),
                mutual_tls = config.tls.is_mutual(),
                bearer_token = auth.is_enabled(),
                "transport security"
            );
        }
        let reporter = HealthReporter::new();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let metrics = metrics::global().service(service);
        let admission =
            AdmissionLayer::new(config.max_concurrency, config.max_queue, metrics.clone());
        Ok(Self {
            service,
            config,
            reporter,
            names: Vec::new(),
            routes: RoutesBuilder::default(),
            admission,
            auth,
            tls,
            metrics,
            web: None,
        })
    }

    /// Also serves the added services over gRPC-Web, and the page, on `front`'s listener —
    /// with TLS when `[server.tls]` is on, behind the same layers and admission slots.
    pub fn with_web(&mut self, front: WebFront) -> Result<&mut Self, RuntimeError> {
        tracing::info!(
            service = self.service,
            addr = %front.listener.local_addr()?,
            page = front.config.page,
            tls = self.tls.is_some(),
            "web front (page and gRPC-Web)"
        );
        self.web = Some(front);
        Ok(self)
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The service's metric handles (model time, batch size).
    pub fn metrics(&self) -> ServiceMetrics {
        self.metrics.clone()
    }

    /// Adds a generated gRPC service behind the bearer-token check (when configured) and
    /// admission control; it reports NOT_SERVING until the server's [`Readiness`] says
    /// otherwise.
    pub async fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.reporter
            .set_service_status(S::NAME, ServingStatus::NotServing)
            .await;
        self.names.push(S::NAME);
        self.routes
            .add_service(self.auth.layer(self.admission.layer(service)));
        self
    }

    /// The handle that flips health to SERVING after warm-up.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            reporter: self.reporter.clone(),
            names: self.names.clone(),
        }
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING, stops accepting and drains
    /// in-flight calls for at most `drain_timeout_ms`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(clearair_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(clearair_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let readiness = self.readiness();
        let health = tonic_health::pb::health_server::HealthServer::new(
            HealthService::from_health_reporter(self.reporter),
        );
        let layers = tower::ServiceBuilder::new()
            .layer(TraceContextLayer::new(self.service))
            .layer(MetricsLayer::new(self.metrics))
            .layer(DeadlineLayer::new(self.config.request_timeout()));
        let routes = self.routes.routes();
        let web = self.web.map(|front| {
            let grpc = tower::util::BoxCloneSyncService::new(layers.service(routes.clone()));
            (front, self.tls.clone(), grpc)
        });
        let mut builder = Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(connection_window(
                self.config.max_concurrency,
                self.config.max_queue,
            ));
        if self.config.max_connection_age_ms > 0 {
            // GOAWAY at that age; calls in flight finish (each is capped by the request
            // timeout). No `max_connection_age_grace`: tonic would then skip the GOAWAY and
            // cut the connection at age + grace instead.
            builder = builder
                .max_connection_age(Duration::from_millis(self.config.max_connection_age_ms));
        }
        let router = builder
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(layers)
            .add_routes(routes)
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let (drain_started, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let (web_stop, mut web_stopped) = tokio::sync::watch::channel(false);
        let service = self.service;
        let signal = async move {
            shutdown.await;
            tracing::info!(
                service,
                "shutting down: NOT_SERVING, draining in-flight calls"
            );
            readiness.set_not_serving().await;
            let _ = web_stop.send(true);
            let _ = drain_started.send(());
        };
        let web = web.map(|(front, tls, grpc)| {
            tokio::spawn(crate::web::serve(front, grpc, tls, service, async move {
                let _ = web_stopped.wait_for(|stop| *stop).await;
            }))
        });
        let drain = Duration::from_millis(self.config.drain_timeout_ms);
        let mut serving: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
            match self.tls {
                Some(tls) => {
                    tls.watch();
                    let incoming = crate::tls::incoming(listener, tls, service);
                    Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
                }
                None => Box::pin(
                    router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal),
                ),
            };
        tokio::select! {
            result = &mut serving => result?,
            () = async {
                if drain_rx.await.is_ok() {
                    tokio::time::sleep(drain).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(service, ?drain, "drain timeout reached with calls still in flight");
            }
        }
        if let Some(web) = web {
            // The gRPC side has drained; browser calls get what is left of the drain time.
            match tokio::time::timeout(drain, web).await {
                Ok(Ok(result)) => result?,
                Ok(Err(source)) => {
                    return Err(RuntimeError::Task {
                        task: "the web front".to_owned(),
                        source,
                    });
                }
                Err(_) => {
                    tracing::warn!(service, ?drain, "web calls still open at the drain timeout")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_connection_window_covers_every_admitted_and_queued_stream() {
        let window = u64::from(super::connection_window(2, 16));
        assert!(window >= 18 * u64::from(super::STREAM_WINDOW));
        assert_eq!(
            super::connection_window(64, 10_000),
            (1 << 31) - 1,
            "h2's cap"
        );
    }
}
