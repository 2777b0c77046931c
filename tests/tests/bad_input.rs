//! Each kind of bad input gets INVALID_ARGUMENT with a message naming the problem, and the
//! mesh keeps serving afterwards.

use clearair_e2e::{
    channel, photo, png_header_claiming, public_client, restore_request, start_mesh,
};
use clearair_mesh::Service;
use clearair_proto::v1::{
    AssessRequest, ClearAirRestoreRequest, DegradationPrior, DegradationProbability, QualityPrior,
    RestoreRequest, RgbImage, SemanticMasks, quality_service_client::QualityServiceClient,
    restoration_service_client::RestorationServiceClient,
};
use tonic::Code;

fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, needles: &[&str]) {
    let status = result.expect_err("the request must fail");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let message = status.message().to_lowercase();
    for needle in needles {
        assert!(
            message.contains(&needle.to_lowercase()),
            "message {message:?} should mention {needle:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_by_name_and_the_mesh_keeps_serving() {
    let mesh = start_mesh(|_| {}).await;
    let mut client = public_client(&mesh).await;
    let good = photo();

    assert_invalid(
        client
            .restore(restore_request(b"definitely not an image".to_vec()))
            .await,
        &["unsupported image format"],
    );
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    assert_invalid(
        client.restore(restore_request(truncated)).await,
        &["png", "truncated"],
    );
    assert_invalid(
        client
            .restore(restore_request(png_header_claiming(100_000, 100_000)))
            .await,
        &["100000", "pixels"],
    );
    assert_invalid(
        client
            .restore(restore_request(png_header_claiming(0, 0)))
            .await,
        &["0×0", "at least 1"],
    );
    assert_invalid(
        client.restore(restore_request(Vec::new())).await,
        &["empty"],
    );
    assert_invalid(
        client.restore(ClearAirRestoreRequest::default()).await,
        &["no `image`"],
    );
    let mut bad_quality = restore_request(good.clone());
    bad_quality.jpeg_quality = 300;
    assert_invalid(client.restore(bad_quality).await, &["jpeg_quality", "300"]);

    let restored = client.restore(restore_request(good)).await;
    assert!(restored.is_ok(), "the mesh still serves: {restored:?}");
    mesh.shutdown().await.unwrap();
}

fn valid_restore_request(width: u32, height: u32) -> RestoreRequest {
    let pixels = (width * height) as usize;
    let mut bits = vec![0xFFu8; pixels.div_ceil(8)];
    if !pixels.is_multiple_of(8) {
        *bits.last_mut().unwrap() = 0xFF << (8 - pixels % 8);
    }
    RestoreRequest {
        image: Some(RgbImage {
            width,
            height,
            rgb: vec![128; pixels * 3],
        }),
        quality: Some(QualityPrior {
            features: vec![0.1; 36],
            score: 3.0,
            level: 3,
            backend: "brisque".to_owned(),
            raw_score: 50.0,
        }),
        masks: Some(SemanticMasks {
            width,
            height,
            count: 1,
            bits,
            scores: vec![1.0],
            backend: "graph".to_owned(),
        }),
        degradation: Some(DegradationPrior {
            content: vec![0.0; 512],
            degradation: vec![0.0; 512],
            probabilities: Vec::new(),
            // The name of the degradation service's default view, which the default
            // restoration service expects.
            backend: clearair_backends::degradation::DegradationBackendConfig::default()
                .view
                .backend_name()
                .to_owned(),
            ..DegradationPrior::default()
        }),
    }
}

/// The restorer owns what "neutral" means: an absent prior is its neutral value (zeros, one
/// mask over the image), the same result as sending those values, and not the same as a real
/// prior (the test mesh's restorer has random weights, so every prior changes its output).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_priors_are_the_restorers_neutral_ones() {
    let mesh = start_mesh(|_| {}).await;
    let mut restorer = RestorationServiceClient::new(channel(&mesh, Service::Restoration).await);
    async fn restore(
        restorer: &mut RestorationServiceClient<tonic::transport::Channel>,
        request: RestoreRequest,
    ) -> RgbImage {
        restorer
            .restore(request)
            .await
            .expect("served")
            .into_inner()
            .image
            .expect("an image")
    }
    let steer = |request: &mut RestoreRequest| {
        request.quality.as_mut().unwrap().features = vec![2.0; 36];
        let degradation = request.degradation.as_mut().unwrap();
        degradation.content = vec![1.0; 512];
        degradation.degradation = vec![-1.0; 512];
    };

    let mut image_alone = valid_restore_request(24, 20);
    image_alone.quality = None;
    image_alone.masks = None;
    image_alone.degradation = None;
    let alone = restore(&mut restorer, image_alone).await;
    assert_eq!((alone.width, alone.height), (24, 20));

    let mut explicit = valid_restore_request(24, 20);
    explicit.quality.as_mut().unwrap().features = vec![0.0; 36];
    let explicit = restore(&mut restorer, explicit).await;
    assert!(alone == explicit, "absent priors = zeros and one full mask");

    let mut steered = valid_restore_request(24, 20);
    steer(&mut steered);
    let steered = restore(&mut restorer, steered).await;
    assert!(alone != steered, "real priors change the output");

    let mut masks_only_absent = valid_restore_request(24, 20);
    steer(&mut masks_only_absent);
    masks_only_absent.masks = None;
    assert!(
        restore(&mut restorer, masks_only_absent).await == steered,
        "absent masks = one full mask, the other priors still steer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_priors_are_refused_by_the_restorer_by_name() {
    let mesh = start_mesh(|_| {}).await;
    let mut restorer = RestorationServiceClient::new(channel(&mesh, Service::Restoration).await);

    let ok = restorer.restore(valid_restore_request(24, 20)).await;
    assert!(ok.is_ok(), "the valid request is accepted: {ok:?}");

    let mut wrong_width = valid_restore_request(24, 20);
    wrong_width.quality.as_mut().unwrap().features = vec![0.0; 4096];
    assert_invalid(
        restorer.restore(wrong_width).await,
        &["quality.features", "4096", "36"],
    );

    let mut nan = valid_restore_request(24, 20);
    nan.quality.as_mut().unwrap().features[5] = f32::NAN;
    assert_invalid(restorer.restore(nan).await, &["quality.features[5]", "nan"]);

    let mut infinite = valid_restore_request(24, 20);
    infinite.degradation.as_mut().unwrap().degradation[7] = f32::INFINITY;
    assert_invalid(
        restorer.restore(infinite).await,
        &["degradation.degradation[7]", "finite"],
    );

    // The kind probabilities a gated refiner reads are checked as well.
    let probability = |kind: i32, probability: f32| {
        let mut request = valid_restore_request(24, 20);
        request.degradation.as_mut().unwrap().probabilities =
            vec![DegradationProbability { kind, probability }];
        request
    };
    assert_invalid(
        restorer.restore(probability(4, f32::NAN)).await,
        &["degradation.probabilities[0].probability", "NaN", "[0, 1]"],
    );
    assert_invalid(
        restorer.restore(probability(4, 1.5)).await,
        &["probabilities[0].probability", "1.5"],
    );
    assert_invalid(
        restorer.restore(probability(0, 0.5)).await,
        &[
            "degradation.probabilities[0].kind",
            "0",
            "not a degradation kind",
        ],
    );
    assert_invalid(
        restorer.restore(probability(9, 0.5)).await,
        &["probabilities[0].kind", "9"],
    );
    let ok = restorer.restore(probability(4, 0.75)).await;
    assert!(ok.is_ok(), "a valid probability is accepted: {ok:?}");
    // So is a second reading for a gate in another view, whatever the restorer's refiner.
    let gate_reading = |view: &str, probability: f32| {
        let mut request = valid_restore_request(24, 20);
        let prior = request.degradation.as_mut().unwrap();
        prior.gate_probabilities = vec![DegradationProbability {
            kind: 4,
            probability,
        }];
        prior.gate_view = view.to_owned();
        request
    };
    assert_invalid(
        restorer.restore(gate_reading("tiles", f32::NAN)).await,
        &["degradation.gate_probabilities[0].probability", "NaN"],
    );
    assert_invalid(
        restorer.restore(gate_reading("", 0.5)).await,
        &["degradation.gate_probabilities", "gate_view"],
    );
    assert_invalid(
        restorer.restore(gate_reading("corners", 0.5)).await,
        &["degradation.gate_view", "corners"],
    );
    let ok = restorer.restore(gate_reading("tiles", 0.5)).await;
    assert!(ok.is_ok(), "a valid gate reading is accepted: {ok:?}");

    let mut short_content = valid_restore_request(24, 20);
    short_content.degradation.as_mut().unwrap().content = vec![0.0; 3];
    assert_invalid(
        restorer.restore(short_content).await,
        &["degradation.content", "512"],
    );

    let mut masks_elsewhere = valid_restore_request(24, 20);
    masks_elsewhere.masks.as_mut().unwrap().width = 25;
    assert_invalid(
        restorer.restore(masks_elsewhere).await,
        &["width", "24", "25"],
    );

    let mut too_many = valid_restore_request(24, 20);
    too_many.masks.as_mut().unwrap().count = 17;
    assert_invalid(restorer.restore(too_many).await, &["17", "16"]);

    let mut foreign = valid_restore_request(24, 20);
    foreign.quality.as_mut().unwrap().backend = "deqa".to_owned();
    assert_invalid(restorer.restore(foreign).await, &["deqa", "brisque"]);

    let mut short_pixels = valid_restore_request(24, 20);
    short_pixels.image.as_mut().unwrap().rgb.pop();
    assert_invalid(restorer.restore(short_pixels).await, &["1439", "1440"]);

    let mut zero = valid_restore_request(24, 20);
    zero.image.as_mut().unwrap().width = 0;
    assert_invalid(restorer.restore(zero).await, &["0×20"]);

    // A prior service refuses a broken raw image too.
    let mut quality = QualityServiceClient::new(channel(&mesh, Service::Quality).await);
    assert_invalid(
        quality
            .assess(AssessRequest {
                image: Some(RgbImage {
                    width: 100_000,
                    height: 100_000,
                    rgb: Vec::new(),
                }),
            })
            .await,
        &["100000", "pixels"],
    );

    let ok = restorer.restore(valid_restore_request(24, 20)).await;
    assert!(ok.is_ok(), "the restorer still serves: {ok:?}");
    mesh.shutdown().await.unwrap();
}
