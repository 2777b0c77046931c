//! Shared set-up of the end-to-end tests: a real mesh (five tonic servers on ephemeral
//! loopback ports, freshly initialised networks, the real BRISQUE parameters) and fixtures.
//!
//! The tests themselves live in `tests/tests/`; the Python client test in `tests/python/`.

use std::{path::PathBuf, time::Duration};

use clearair_mesh::{Mesh, MeshConfig, Service};
use clearair_proto::v1::{
    ClearAirRestoreRequest, EncodedImage, ImageFormat, clear_air_client::ClearAirClient,
};
use tonic::transport::Channel;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Points the degradation service at the committed encoder instead of random weights.
pub fn with_committed_encoder(config: &mut MeshConfig) {
    config.degradation.model.random_init = false;
    config.degradation.model.weights = workspace().join("models/degradation-encoder.safetensors");
}

/// The project's Python (its virtualenv's, else `python3`), for the scripts in
/// `deploy/scripts/`.
pub fn python() -> PathBuf {
    let venv = workspace().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A committed fixture file's bytes.
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = workspace().join("tests/fixtures").join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A real photo crop (the BRISQUE parity fixtures are small crops of scikit-image photos).
pub fn photo() -> Vec<u8> {
    fixture("brisque/coffee_noise25.png")
}

/// A public Restore request for the encoded image `data`, answered as PNG (the default).
pub fn restore_request(data: Vec<u8>) -> ClearAirRestoreRequest {
    restore_request_as(data, ImageFormat::Unspecified)
}

/// A public Restore request for the encoded image `data`, answered in `format`.
pub fn restore_request_as(data: Vec<u8>, format: ImageFormat) -> ClearAirRestoreRequest {
    ClearAirRestoreRequest {
        image: Some(EncodedImage {
            data,
            media_type: String::new(),
        }),
        output_format: format as i32,
        jpeg_quality: 0,
    }
}

/// The mesh configuration of the tests: ephemeral ports, random-init networks (the trained
/// weights are not needed to test the mesh), small tiles so tiling is exercised.
pub fn test_config() -> MeshConfig {
    let mut config = MeshConfig::default().ephemeral();
    let params = std::env::var("CLEARAIR_BRISQUE_PARAMS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("data/brisque/brisque_svr.json"));
    assert!(
        params.exists(),
        "BRISQUE parameters missing at {}: run `make setup`",
        params.display()
    );
    config.quality.brisque_params = params;
    config.degradation.model.random_init = true;
    config.restoration.model.random_init = true;
    // The restorer alone, one pass, and a refiner a test names run once: the committed blur
    // refiner belongs to the committed weights (tests/tests/gated_refiner.rs runs that pair).
    config.restoration.refiner = None;
    config.restoration.fallback_refiner = None;
    config.restoration.refiner_ensemble = 1;
    config.restoration.restorer_ensemble = 1;
    config.restoration.tile_size = 64;
    config.restoration.tile_overlap = 8;
    config
}

/// Starts a mesh and waits until every service reports SERVING.
pub async fn start_mesh(customize: impl FnOnce(&mut MeshConfig)) -> Mesh {
    let mut config = test_config();
    customize(&mut config);
    let mut mesh = Mesh::start(config).await.expect("mesh starts");
    mesh.wait_ready(Duration::from_secs(120))
        .await
        .expect("mesh becomes ready");
    mesh
}

/// A client of the mesh's public API.
pub async fn public_client(mesh: &Mesh) -> ClearAirClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(mesh.url(Service::Orchestrator))
        .expect("valid URL")
        .connect()
        .await
        .expect("orchestrator reachable");
    ClearAirClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// A channel to one service.
pub async fn channel(mesh: &Mesh, service: Service) -> Channel {
    tonic::transport::Endpoint::from_shared(mesh.url(service))
        .expect("valid URL")
        .connect()
        .await
        .expect("service reachable")
}

/// The page of a Prometheus `/metrics` endpoint, fetched over plain HTTP/1.0.
pub async fn scrape_metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("metrics at {addr}: {e}"));
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request sent");
    let mut page = String::new();
    stream.read_to_string(&mut page).await.expect("page read");
    page
}

/// PNG bytes of a `width × height` image.
pub fn png_of(width: u32, height: u32, rgb: Vec<u8>) -> Vec<u8> {
    let image = clearair_imaging::Rgb8Image::new(width, height, rgb).expect("consistent image");
    clearair_imaging::encode(&image, clearair_imaging::OutputFormat::Png, 0)
        .expect("PNG encodes")
        .0
}

/// A PNG whose header claims `width × height` (valid signature and CRC) but carries no
/// pixel data: the classic decompression-bomb probe.
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// PSNR in dB of two 8-bit images of the same size (RGB, peak 255).
pub fn psnr(a: &clearair_imaging::Rgb8Image, b: &clearair_imaging::Rgb8Image) -> f64 {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()));
    let squared: f64 = a
        .as_bytes()
        .iter()
        .zip(b.as_bytes())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = squared / a.as_bytes().len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}
