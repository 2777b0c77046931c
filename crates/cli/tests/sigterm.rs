//! `clearair up` as a real process: it prints one line when ready, and on SIGTERM it stops
//! taking new calls, finishes the calls in flight and exits cleanly.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use clearair_proto::v1::{ClearAirRestoreRequest, EncodedImage, clear_air_client::ClearAirClient};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn large_photo() -> Vec<u8> {
    let bytes = std::fs::read(workspace().join("tests/fixtures/brisque/coffee_noise25.png"))
        .expect("fixture photo");
    let small = clearair_imaging::decode(&bytes, &Default::default())
        .unwrap()
        .image;
    let large = small.resize(448, 448).unwrap();
    clearair_imaging::encode(&large, clearair_imaging::OutputFormat::Png, 0)
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_and_exits_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clearair"))
        .args(["up"])
        .args(["--orchestrator", "127.0.0.1:0", "--quality", "127.0.0.1:0"])
        .args([
            "--segmentation",
            "127.0.0.1:0",
            "--degradation",
            "127.0.0.1:0",
        ])
        .args(["--restoration", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .args(["--web", "127.0.0.1:0"])
        .env(
            "CLEARAIR__QUALITY__BRISQUE_PARAMS",
            workspace().join("data/brisque/brisque_svr.json"),
        )
        .env("CLEARAIR__DEGRADATION__MODEL__RANDOM_INIT", "true")
        .env("CLEARAIR__RESTORATION__MODEL__RANDOM_INIT", "true")
        // The default blur stage, found from this crate's folder.
        .env(
            "CLEARAIR__RESTORATION__REFINER",
            workspace().join("models/clearair-blur-refiner.safetensors"),
        )
        .env(
            "CLEARAIR__RESTORATION__FALLBACK_REFINER",
            workspace().join("models/clearair-fallback-stage.safetensors"),
        )
        .env("CLEARAIR__ORCHESTRATOR__CACHE_BYTES", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("clearair up starts");
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        ready.starts_with("clearair mesh ready: orchestrator 127.0.0.1:"),
        "{ready}"
    );
    let address = ready
        .trim_start_matches("clearair mesh ready: orchestrator ")
        .split(',')
        .next()
        .unwrap()
        .trim()
        .to_owned();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ClearAirClient::new(channel).max_decoding_message_size(64 << 20);
    let in_flight = tokio::spawn(async move {
        client
            .restore(ClearAirRestoreRequest {
                image: Some(EncodedImage {
                    data: large_photo(),
                    media_type: String::new(),
                }),
                output_format: 0,
                jpeg_quality: 0,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!in_flight.is_finished(), "the call should still be running");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let outcome = in_flight.await.unwrap();
    assert!(outcome.is_ok(), "the in-flight call completes: {outcome:?}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "clean exit after draining: {status:?}");
    // Nobody listens any more.
    let refused = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await;
    assert!(refused.is_err());
}
