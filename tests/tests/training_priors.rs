//! Train as we serve: the priors a training window carries are the priors the mesh's services
//! compute for the same 8-bit window — F_q from the quality service, the masks from the
//! segmentation service at the orchestrator's mask count, F_c/F_d from the degradation
//! service (which shrinks to a long side of 256 before its encoder, or crops the centred 256
//! square under `view = "centre"`) — within float tolerance. Windows on both sides of 256 are
//! checked, so the shrink and the crop are covered. A refiner gate's second reading
//! (`gate_view = "centre"` or `"tiles"`) is what the evaluation's mesh reads for the window.

use std::sync::Arc;

use clearair_backends::degradation::{EncoderView, GateView, gate_probabilities};
use clearair_e2e::{channel, fixture, start_mesh, test_config, with_committed_encoder, workspace};
use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_mesh::Service;
use clearair_orchestrator::OrchestratorConfig;
use clearair_proto::v1::{
    AssessRequest, DegradationPrior, EmbedRequest, SegmentRequest,
    degradation_service_client::DegradationServiceClient,
    quality_service_client::QualityServiceClient,
    segmentation_service_client::SegmentationServiceClient,
};
use clearair_train::mix::{DegradationMix, ParameterRanges};
use clearair_train::networks::load_encoder;
use clearair_train::photos::Photo;
use clearair_train::priors::{CpuPriorBackends, ENCODER_MAX_SIDE, MAX_MASKS};
use clearair_train::windows::{WindowMaker, WindowSettings};
use tch::Device;

/// `image` mirrored into a `side × side` square (edges reflected), so windows larger than the
/// encoder's 256 can be cut from a 256² fixture.
fn mirrored(image: &Rgb8Image, side: u32) -> Rgb8Image {
    let reflect = |i: u32, n: u32| {
        let period = 2 * n;
        let i = i % period;
        if i < n { i } else { period - 1 - i }
    };
    let mut bytes = Vec::with_capacity((side * side * 3) as usize);
    for y in 0..side {
        for x in 0..side {
            let (sx, sy) = (reflect(x, image.width()), reflect(y, image.height()));
            let at = ((sy * image.width() + sx) * 3) as usize;
            bytes.extend_from_slice(&image.as_bytes()[at..at + 3]);
        }
    }
    Rgb8Image::new(side, side, bytes).expect("consistent image")
}

fn assert_close(what: &str, window: u64, training: &[f32], served: &[f32], tolerance: f32) {
    assert_eq!(
        training.len(),
        served.len(),
        "window {window}: {what} widths"
    );
    let worst = training
        .iter()
        .zip(served)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tolerance,
        "window {window}: {what} differs by up to {worst:e} (tolerance {tolerance:e})"
    );
}

/// The degradation prior the service computes for `image`.
async fn embed(
    client: &mut DegradationServiceClient<tonic::transport::Channel>,
    image: &Rgb8Image,
) -> DegradationPrior {
    client
        .embed(EmbedRequest {
            image: Some(image.to_proto()),
        })
        .await
        .expect("embeds")
        .into_inner()
        .degradation
        .expect("the degradation prior")
}

/// Windows of 96–448 pixels cut from the coffee fixture, with the committed encoder.
fn window_maker(encoder_weights: &std::path::Path) -> WindowMaker {
    let coffee = clearair_imaging::decode(
        &fixture("samples/reference/coffee.png"),
        &Default::default(),
    )
    .expect("decodes")
    .image;
    let photos = Arc::new(vec![Photo {
        name: "coffee".to_owned(),
        image: mirrored(&coffee, 448),
    }]);
    let cpu_priors =
        Arc::new(CpuPriorBackends::load(&test_config().quality.brisque_params).expect("BRISQUE"));
    let encoder = load_encoder(encoder_weights, Device::Cpu)
        .expect("the committed encoder loads")
        .network;
    let settings = WindowSettings {
        min_side: 96,
        max_side: 448,
        mix: DegradationMix {
            ranges: ParameterRanges::Training,
            ..DegradationMix::default()
        },
        dark_share: 0.25,
        dark_gamma_max: 3.0,
    };
    WindowMaker::new(photos, cpu_priors, encoder, Device::Cpu, settings, 17).expect("window maker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_windows_carry_the_priors_the_services_compute() {
    assert_eq!(
        OrchestratorConfig::default().max_masks,
        MAX_MASKS,
        "training asks the segmenter for as many masks as the orchestrator"
    );
    let encoder_weights = workspace().join("models/degradation-encoder.safetensors");
    let mesh = start_mesh(|config| {
        with_committed_encoder(config);
    })
    .await;

    let maker = window_maker(&encoder_weights);
    let windows: Vec<_> = (0..6)
        .map(|index| (index, maker.make(index).expect("window")))
        .collect();
    let sides: Vec<u32> = windows.iter().map(|(_, w)| w.degraded.width()).collect();
    assert!(
        sides.iter().any(|&s| s > ENCODER_MAX_SIDE) && sides.iter().any(|&s| s <= ENCODER_MAX_SIDE),
        "windows on both sides of the encoder's {ENCODER_MAX_SIDE}: {sides:?}"
    );

    let mut quality = QualityServiceClient::new(channel(&mesh, Service::Quality).await);
    let mut segmentation =
        SegmentationServiceClient::new(channel(&mesh, Service::Segmentation).await);
    let mut degradation = DegradationServiceClient::new(channel(&mesh, Service::Degradation).await);
    for (index, window) in &windows {
        let (index, image) = (*index, &window.degraded);
        let wire = image.to_proto();

        match quality
            .assess(AssessRequest {
                image: Some(wire.clone()),
            })
            .await
        {
            Ok(response) => {
                let served = response.into_inner().quality.expect("F_q").features;
                assert_close("F_q", index, &window.quality, &served, 1e-5);
            }
            // A refusal becomes the orchestrator's neutral zeros; training uses the same.
            Err(status) => assert!(
                window.quality.iter().all(|&v| v == 0.0),
                "window {index}: the service refused ({status}) but training kept an F_q"
            ),
        }

        let served = segmentation
            .segment(SegmentRequest {
                image: Some(wire.clone()),
                max_masks: MAX_MASKS,
            })
            .await
            .expect("segments")
            .into_inner()
            .masks
            .expect("masks");
        let served = PackedMasks::from_proto(&served, image.width(), image.height())
            .expect("masks fit the window");
        assert_eq!(served, window.masks, "window {index}: masks");

        let served = embed(&mut degradation, image).await;
        assert_close("F_c", index, &window.content, &served.content, 1e-4);
        assert_close("F_d", index, &window.degradation, &served.degradation, 1e-4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_made_for_the_centre_view_carry_the_embeddings_that_view_serves() {
    let encoder_weights = workspace().join("models/degradation-encoder.safetensors");
    let mesh = start_mesh(|config| {
        with_committed_encoder(config);
        config.degradation.view = EncoderView::Centre;
    })
    .await;
    let whole = window_maker(&encoder_weights);
    let centre = window_maker(&encoder_weights).with_encoder_view(EncoderView::Centre);
    assert_eq!(centre.encoder_view(), EncoderView::Centre);

    let mut degradation = DegradationServiceClient::new(channel(&mesh, Service::Degradation).await);
    let mut larger = 0;
    for index in 0..6 {
        let window = centre.make(index).expect("window");
        let served = embed(&mut degradation, &window.degraded).await;
        assert_eq!(served.backend, EncoderView::Centre.backend_name());
        assert_close("F_c", index, &window.content, &served.content, 1e-4);
        assert_close("F_d", index, &window.degradation, &served.degradation, 1e-4);
        // The same window under the whole view: the same pixels, and other embeddings as
        // soon as the window is larger than the square.
        let other = whole.make(index).expect("window");
        assert_eq!(other.degraded, window.degraded, "window {index}");
        if window.degraded.width() > ENCODER_MAX_SIDE {
            larger += 1;
            assert_ne!(other.degradation, window.degradation, "window {index}");
        } else {
            assert_eq!(other.degradation, window.degradation, "window {index}");
        }
    }
    assert!(larger > 0, "some window is larger than {ENCODER_MAX_SIDE}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_reads_in_evaluation_what_the_degradation_service_sends_for_it() {
    let encoder_weights = workspace().join("models/degradation-encoder.safetensors");
    let encoder = load_encoder(&encoder_weights, Device::Cpu)
        .expect("the committed encoder loads")
        .network;
    let maker = window_maker(&encoder_weights);
    for gate_view in [GateView::Centre, GateView::Tiles] {
        let mesh = start_mesh(|config| {
            with_committed_encoder(config);
            config.degradation.gate_view = gate_view;
        })
        .await;
        let mut degradation =
            DegradationServiceClient::new(channel(&mesh, Service::Degradation).await);
        let mut larger = 0;
        for index in 0..6 {
            let window = maker.make(index).expect("window");
            let served = embed(&mut degradation, &window.degraded).await;
            // The served prior is unchanged beside the gate's reading.
            assert_eq!(served.backend, EncoderView::Whole.backend_name());
            assert_close("F_d", index, &window.degradation, &served.degradation, 1e-4);
            assert_eq!(served.gate_view, gate_view.as_str(), "window {index}");
            // What the evaluation's mesh reads for the same window (the training side).
            let read = gate_probabilities(
                &encoder,
                Device::Cpu,
                gate_view,
                ENCODER_MAX_SIDE,
                &window.degraded,
            )
            .expect("reads")
            .expect("a reading in another view than the served one");
            let sent: Vec<f32> = served
                .gate_probabilities
                .iter()
                .map(|p| p.probability)
                .collect();
            assert_close("gate probabilities", index, &read, &sent, 1e-4);
            let kinds: Vec<i32> = served.gate_probabilities.iter().map(|p| p.kind).collect();
            assert_eq!(kinds, vec![1, 2, 3, 4, 5], "window {index}");
            if window.degraded.width() > ENCODER_MAX_SIDE {
                larger += 1;
                let served_blur = served.probabilities[3].probability;
                assert_ne!(
                    sent[3], served_blur,
                    "window {index}: another view reads otherwise"
                );
            }
        }
        assert!(larger > 0, "some window is larger than {ENCODER_MAX_SIDE}");
    }
}
