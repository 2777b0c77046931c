//! Prometheus metrics shared by every service in the process, and the `/metrics` endpoint.
//!
//! One registry per process, with a `service` label, so `clearair up` (five servers in one
//! process) exposes one coherent page and a Kubernetes HPA can scale each model on its own
//! load.
//!
//! The load worth scaling on is saturation, `(in flight + queued) / capacity` averaged over a
//! window: the gauges `clearair_in_flight` and `clearair_queue_depth` are instants (a queue
//! that drains between scrapes reads 0 at full load), so their time integrals are exported as
//! counters, `clearair_slot_busy_seconds_total` and `clearair_queue_wait_seconds_total`, kept
//! exact to the scrape: `rate()` of each is the average number in flight / queued over the
//! window, and `clearair_capacity` is what they are measured against.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Mutex, OnceLock, PoisonError},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
    capacity: IntGaugeVec,
    slot_busy: CounterVec,
    queue_wait: CounterVec,
    /// Per service: the in-flight and queued counts since their last change, integrated
    /// into `slot_busy` / `queue_wait` at every change and every scrape.
    occupancy: Mutex<HashMap<String, Occupancy>>,
    model_time: HistogramVec,
    batch_size: HistogramVec,
    batch_queue: HistogramVec,
    fallbacks: IntCounterVec,
    tls_reloads: IntCounterVec,
    peer_replicas: IntGaugeVec,
    peer_unreachable: IntCounterVec,
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
        let capacity = IntGaugeVec::new(
            Opts::new(
                "clearair_capacity",
                "Requests processed at once (max_concurrency): what saturation is measured against",
            ),
            &["service"],
        )
        .expect("valid metric");
        let slot_busy = CounterVec::new(
            Opts::new(
                "clearair_slot_busy_seconds_total",
                "Requests being processed, integrated over time: its rate is the average in flight",
            ),
            &["service"],
        )
        .expect("valid metric");
        let queue_wait = CounterVec::new(
            Opts::new(
                "clearair_queue_wait_seconds_total",
                "Requests waiting for a slot, integrated over time: its rate is the average queue",
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
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "clearair_tls_reloads_total",
                "Changed TLS files read again: applied (ok) or refused, the certificates in use \
                 kept (error)",
            ),
            &["side", "name", "result"],
        )
        .expect("valid metric");
        let peer_replicas = IntGaugeVec::new(
            Opts::new(
                "clearair_peer_replicas",
                "Replicas a peer's calls are spread over (its addresses as last resolved)",
            ),
            &["peer"],
        )
        .expect("valid metric");
        let peer_unreachable = IntCounterVec::new(
            Opts::new(
                "clearair_peer_unreachable_total",
                "Calls that could not connect to a replica and went to another (the replica \
                 passed over for a back-off)",
            ),
            &["peer"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_depth.clone()),
            Box::new(capacity.clone()),
            Box::new(slot_busy.clone()),
            Box::new(queue_wait.clone()),
            Box::new(model_time.clone()),
            Box::new(batch_size.clone()),
            Box::new(batch_queue.clone()),
            Box::new(fallbacks.clone()),
            Box::new(tls_reloads.clone()),
            Box::new(peer_replicas.clone()),
            Box::new(peer_unreachable.clone()),
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
            capacity,
            slot_busy,
            queue_wait,
            occupancy: Mutex::new(HashMap::new()),
            model_time,
            batch_size,
            batch_queue,
            fallbacks,
            tls_reloads,
            peer_replicas,
            peer_unreachable,
        }
    }

    /// Brings `service`'s occupancy integrals up to now, then applies `change` to its counts.
    fn occupancy_changes(&self, service: &str, change: impl FnOnce(&mut Occupancy)) {
        let mut all = self
            .occupancy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let occupancy = all
            .entry(service.to_owned())
            .or_insert_with(|| Occupancy::new(Instant::now()));
        self.integrate(service, occupancy, Instant::now());
        change(occupancy);
    }

    fn integrate(&self, service: &str, occupancy: &mut Occupancy, now: Instant) {
        let elapsed = now.saturating_duration_since(occupancy.since).as_secs_f64();
        occupancy.since = now;
        let labels = [service];
        self.slot_busy
            .with_label_values(&labels)
            .inc_by(occupancy.in_flight as f64 * elapsed);
        self.queue_wait
            .with_label_values(&labels)
            .inc_by(occupancy.queued as f64 * elapsed);
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

    /// Publishes `prior`'s fallback counter at 0, so dashboards and alerts see the series
    /// before the first fallback.
    pub fn expect_fallbacks(&self, prior: &str) {
        self.fallbacks.with_label_values(&[prior]);
    }

    /// Counts a reload of changed TLS files by `side` (`server` or `client`) `name`.
    pub fn record_tls_reload(&self, side: &str, name: &str, applied: bool) {
        let result = if applied { "ok" } else { "error" };
        self.tls_reloads
            .with_label_values(&[side, name, result])
            .inc();
    }

    /// Publishes the reload counters of `side` `name` at 0, so an alert on errors has a series
    /// from the start.
    pub fn expect_tls_reloads(&self, side: &str, name: &str) {
        for result in ["ok", "error"] {
            self.tls_reloads.with_label_values(&[side, name, result]);
        }
    }

    /// Sets how many replicas `peer`'s calls are spread over; publishes its unreachable
    /// counter at 0 too.
    pub fn set_peer_replicas(&self, peer: &str, replicas: usize) {
        self.peer_replicas
            .with_label_values(&[peer])
            .set(i64::try_from(replicas).unwrap_or(i64::MAX));
        self.peer_unreachable.with_label_values(&[peer]);
    }

    /// Counts a call that could not connect to one of `peer`'s replicas.
    pub fn record_peer_unreachable(&self, peer: &str) {
        self.peer_unreachable.with_label_values(&[peer]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        {
            let now = Instant::now();
            let mut all = self
                .occupancy
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (service, occupancy) in all.iter_mut() {
                self.integrate(service, occupancy, now);
            }
        }
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("Prometheus text is UTF-8")
    }
}

/// One service's requests in flight and queued, and since when they have been so.
#[derive(Debug)]
struct Occupancy {
    since: Instant,
    in_flight: usize,
    queued: usize,
}

impl Occupancy {
    fn new(since: Instant) -> Self {
        Self {
            since,
            in_flight: 0,
            queued: 0,
        }
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

    /// Sets the in-flight gauge (and integrates the previous count over its time).
    pub fn set_in_flight(&self, value: usize) {
        self.metrics
            .occupancy_changes(&self.service, |o| o.in_flight = value);
        self.metrics
            .in_flight
            .with_label_values(&[self.service.as_str()])
            .set(value as i64);
    }

    /// Sets the queue-depth gauge (and integrates the previous depth over its time).
    pub fn set_queue_depth(&self, value: usize) {
        self.metrics
            .occupancy_changes(&self.service, |o| o.queued = value);
        self.metrics
            .queue_depth
            .with_label_values(&[self.service.as_str()])
            .set(value as i64);
    }

    /// Sets the capacity gauge: requests processed at once.
    pub fn set_capacity(&self, value: usize) {
        self.metrics
            .capacity
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

    /// The value of `family{service="<service>"}` on `page`.
    fn sample(page: &str, family: &str, service: &str) -> f64 {
        let prefix = format!("{family}{{service=\"{service}\"}} ");
        page.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {page}"))
            .parse()
            .expect("a number")
    }

    #[test]
    fn occupancy_is_integrated_up_to_the_scrape_and_stops_when_idle() {
        let service = "occupancy-test";
        let metrics = global().service(service);
        metrics.set_capacity(4);
        metrics.set_in_flight(2);
        metrics.set_queue_depth(1);
        std::thread::sleep(Duration::from_millis(200));
        let page = global().render();
        assert_eq!(sample(&page, "clearair_capacity", service), 4.0);
        let busy = sample(&page, "clearair_slot_busy_seconds_total", service);
        let queued = sample(&page, "clearair_queue_wait_seconds_total", service);
        assert!(busy >= 0.4, "two in flight for 0.2 s at least: {busy}");
        assert!(queued >= 0.2, "one queued for 0.2 s at least: {queued}");
        assert!(
            busy >= 2.0 * queued,
            "twice as many in flight as queued: {busy} {queued}"
        );

        metrics.set_queue_depth(0);
        metrics.set_in_flight(0);
        let idle = global().render();
        std::thread::sleep(Duration::from_millis(50));
        let later = global().render();
        for family in [
            "clearair_slot_busy_seconds_total",
            "clearair_queue_wait_seconds_total",
        ] {
            assert_eq!(
                sample(&idle, family, service),
                sample(&later, family, service),
                "{family} grows while idle"
            );
        }
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
