//! Transport security on the real mesh: mutual TLS on every hop (client → orchestrator →
//! each model service), refusal of clients without the right certificate, and the bearer
//! token on the public API.
//!
//! Certificates come from `deploy/tls/make-certs.sh` (openssl), the script users run, so the
//! script is tested too; each run makes a fresh CA, which gives the "wrong CA" cases.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clearair_e2e::{photo, public_client, restore_request, start_mesh, test_config, workspace};
use clearair_mesh::{Mesh, MeshConfig, Service};
use clearair_proto::v1::{AnalyzeRequest, EncodedImage, clear_air_client::ClearAirClient};
use clearair_runtime::tls::{PeerTls, ServerTls};
use tonic::{
    Code, Request,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A certificate set made by the project's script in a fresh folder.
fn make_certs(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("clearair-certs-{name}-"))
        .tempdir()
        .expect("create a folder for the certificates");
    let status = std::process::Command::new(workspace().join("deploy/tls/make-certs.sh"))
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("deploy/tls/make-certs.sh runs (it needs openssl)");
    assert!(status.success(), "make-certs.sh failed: {status}");
    dir
}

/// Every server serves TLS and demands a client certificate from `certs`' CA; the orchestrator
/// dials its peers over TLS, presenting the client certificate only when `peers_present_cert`.
fn mutual_tls_mesh(certs: &Path, peers_present_cert: bool) -> MeshConfig {
    let mut config = test_config();
    for server in config.servers_mut() {
        server.tls = ServerTls {
            enabled: true,
            cert: certs.join("server.pem"),
            key: certs.join("server.key"),
            client_ca: certs.join("ca.pem"),
            ..ServerTls::default()
        };
    }
    let peer_tls = PeerTls {
        enabled: true,
        ca: certs.join("ca.pem"),
        cert: if peers_present_cert {
            certs.join("client.pem")
        } else {
            PathBuf::new()
        },
        key: if peers_present_cert {
            certs.join("client.key")
        } else {
            PathBuf::new()
        },
        ..PeerTls::default()
    };
    for peer in config.orchestrator.peers_mut() {
        peer.tls = peer_tls.clone();
        // A refused handshake should fail the call quickly, not after the default 2 s.
        peer.connect_timeout_ms = 1_000;
    }
    config
}

/// What a test client trusts and presents.
struct ClientCredentials<'a> {
    trusted_ca: &'a Path,
    identity: Option<&'a Path>,
}

async fn tls_channel(
    addr: SocketAddr,
    credentials: &ClientCredentials<'_>,
) -> Result<Channel, tonic::transport::Error> {
    let ca = std::fs::read(credentials.trusted_ca).expect("CA readable");
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(dir) = credentials.identity {
        let cert = std::fs::read(dir.join("client.pem")).expect("client cert readable");
        let key = std::fs::read(dir.join("client.key")).expect("client key readable");
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("valid URL")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

/// The health status a client gets, or the gRPC code of its failure (a refused handshake
/// surfaces as a failed connect or a failed first call, depending on the TLS version).
async fn health(addr: SocketAddr, credentials: &ClientCredentials<'_>) -> Result<i32, String> {
    let channel = tls_channel(addr, credentials)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// `Mesh::wait_ready` speaks plaintext, so readiness is polled here over mutual TLS.
async fn wait_ready_over_tls(mesh: &Mesh, certs: &Path) {
    let credentials = ClientCredentials {
        trusted_ca: &certs.join("ca.pem"),
        identity: Some(certs),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for service in Service::ALL {
        loop {
            match health(mesh.addr(service), &credentials).await {
                Ok(status) if status == ServingStatus::Serving as i32 => break,
                outcome => assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} not SERVING over mutual TLS: {outcome:?}",
                    service.name()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn analyze_request() -> AnalyzeRequest {
    AnalyzeRequest {
        image: Some(EncodedImage {
            data: photo(),
            media_type: String::new(),
        }),
        include_priors: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_speaks_mutual_tls() {
    let certs_dir = make_certs("every-hop");
    let certs = certs_dir.path();
    let mesh = Mesh::start(mutual_tls_mesh(certs, true))
        .await
        .expect("mesh starts");
    wait_ready_over_tls(&mesh, certs).await;

    let credentials = ClientCredentials {
        trusted_ca: &certs.join("ca.pem"),
        identity: Some(certs),
    };
    let channel = tls_channel(mesh.addr(Service::Orchestrator), &credentials)
        .await
        .expect("a client with the mesh's certificate connects");
    let mut client = ClearAirClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let response = client
        .restore(restore_request(photo()))
        .await
        .expect("restore over mutual TLS")
        .into_inner();
    // No fallback: the orchestrator reached all three priors and the restorer over mTLS.
    assert!(response.fallbacks.is_empty(), "{:?}", response.fallbacks);
    let restored = response.image.expect("a restored image");
    let decoded = clearair_imaging::decode(&restored.data, &Default::default())
        .expect("the restored image decodes")
        .image;
    assert_eq!(
        (decoded.width(), decoded.height()),
        (response.width, response.height)
    );
    mesh.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_the_right_certificate_are_refused() {
    let certs_dir = make_certs("refusals");
    let other_dir = make_certs("refusals-other-ca");
    let (certs, other) = (certs_dir.path(), other_dir.path());
    // The orchestrator's own peer channels present no client certificate.
    let mesh = Mesh::start(mutual_tls_mesh(certs, false))
        .await
        .expect("mesh starts");
    wait_ready_over_tls(&mesh, certs).await;
    let serving = Ok(ServingStatus::Serving as i32);

    for service in [
        Service::Orchestrator,
        Service::Quality,
        Service::Restoration,
    ] {
        let addr = mesh.addr(service);
        let name = service.name();
        let trusted_ca = certs.join("ca.pem");
        let right = ClientCredentials {
            trusted_ca: &trusted_ca,
            identity: Some(certs),
        };
        assert_eq!(
            health(addr, &right).await,
            serving,
            "{name}: the right client"
        );

        let no_certificate = ClientCredentials {
            trusted_ca: &trusted_ca,
            identity: None,
        };
        let refused = health(addr, &no_certificate).await;
        assert!(
            refused.is_err(),
            "{name}: no client certificate: {refused:?}"
        );

        let foreign_certificate = ClientCredentials {
            trusted_ca: &trusted_ca,
            identity: Some(other),
        };
        let refused = health(addr, &foreign_certificate).await;
        assert!(
            refused.is_err(),
            "{name}: a certificate of another CA: {refused:?}"
        );

        // And the client refuses a server its CA did not sign.
        let other_ca = other.join("ca.pem");
        let distrusting = ClientCredentials {
            trusted_ca: &other_ca,
            identity: Some(other),
        };
        let refused = health(addr, &distrusting).await;
        assert!(refused.is_err(), "{name}: untrusted server: {refused:?}");

        let plaintext = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .timeout(Duration::from_secs(10))
            .connect()
            .await;
        let refused = match plaintext {
            Ok(channel) => HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .map(|r| r.into_inner().status)
                .map_err(|s| s.code()),
            Err(_) => Err(Code::Unavailable),
        };
        assert!(refused.is_err(), "{name}: plaintext: {refused:?}");
    }

    // The model services refuse the orchestrator too when it has no client certificate: the
    // priors fall back and the restorer (which has no fallback) is unavailable.
    let channel = tls_channel(
        mesh.addr(Service::Orchestrator),
        &ClientCredentials {
            trusted_ca: &certs.join("ca.pem"),
            identity: Some(certs),
        },
    )
    .await
    .expect("the public client connects");
    let mut client = ClearAirClient::new(channel);
    let analysis = client
        .analyze(analyze_request())
        .await
        .expect("analyze answers with fallbacks")
        .into_inner();
    assert_eq!(analysis.fallbacks.len(), 3, "{:?}", analysis.fallbacks);
    let restore = client
        .restore(restore_request(photo()))
        .await
        .expect_err("the restorer refuses the orchestrator");
    // With TLS 1.3 the refusal arrives after the client's side of the handshake, as a closed
    // connection, which tonic reports as CANCELLED rather than UNAVAILABLE.
    assert!(
        matches!(restore.code(), Code::Unavailable | Code::Cancelled),
        "{restore:?}"
    );
    assert!(restore.message().starts_with("restoration"), "{restore:?}");
    mesh.shutdown().await.expect("clean shutdown");
}

/// A restore through the orchestrator that reached every model service (no fallback).
async fn restore_without_fallback(
    addr: SocketAddr,
    credentials: &ClientCredentials<'_>,
) -> Result<(), String> {
    let channel = tls_channel(addr, credentials)
        .await
        .map_err(|e| e.to_string())?;
    let response = ClearAirClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .restore(restore_request(photo()))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    if response.fallbacks.is_empty() {
        Ok(())
    } else {
        Err(format!("fallbacks {:?}", response.fallbacks))
    }
}

/// Replaces the certificate files in `live` with `from`'s, each by an atomic rename (as the
/// kubelet swaps a renewed Secret's files).
fn swap_in(from: &Path, live: &Path) {
    for name in [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        let staged = live.join(format!(".{name}.new"));
        std::fs::copy(from.join(name), &staged).expect("stage a certificate file");
        std::fs::rename(&staged, live.join(name)).expect("swap a certificate file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificates_apply_without_a_restart() {
    let (first_dir, renewed_dir, live_dir) = (
        make_certs("renewal-first"),
        make_certs("renewal-renewed"),
        tempfile::tempdir().expect("a folder for the mounted certificates"),
    );
    let (first, renewed, live) = (first_dir.path(), renewed_dir.path(), live_dir.path());
    swap_in(first, live);
    let mut config = mutual_tls_mesh(live, true);
    for server in config.servers_mut() {
        server.tls.reload_interval_ms = 200;
    }
    // The model services age connections out fast, so after the renewal the orchestrator
    // must dial them again — which only works if its own client certificate and trusted CA
    // were reloaded too.
    for server in [
        &mut config.quality.server,
        &mut config.segmentation.server,
        &mut config.degradation.server,
        &mut config.restoration.server,
    ] {
        server.max_connection_age_ms = 1_000;
    }
    for peer in config.orchestrator.peers_mut() {
        peer.tls.reload_interval_ms = 200;
    }
    let mesh = Mesh::start(config).await.expect("mesh starts");
    wait_ready_over_tls(&mesh, first).await;
    let old = ClientCredentials {
        trusted_ca: &first.join("ca.pem"),
        identity: Some(first),
    };
    let new = ClientCredentials {
        trusted_ca: &renewed.join("ca.pem"),
        identity: Some(renewed),
    };
    restore_without_fallback(mesh.addr(Service::Orchestrator), &old)
        .await
        .expect("restore with the first certificates");

    // The renewal: a new CA, new server and client certificates, swapped under the running
    // mesh (a whole new CA is the hardest case: nothing of the old set is trusted after it).
    swap_in(renewed, live);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for service in Service::ALL {
        let name = service.name();
        loop {
            let now_new = health(mesh.addr(service), &new).await;
            if now_new == Ok(ServingStatus::Serving as i32) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never took the renewed certificates: {now_new:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let now_old = health(mesh.addr(service), &old).await;
        assert!(
            now_old.is_err(),
            "{name}: a new connection with the old set still works: {now_old:?}"
        );
    }
    // Every connection the orchestrator made with the old set has aged out by now.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut outcome = Err("not tried".to_owned());
    for _ in 0..3 {
        // A call that meets a connection's GOAWAY may fail once; one with a stale client
        // certificate fails every time.
        outcome = restore_without_fallback(mesh.addr(Service::Orchestrator), &new).await;
        if outcome.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    outcome.expect("restore through every hop with the renewed certificates");

    // One process, one registry: every service's counters are on this page.
    let page = clearair_runtime::metrics::global().render();
    for side in ["server", "client"] {
        let applied = page
            .lines()
            .filter(|l| l.starts_with("clearair_tls_reloads_total{"))
            .filter(|l| l.contains(&format!("side=\"{side}\"")) && l.contains("result=\"ok\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert!(applied >= 4.0, "{side} reloads counted: {applied}\n{page}");
    }
    mesh.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_api_requires_the_bearer_token() {
    let mesh = start_mesh(|config| {
        config.orchestrator.server.auth.bearer_token = "correct-horse-battery-staple".to_owned();
    })
    .await;
    let mut client = public_client(&mesh).await;

    let missing = client
        .analyze(analyze_request())
        .await
        .expect_err("no token");
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert!(missing.message().contains("authorization"), "{missing:?}");

    let mut wrong = Request::new(analyze_request());
    wrong.metadata_mut().insert(
        "authorization",
        "Bearer correct-horse-battery-stapler".parse().unwrap(),
    );
    let wrong = client.analyze(wrong).await.expect_err("wrong token");
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");

    let mut right = Request::new(analyze_request());
    right.metadata_mut().insert(
        "authorization",
        "Bearer correct-horse-battery-staple".parse().unwrap(),
    );
    let analysis = client
        .analyze(right)
        .await
        .expect("the right token passes")
        .into_inner();
    assert!(analysis.fallbacks.is_empty(), "{:?}", analysis.fallbacks);

    // Probes cannot send metadata: health stays open.
    let channel = Endpoint::from_shared(mesh.url(Service::Orchestrator))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("health needs no token")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    mesh.shutdown().await.expect("clean shutdown");
}
