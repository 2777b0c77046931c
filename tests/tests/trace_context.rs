//! W3C trace context and deadlines cross every hop: a client's `traceparent` reaches the prior
//! services as the parent of the orchestrator's calls, and its deadline arrives as a shorter
//! `grpc-timeout`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clearair_e2e::{photo, restore_request, start_mesh};
use clearair_mesh::Service;
use clearair_proto::v1::{
    AssessRequest, AssessResponse, PriorKind, QualityPrior,
    quality_service_server::{QualityService, QualityServiceServer},
};
use tonic::{Request, Response, Status};

/// What the recording quality service saw.
#[derive(Clone, Debug, Default)]
struct Seen {
    traceparent: Option<String>,
    grpc_timeout: Option<String>,
}

/// A real tonic quality server that records the metadata of each call and answers a valid
/// BRISQUE-shaped prior.
struct RecordingQuality(Arc<Mutex<Vec<Seen>>>);

#[tonic::async_trait]
impl QualityService for RecordingQuality {
    async fn assess(
        &self,
        request: Request<AssessRequest>,
    ) -> Result<Response<AssessResponse>, Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.0.lock().unwrap().push(Seen {
            traceparent: header("traceparent"),
            grpc_timeout: header("grpc-timeout"),
        });
        Ok(Response::new(AssessResponse {
            quality: Some(QualityPrior {
                features: vec![0.0; 36],
                score: 3.0,
                level: 3,
                backend: "brisque".to_owned(),
                raw_score: 50.0,
            }),
            model_milliseconds: 0.0,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_and_deadline_reach_the_prior_services() {
    let _telemetry = clearair_runtime::telemetry::init("clearair-e2e").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let recorder = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(QualityServiceServer::new(RecordingQuality(seen.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mesh = start_mesh(|config| config.orchestrator.cache_bytes = 0).await;

    // A second orchestrator, whose quality peer is the recorder.
    let mut config = clearair_e2e::test_config().orchestrator;
    config.quality.endpoint = format!("http://{recorder}");
    config.segmentation.endpoint = mesh.url(Service::Segmentation);
    config.degradation.endpoint = mesh.url(Service::Degradation);
    config.restoration.endpoint = mesh.url(Service::Restoration);
    config.cache_bytes = 0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let orchestrator = listener.local_addr().unwrap();
    tokio::spawn(clearair_orchestrator::serve(
        config,
        listener,
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{orchestrator}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = clearair_proto::v1::clear_air_client::ClearAirClient::new(channel);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = Request::new(restore_request(photo()));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    request.set_timeout(Duration::from_secs(60));
    let response = client.restore(request).await.expect("restore").into_inner();
    assert!(
        !response.fallbacks.contains(&(PriorKind::Quality as i32)),
        "the recorder answered"
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let traceparent = seen[0].traceparent.as_deref().expect("traceparent arrived");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace_id, "same trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "a new span: the orchestrator's"
    );
    let timeout = seen[0]
        .grpc_timeout
        .as_deref()
        .expect("deadline propagated");
    let budget = clearair_runtime::deadline::parse_grpc_timeout(timeout).unwrap();
    assert!(
        budget < Duration::from_secs(60) && budget > Duration::from_secs(30),
        "{timeout}"
    );
    mesh.shutdown().await.unwrap();
}
