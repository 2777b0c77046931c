//! Prometheus metrics shared by every service in the process, and the `/metrics` endpoint.
//!
//! One registry per process, with a `service` label, so `clearair up` (five servers in one
//! process) exposes one coherent page and a Kubernetes HPA can scale each model on its own
//! `clearair_in_flight` / `clearair_queue_depth`.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::{RuntimeError, body::BodyOutcome};

/// The process-wide metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGaugeVec,
    queue_depth: IntGaugeVec,
    model_time: HistogramVec,
    batch_size: HistogramVec,
    batch_queue: HistogramVec,
    fallbacks: IntCounterVec,
}

/// Latency buckets from 1 ms to ~65 s: CPU restoration of a photo takes seconds.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 17).expect("valid buckets")
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "clearair_requests_total",
                "gRPC requests by method and status code",
            ),
            &["service", "method", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "clearair_request_duration_seconds",
                "Time from request to the end of the response",
            )
            .buckets(latency_buckets()),
            &["service", "method"],
        )
        .expect("valid metric");
        let in_flight = IntGaugeVec::new(
            Opts::new("clearair_in_flight", "Requests being processed now"),
            &["service"],
        )
        .expect("valid metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "clearair_queue_depth",
                "Requests waiting for a processing slot",
            ),
            &["service"],
        )
        .expect("valid metric");
        let model_time = HistogramVec::new(
            HistogramOpts::new("clearair_model_duration_seconds", "Time spent in the model")
                .buckets(latency_buckets()),
            &["service"],
        )
        .expect("valid metric");
        let batch_size = HistogramVec::new(
            HistogramOpts::new("clearair_batch_size", "Images per model invocation")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
            &["service"],
        )
        .expect("valid metric");
        let batch_queue = HistogramVec::new(
            HistogramOpts::new(
                "clearair_batch_queue_seconds",
                "Time a request waited for its batch to start",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
            &["service"],
        )
        .expect("valid metric");
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "clearair_prior_fallbacks_total",
                "Priors replaced by a neutral prior",
            ),
            &["prior"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_depth.clone()),
            Box::new(model_time.clone()),
            Box::new(batch_size.clone()),
            Box::new(batch_queue.clone()),
            Box::new(fallbacks.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Self {
            registry,
            requests,
            latency,
            in_flight,
            queue_depth,
            model_time,
            batch_size,
            batch_queue,
            fallbacks,
        }
    }

    /// The metric handles of one service.
    pub fn service(&'static self, service: &str) -> ServiceMetrics {
        ServiceMetrics {
            metrics: self,
            service: service.to_owned(),
        }
    }

    /// Counts a prior replaced by its neutral fallback.
    pub fn record_fallback(&self, prior: &str) {
        self.fallbacks.with_label_values(&[prior]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("Prometheus text is UTF-8")
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Metric handles bound to one service's label.
#[derive(Clone, Debug)]
pub struct ServiceMetrics {
    metrics: &'static Metrics,
    service: String,
}

impl ServiceMetrics {
    /// The service label.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Records one model invocation over `batch` images.
    pub fn observe_model(&self, elapsed: Duration, batch: usize) {
        let labels = [self.service.as_str()];
        self.metrics
            .model_time
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        self.metrics
            .batch_size
            .with_label_values(&labels)
            .observe(batch as f64);
    }

    /// Records how long one request waited for its batch to start.
    pub fn observe_batch_queue(&self, waited: Duration) {
        self.metrics
            .batch_queue
            .with_label_values(&[self.service.as_str()])
            .observe(waited.as_secs_f64());
    }

    /// Sets the in-flight gauge.
    pub fn set_in_flight(&self, value: usize) {
        self.metrics
            .in_flight
            .with_label_values(&[self.service.as_str()])
            .set(value as i64);
    }

    /// Sets the queue-depth gauge.
    pub fn set_queue_depth(&self, value: usize) {
        self.metrics
            .queue_depth
            .with_label_values(&[self.service.as_str()])
            .set(value as i64);
    }

    fn record_request(&self, method: &str, code: tonic::Code, elapsed: Duration) {
        self.metrics
            .requests
            .with_label_values(&[self.service.as_str(), method, code_name(code)])
            .inc();
        self.metrics
            .latency
            .with_label_values(&[self.service.as_str(), method])
            .observe(elapsed.as_secs_f64());
    }
}

/// A batcher's reports become the service's model-time, batch-size and batch-wait metrics.
impl clearair_batch::BatchObserver for ServiceMetrics {
    fn queue_waited(&self, waited: Duration) {
        self.observe_batch_queue(waited);
    }

    fn batch_ran(&self, elapsed: Duration, size: usize) {
        self.observe_model(elapsed, size);
    }
}

/// The canonical upper-case name of a status code, as gRPC dashboards show it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` (any path, in fact) on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                let body = global().render();
                Ok::<_, Infallible>(
                    hyper::Response::builder()
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(body)))
                        .expect("static response parts"),
                )
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
}

/// Binds `addr` and serves metrics in the background; returns the bound address.
pub async fn spawn_metrics_endpoint(
    addr: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, RuntimeError> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = serve_metrics(listener, shutdown).await {
            tracing::error!(%error, "metrics endpoint failed");
        }
    });
    Ok(local)
}

/// Tower layer that counts requests by method and status code and times them.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: ServiceMetrics,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: ServiceMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Service produced by [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: ServiceMetrics,
}

impl<S, B> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            // Errors come as trailers-only responses (grpc-status in the headers); successes and
            // mid-stream failures carry grpc-status in the trailers at the end of the body.
            if let Some(status) = tonic::Status::from_header_map(response.headers()) {
                metrics.record_request(&method, status.code(), started.elapsed());
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(crate::body::OnBodyEnd::new(body, move |outcome| {
                    let code = match outcome {
                        BodyOutcome::Trailers(trailers) => tonic::Status::from_header_map(trailers)
                            .map_or(tonic::Code::Ok, |s| s.code()),
                        BodyOutcome::Finished => tonic::Code::Ok,
                        BodyOutcome::Abandoned => tonic::Code::Cancelled,
                    };
                    metrics.record_request(&method, code, started.elapsed());
                }))
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_service_labelled_families() {
        let metrics = global().service("metrics-test");
        metrics.observe_model(Duration::from_millis(12), 1);
        metrics.set_queue_depth(3);
        metrics.record_request(
            "/x.Y/Z",
            tonic::Code::ResourceExhausted,
            Duration::from_millis(1),
        );
        let page = global().render();
        assert!(
            page.contains("clearair_queue_depth{service=\"metrics-test\"} 3"),
            "{page}"
        );
        assert!(page.contains(
            "clearair_requests_total{code=\"RESOURCE_EXHAUSTED\",method=\"/x.Y/Z\",service=\"metrics-test\"} 1"
        ), "{page}");
        assert!(page.contains("clearair_model_duration_seconds_count{service=\"metrics-test\"} 1"));
    }

    #[test]
    fn a_batchers_reports_land_in_the_batch_families() {
        let observer: std::sync::Arc<dyn clearair_batch::BatchObserver> =
            std::sync::Arc::new(global().service("batch-test"));
        observer.queue_waited(Duration::from_millis(2));
        observer.batch_ran(Duration::from_millis(9), 3);
        let page = global().render();
        for (family, value) in [
            ("clearair_batch_queue_seconds_count", " 1"),
            ("clearair_batch_size_count", " 1"),
            ("clearair_batch_size_sum", " 3"),
            ("clearair_model_duration_seconds_count", " 1"),
        ] {
            let line = page
                .lines()
                .find(|l| l.starts_with(family) && l.contains("service=\"batch-test\""))
                .unwrap_or_else(|| panic!("{family} for batch-test missing"));
            assert!(line.ends_with(value), "{line}");
        }
    }
}
