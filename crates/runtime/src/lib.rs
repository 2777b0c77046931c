//! The shared server runtime of every ClearAIR service.
//!
//! Each service crate builds its gRPC service and hands it to [`server::GrpcServer`], which adds
//! what every server in the mesh must have: `grpc.health.v1` (NOT_SERVING until warm),
//! reflection v1 and v1alpha, raised message limits, gzip/zstd, deadlines, W3C trace-context
//! extraction, Prometheus metrics, admission control that sheds load with
//! RESOURCE_EXHAUSTED instead of queueing without bound and, when configured, TLS or mutual
//! TLS and a bearer token.
//!
//! # Layout
//! - [`config`]: the shared [`config::ServerConfig`] and layered loading (defaults → file →
//!   `CLEARAIR_…` environment).
//! - [`telemetry`]: tracing subscriber, OpenTelemetry export when `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   is set.
//! - [`propagation`]: W3C trace context in and out of gRPC metadata.
//! - [`deadline`]: `grpc-timeout` → a [`deadline::Deadline`] in request extensions, expiry →
//!   DEADLINE_EXCEEDED, and propagation of the remaining budget downstream.
//! - [`admission`]: concurrency limit with a bounded wait queue; overflow → RESOURCE_EXHAUSTED.
//! - [`metrics`]: request/latency/in-flight/queue/model-time metrics and the `/metrics` endpoint;
//!   [`metrics::ServiceMetrics`] is what a service's batcher reports to (`clearair-batch`).
//! - [`server`]: assembles the tower stack and serves on a caller-owned listener.
//! - [`web`]: the optional web front of a public server: gRPC-Web (CORS for configured
//!   origins) through the same stack, and a page's static files on the same origin.
//! - [`balance`]: a peer's calls spread over all its replicas (names re-resolved, unreachable
//!   replicas passed over).
//! - [`client`]: channels to peer services with limits, compression, TLS and trace injection.
//! - [`tls`]: TLS and mutual TLS settings of servers and peer channels (rustls).
//! - [`auth`]: the optional bearer token on a server's services (UNAUTHENTICATED otherwise).
//! - [`model`]: background model loading ([`model::ModelSlot`]) and blocking inference.
//! - [`launch`]: the shared `main` of every service binary.
//! - [`memory`]: keep freed memory for reuse instead of faulting it in again every layer.
//! - [`shutdown`]: SIGTERM / ctrl-c.
//! - [`status`]: the status of a failure by whose fault it is (ours: INTERNAL, source chain
//!   logged).

pub mod admission;
pub mod auth;
pub mod balance;
mod body;
pub mod client;
pub mod config;
pub mod deadline;
mod error;
pub mod launch;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod propagation;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod web;

pub use error::RuntimeError;
