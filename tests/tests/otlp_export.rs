//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP/gRPC, and one request's
//! spans on the orchestrator and on the prior services share one trace.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use clearair_e2e::{photo, public_client, restore_request, start_mesh};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use tonic::{Request, Response, Status};

/// A real OTLP/gRPC trace collector that keeps what it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_share_the_request_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // SAFETY: set before any thread of this test process reads the environment.
    unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint) };
    let telemetry = clearair_runtime::telemetry::init("clearair-e2e-otlp").unwrap();
    assert!(telemetry.exporting());

    let mesh = start_mesh(|_| {}).await;
    let mut client = public_client(&mesh).await;
    client
        .restore(restore_request(photo()))
        .await
        .expect("restore");
    mesh.shutdown().await.unwrap();
    // Flushing blocks on the exporter's runtime tasks, so not on this task.
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // trace id -> the `clearair.service` of every server span in it.
    let mut traces: HashMap<Vec<u8>, HashSet<String>> = HashMap::new();
    let mut service_names = HashSet::new();
    for export in collector.0.lock().unwrap().iter() {
        for resource_spans in &export.resource_spans {
            for attribute in resource_spans.resource.iter().flat_map(|r| &r.attributes) {
                if attribute.key == "service.name"
                    && let Some(Value::StringValue(name)) =
                        attribute.value.as_ref().and_then(|v| v.value.clone())
                {
                    service_names.insert(name);
                }
            }
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                for attribute in &span.attributes {
                    if attribute.key == "clearair.service"
                        && let Some(Value::StringValue(service)) =
                            attribute.value.as_ref().and_then(|v| v.value.clone())
                    {
                        traces
                            .entry(span.trace_id.clone())
                            .or_default()
                            .insert(service);
                    }
                }
            }
        }
    }
    assert!(
        service_names.contains("clearair-e2e-otlp"),
        "{service_names:?}"
    );
    let full = traces.values().find(|services| {
        [
            "orchestrator",
            "quality",
            "segmentation",
            "degradation",
            "restoration",
        ]
        .iter()
        .all(|s| services.contains(*s))
    });
    assert!(
        full.is_some(),
        "no trace spans all five services: {traces:?}"
    );
}
