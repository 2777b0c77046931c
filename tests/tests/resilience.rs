//! Failure policies when a prior service stops, deadlines, load shedding, draining on
//! shutdown, and the streaming API.

use std::time::Duration;

use clearair_e2e::{channel, photo, public_client, restore_request, start_mesh};
use clearair_mesh::Service;
use clearair_orchestrator::config::FailurePolicy;
use clearair_proto::v1::{
    EncodedImage, PriorKind, RestoreStreamHeader, RestoreStreamRequest,
    restore_stream_request::Part, restore_stream_response::Event,
};
use futures::StreamExt;
use tonic::Code;

/// A photo large enough that restoring it takes a while on a CPU.
fn large_photo() -> Vec<u8> {
    let small = clearair_imaging::decode(&photo(), &Default::default())
        .unwrap()
        .image;
    let large = small.resize(384, 384).unwrap();
    clearair_imaging::encode(&large, clearair_imaging::OutputFormat::Png, 0)
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_prior_falls_back_to_its_neutral_value_and_says_so() {
    let mut mesh = start_mesh(|config| config.orchestrator.cache_bytes = 0).await;
    let mut client = public_client(&mesh).await;
    mesh.stop(Service::Segmentation).await.unwrap();

    let response = client
        .restore(restore_request(photo()))
        .await
        .expect("fallback keeps the request alive")
        .into_inner();
    assert_eq!(response.fallbacks, vec![PriorKind::Segmentation as i32]);
    let summary = response.priors.unwrap();
    assert_eq!(summary.mask_count, 1, "the neutral prior is one full mask");
    assert_eq!(summary.degradations.len(), 5, "the other priors are real");
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_prior_with_policy_fail_answers_unavailable() {
    let mut mesh = start_mesh(|config| {
        config.orchestrator.policy.quality = FailurePolicy::Fail;
        config.orchestrator.cache_bytes = 0;
    })
    .await;
    let mut client = public_client(&mesh).await;
    assert!(client.restore(restore_request(photo())).await.is_ok());
    mesh.stop(Service::Quality).await.unwrap();

    let status = client
        .restore(restore_request(photo()))
        .await
        .expect_err("policy fail");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("quality"), "{status:?}");
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_deadline_answers_deadline_exceeded_and_the_mesh_recovers() {
    // The server's own cap stands in for a short client deadline: a tonic client enforces its
    // `grpc-timeout` itself and reports CANCELLED before the server's answer could arrive.
    // (That a client's deadline reaches the peers is tested in trace_context.rs.)
    let mesh = start_mesh(|config| {
        config.orchestrator.cache_bytes = 0;
        config.orchestrator.server.request_timeout_ms = 30;
    })
    .await;
    let mut client = public_client(&mesh).await;
    let status = client
        .restore(restore_request(large_photo()))
        .await
        .expect_err("too little time");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("deadline"), "{status:?}");

    // Every service still reports SERVING.
    let mut mesh = mesh;
    mesh.wait_ready(Duration::from_secs(10)).await.unwrap();
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_resource_exhausted() {
    let mesh = start_mesh(|config| {
        config.orchestrator.server.max_concurrency = 1;
        config.orchestrator.server.max_queue = 0;
        config.orchestrator.cache_bytes = 0;
    })
    .await;
    let client = public_client(&mesh).await;
    let image = large_photo();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (mut client, image) = (client.clone(), image.clone());
            tokio::spawn(async move { client.restore(restore_request(image)).await })
        })
        .collect();
    let mut codes = Vec::new();
    for call in calls {
        codes.push(match call.await.unwrap() {
            Ok(_) => Code::Ok,
            Err(status) => {
                if status.code() == Code::ResourceExhausted {
                    assert!(status.message().contains("overloaded"), "{status:?}");
                }
                status.code()
            }
        });
    }
    let shed = codes
        .iter()
        .filter(|c| **c == Code::ResourceExhausted)
        .count();
    let served = codes.iter().filter(|c| **c == Code::Ok).count();
    assert!(shed >= 1 && served >= 1, "{codes:?}");
    assert_eq!(shed + served, 4, "{codes:?}");
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restorer_sheds_and_the_orchestrator_passes_it_on() {
    let mesh = start_mesh(|config| {
        config.restoration.server.max_concurrency = 1;
        config.restoration.server.max_queue = 0;
    })
    .await;
    let client = public_client(&mesh).await;
    let image = large_photo();
    // Cache the priors first, so the restores below reach the restorer together.
    let mut warm = client.clone();
    warm.analyze(clearair_proto::v1::AnalyzeRequest {
        image: Some(EncodedImage {
            data: image.clone(),
            media_type: String::new(),
        }),
        include_priors: false,
    })
    .await
    .unwrap();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (mut client, image) = (client.clone(), image.clone());
            tokio::spawn(async move { client.restore(restore_request(image)).await })
        })
        .collect();
    let mut shed = 0;
    for call in calls {
        if let Err(status) = call.await.unwrap() {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            assert!(status.message().contains("restoration"), "{status:?}");
            shed += 1;
        }
    }
    assert!((1..4).contains(&shed), "{shed} of 4 shed");
    // Health is never shed: probes bypass admission control.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        channel(&mesh, Service::Restoration).await,
    );
    let probe = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(probe.is_ok(), "{probe:?}");
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_calls() {
    let mut mesh = start_mesh(|config| config.orchestrator.cache_bytes = 0).await;
    let mut client = public_client(&mesh).await;
    let in_flight =
        tokio::spawn(async move { client.restore(restore_request(large_photo())).await });
    // Let the call reach the restorer, then stop every service.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!in_flight.is_finished(), "the call should still be running");
    mesh.stop(Service::Orchestrator).await.unwrap();
    let outcome = in_flight.await.unwrap();
    assert!(outcome.is_ok(), "the in-flight call completes: {outcome:?}");
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_stream_reports_progress_then_streams_the_result() {
    let mesh = start_mesh(|_| {}).await;
    let mut client = public_client(&mesh).await;
    let data = photo();
    let mut messages = vec![RestoreStreamRequest {
        part: Some(Part::Header(RestoreStreamHeader {
            output_format: 0,
            jpeg_quality: 0,
            total_bytes: data.len() as u64,
            chunk_bytes: 4096,
        })),
    }];
    for chunk in data.chunks(3000) {
        messages.push(RestoreStreamRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        });
    }
    let mut events = client
        .restore_stream(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let (mut stages, mut header, mut result) = (Vec::new(), None, Vec::new());
    while let Some(event) = events.next().await {
        match event.unwrap().event.unwrap() {
            Event::Progress(progress) => {
                assert!(header.is_none(), "progress comes before the result");
                stages.push(progress.stage);
            }
            Event::Result(r) => header = Some(r),
            Event::Chunk(chunk) => {
                assert!(header.is_some(), "chunks follow the result header");
                assert!(chunk.len() <= 4096);
                result.extend_from_slice(&chunk);
            }
        }
    }
    let header = header.expect("a result header");
    assert_eq!(header.total_bytes as usize, result.len());
    for stage in ["upload", "decode", "priors", "restoration"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "{stage} missing from {stages:?}"
        );
    }
    let decoded = clearair_imaging::decode(&result, &Default::default())
        .unwrap()
        .image;
    let response = header.response.unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (response.width, response.height)
    );

    // A stream that starts with a chunk is refused by name.
    let status = client
        .restore_stream(tokio_stream::iter([RestoreStreamRequest {
            part: Some(Part::Chunk(vec![1, 2, 3])),
        }]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .expect_err("header first");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("header"), "{status:?}");
    mesh.shutdown().await.unwrap();
}
