//! A full restore through the real mesh, Analyze with and without the full priors, the prior
//! cache, output formats, and health and reflection on every server.

use clearair_e2e::{
    channel, photo, public_client, restore_request, restore_request_as, start_mesh,
};
use clearair_mesh::Service;
use clearair_proto::v1::{AnalyzeRequest, EncodedImage, ImageFormat, QualityLevel};
use futures::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_a_photo_through_the_orchestrator() {
    let mesh = start_mesh(|_| {}).await;
    let mut client = public_client(&mesh).await;
    let input = photo();
    let decoded = clearair_imaging::decode(&input, &Default::default())
        .unwrap()
        .image;

    let response = client
        .restore(restore_request(input.clone()))
        .await
        .expect("restore succeeds")
        .into_inner();
    let image = response.image.expect("an image");
    assert_eq!(image.media_type, "image/png", "PNG by default");
    let restored = clearair_imaging::decode(&image.data, &Default::default())
        .unwrap()
        .image;
    assert_eq!(
        (restored.width(), restored.height()),
        (decoded.width(), decoded.height())
    );
    assert_eq!(
        (response.width, response.height),
        (decoded.width(), decoded.height())
    );
    assert!(response.fallbacks.is_empty(), "{:?}", response.fallbacks);
    let summary = response.priors.expect("a summary");
    assert!((1.0..=5.0).contains(&summary.quality_score), "{summary:?}");
    assert_ne!(summary.quality_level, QualityLevel::Unspecified as i32);
    assert_eq!(summary.degradations.len(), 5);
    assert!((1..=16).contains(&summary.mask_count));
    let stages: Vec<&str> = response.timings.iter().map(|t| t.stage.as_str()).collect();
    for stage in [
        "decode",
        "quality",
        "segmentation",
        "degradation",
        "priors",
        "restoration",
        "encode",
        "total",
    ] {
        assert!(
            stages.contains(&stage),
            "missing stage {stage} in {stages:?}"
        );
    }

    // The same photo again: the priors come from the content-addressed cache.
    let again = client
        .restore(restore_request_as(input.clone(), ImageFormat::Jpeg))
        .await
        .expect("second restore succeeds")
        .into_inner();
    assert_eq!(again.image.unwrap().media_type, "image/jpeg");
    assert!(
        again.timings.iter().any(|t| t.stage == "priors_cached"),
        "{:?}",
        again.timings
    );

    let analysis = client
        .analyze(AnalyzeRequest {
            image: Some(EncodedImage {
                data: input,
                media_type: String::new(),
            }),
            include_priors: true,
        })
        .await
        .expect("analyze succeeds")
        .into_inner();
    assert_eq!(analysis.quality.expect("quality prior").features.len(), 36);
    let masks = analysis.masks.expect("masks");
    assert_eq!(
        (masks.width, masks.height),
        (decoded.width(), decoded.height())
    );
    let degradation = analysis.degradation.expect("degradation prior");
    assert_eq!(degradation.content.len(), 512);
    assert_eq!(degradation.degradation.len(), 512);
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_answers_health_and_reflection_v1_and_v1alpha() {
    let mesh = start_mesh(|_| {}).await;
    for (service, name) in [
        (Service::Orchestrator, "clearair.v1.ClearAir"),
        (Service::Quality, "clearair.v1.QualityService"),
        (Service::Segmentation, "clearair.v1.SegmentationService"),
        (Service::Degradation, "clearair.v1.DegradationService"),
        (Service::Restoration, "clearair.v1.RestorationService"),
    ] {
        let channel = channel(&mesh, service).await;
        let mut health = HealthClient::new(channel.clone());
        for probe in ["", name] {
            let status = health
                .check(HealthCheckRequest {
                    service: probe.to_owned(),
                })
                .await
                .unwrap_or_else(|e| panic!("{name} health {probe:?}: {e}"))
                .into_inner()
                .status;
            assert_eq!(status, ServingStatus::Serving as i32, "{name} {probe:?}");
        }

        use tonic_reflection::pb::{v1, v1alpha};
        let request = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut reflection =
            v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
        let mut replies = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let reply = replies.next().await.unwrap().unwrap();
        let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            reply.message_response
        else {
            panic!("{name}: unexpected reflection reply");
        };
        let listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(listed.iter().any(|s| s == name), "{name} not in {listed:?}");
        assert!(
            listed.iter().any(|s| s == "grpc.health.v1.Health"),
            "{listed:?}"
        );

        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                    name.to_owned(),
                ),
            ),
        };
        let mut reflection =
            v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let mut replies = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let reply = replies.next().await.unwrap().unwrap();
        assert!(
            matches!(
                reply.message_response,
                Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref files))
                    if !files.file_descriptor_proto.is_empty()
            ),
            "{name}: v1alpha did not return the file of the service"
        );
    }
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_client_gets_what_restore_returns_with_progress() {
    let mesh = start_mesh(|_| {}).await;
    let mut client = public_client(&mesh).await;
    let input = photo();
    let unary = clearair_mesh::client::restore(
        &mut client,
        input.clone(),
        ImageFormat::Png,
        std::time::Duration::from_secs(120),
    )
    .await
    .expect("Restore");
    let mut stages = Vec::new();
    let streamed = clearair_mesh::client::restore_stream(
        &mut client,
        input.clone(),
        ImageFormat::Png,
        std::time::Duration::from_secs(120),
        // Small chunks: the upload is many messages.
        8 << 10,
        |progress| stages.push((progress.stage.clone(), progress.fraction)),
    )
    .await
    .expect("RestoreStream");
    assert!(input.len() > 8 << 10, "the photo is sent in several chunks");
    assert_eq!(
        streamed.image.as_ref().unwrap().data,
        unary.image.as_ref().unwrap().data,
        "the same restored bytes"
    );
    assert_eq!(streamed.image.unwrap().media_type, "image/png");
    assert_eq!(
        (streamed.width, streamed.height),
        (unary.width, unary.height)
    );
    let names: Vec<&str> = stages.iter().map(|(s, _)| s.as_str()).collect();
    assert!(
        names.contains(&"upload") && names.contains(&"restoration"),
        "{names:?}"
    );
    assert!(
        stages.windows(2).all(|w| w[0].1 <= w[1].1),
        "progress never goes back: {stages:?}"
    );
    mesh.shutdown().await.expect("clean shutdown");
}
