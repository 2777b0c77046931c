//! The web front of the public API, spoken to as a browser does — HTTP/1.1, gRPC-Web frames
//! by hand: the page and its files, Restore / Analyze / RestoreStream with the same answers as
//! native gRPC, errors worded the same, the bearer token and metrics shared with the native
//! listener, CORS only for configured origins, and the internal services out of reach.

use std::net::SocketAddr;

use clearair_e2e::{fixture, photo, public_client, restore_request, start_mesh};
use clearair_mesh::Mesh;
use clearair_proto::v1::{
    AnalyzeRequest, AnalyzeResponse, ClearAirRestoreResponse, EncodedImage, RestoreStreamHeader,
    RestoreStreamRequest, RestoreStreamResponse, restore_stream_request::Part,
    restore_stream_response::Event,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prost::Message;

const GRPC_WEB: &str = "application/grpc-web+proto";

struct Reply {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

/// One HTTP/1.1 request on a fresh connection, as a browser would send it.
async fn send(web: SocketAddr, request: http::Request<Full<Bytes>>) -> Reply {
    let stream = tokio::net::TcpStream::connect(web)
        .await
        .expect("web front reachable");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("the whole body")
        .to_bytes()
        .to_vec();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get(web: SocketAddr, method: &str, path: &str) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", web.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(web, request).await
}

fn frames(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.push(0);
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
    }
    out
}

/// A gRPC-Web call: the response's messages and its status (code, message) from the trailer
/// frame, or from the headers of a trailers-only response.
async fn grpc_web(
    web: SocketAddr,
    method: &str,
    messages: &[Vec<u8>],
    token: Option<&str>,
) -> (Vec<Vec<u8>>, i32, String) {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("/clearair.v1.ClearAir/{method}"))
        .header("host", web.to_string())
        .header("content-type", GRPC_WEB)
        .header("accept", GRPC_WEB)
        .header("x-grpc-web", "1");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let reply = send(
        web,
        request
            .body(Full::new(Bytes::from(frames(messages))))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "gRPC-Web answers HTTP 200");
    assert!(
        reply.header("content-type").starts_with(GRPC_WEB),
        "{:?}",
        reply.headers
    );
    if let Some(code) = reply.headers.get("grpc-status") {
        let message = reply.header("grpc-message").to_owned();
        return (Vec::new(), code.to_str().unwrap().parse().unwrap(), message);
    }
    let (mut out, mut status) = (Vec::new(), None);
    let mut body = &reply.body[..];
    while !body.is_empty() {
        assert!(body.len() >= 5, "a truncated frame header");
        let flag = body[0];
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + length];
        body = &body[5 + length..];
        if flag & 0x80 != 0 {
            let text = std::str::from_utf8(payload).unwrap();
            let field = |name: &str| {
                text.split("\r\n")
                    .find_map(|line| line.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            status = Some((
                field("grpc-status:").expect("grpc-status").parse().unwrap(),
                field("grpc-message:").unwrap_or_default(),
            ));
        } else {
            assert!(status.is_none(), "no message after the trailers");
            out.push(payload.to_vec());
        }
    }
    let (code, message) = status.expect("a trailer frame");
    (out, code, message)
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// `GET /` and a gRPC-Web Analyze over HTTPS, trusting `ca`.
async fn over_tls(web: SocketAddr, ca: &std::path::Path) -> (http::StatusCode, Option<String>) {
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut results = Vec::new();
    for grpc in [false, true] {
        let tcp = tokio::net::TcpStream::connect(web).await.unwrap();
        let stream = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake with the web front");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = if grpc {
            let analyze = AnalyzeRequest {
                image: Some(EncodedImage {
                    data: photo(),
                    media_type: String::new(),
                }),
                include_priors: false,
            };
            http::Request::builder()
                .method("POST")
                .uri("/clearair.v1.ClearAir/Analyze")
                .header("host", "localhost")
                .header("content-type", GRPC_WEB)
                .body(Full::new(Bytes::from(frames(&[analyze.encode_to_vec()]))))
                .unwrap()
        } else {
            http::Request::builder()
                .uri("/")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap();
        let trailers = body.trailers().cloned();
        let bytes = body.to_bytes();
        let grpc_status = trailers
            .and_then(|t| t.get("grpc-status").map(|v| v.to_str().unwrap().to_owned()))
            .or_else(|| {
                // The trailer frame at the end of the body.
                let text = String::from_utf8_lossy(&bytes);
                text.split("grpc-status:")
                    .nth(1)
                    .map(|v| v.trim().chars().take_while(char::is_ascii_digit).collect())
            });
        results.push((status, grpc_status));
    }
    assert_eq!(results[0].0, 200, "the page over HTTPS");
    results.pop().unwrap()
}

async fn web_mesh(customize: impl FnOnce(&mut clearair_mesh::MeshConfig)) -> (Mesh, SocketAddr) {
    let mesh = start_mesh(|config| {
        config.orchestrator.web.listen = "127.0.0.1:0".to_owned();
        customize(config);
    })
    .await;
    let web = mesh.web_addr().expect("the web front is bound");
    (mesh, web)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served() {
    let (mesh, web) = web_mesh(|_| {}).await;

    let page = get(web, "GET", "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'self'")
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains("<script type=\"module\" src=\"/app.js\">"),
        "{html}"
    );

    for (path, content_type) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/wire.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let file = get(web, "GET", path).await;
        assert_eq!(file.status, 200, "{path}");
        assert_eq!(file.header("content-type"), content_type, "{path}");
        assert!(!file.body.is_empty(), "{path}");
    }
    let sample = get(web, "GET", "/samples/noisy-coffee.png").await;
    assert_eq!(sample.status, 200);
    assert_eq!(sample.body, fixture("samples/noisy-coffee.png"));
    let head = get(web, "HEAD", "/samples/noisy-coffee.png").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), sample.body.len().to_string());

    assert_eq!(get(web, "GET", "/nope").await.status, 404);
    assert_eq!(get(web, "GET", "/../Cargo.toml").await.status, 404);
    let delete = get(web, "DELETE", "/").await;
    assert_eq!(delete.status, 405);
    assert!(delete.header("allow").contains("GET"));
    mesh.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_answers_as_native_grpc_does() {
    let (mesh, web) = web_mesh(|_| {}).await;
    let mut native = public_client(&mesh).await;
    let expected = native
        .restore(restore_request(photo()))
        .await
        .expect("native Restore")
        .into_inner();

    // Restore: the same restored image, summary and size.
    let request = restore_request(photo()).encode_to_vec();
    let (messages, code, message) = grpc_web(web, "Restore", &[request], None).await;
    assert_eq!(code, 0, "{message}");
    assert_eq!(messages.len(), 1);
    let response = ClearAirRestoreResponse::decode(&messages[0][..]).unwrap();
    assert_eq!(
        response.image.as_ref().unwrap().data,
        expected.image.as_ref().unwrap().data,
        "the same restored image as over native gRPC"
    );
    assert_eq!(
        (response.width, response.height),
        (expected.width, expected.height)
    );
    assert_eq!(response.priors, expected.priors);

    // Analyze with the full priors: the masks the page overlays.
    let analyze = AnalyzeRequest {
        image: Some(EncodedImage {
            data: photo(),
            media_type: String::new(),
        }),
        include_priors: true,
    };
    let (messages, code, message) =
        grpc_web(web, "Analyze", &[analyze.encode_to_vec()], None).await;
    assert_eq!(code, 0, "{message}");
    let analysis = AnalyzeResponse::decode(&messages[0][..]).unwrap();
    let masks = analysis.masks.expect("masks");
    assert_eq!(
        (masks.width, masks.height),
        (response.width, response.height)
    );
    assert!(masks.count > 0);

    // A bad upload: the status and words native gRPC gives.
    let garbage = restore_request(b"this is not an image".to_vec());
    let native_error = native
        .restore(garbage.clone())
        .await
        .expect_err("garbage is refused");
    let (messages, code, message) =
        grpc_web(web, "Restore", &[garbage.encode_to_vec()], None).await;
    assert!(messages.is_empty());
    assert_eq!(code, native_error.code() as i32, "{message}");
    assert_eq!(percent_decoded(&message), native_error.message());

    // The internal services and the probes are not on the web front.
    let (_, code, _) = {
        let request = http::Request::builder()
            .method("POST")
            .uri("/clearair.v1.RestorationService/Restore")
            .header("host", web.to_string())
            .header("content-type", GRPC_WEB)
            .body(Full::new(Bytes::from(frames(&[Vec::new()]))))
            .unwrap();
        let reply = send(web, request).await;
        let code: i32 = reply.header("grpc-status").parse().expect("a gRPC status");
        ((), code, ())
    };
    assert_eq!(code, tonic::Code::Unimplemented as i32);
    mesh.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_stream_over_grpc_web_sends_progress_then_the_result() {
    let (mesh, web) = web_mesh(|_| {}).await;
    let data = fixture("samples/hazy-building.png");
    let expected = public_client(&mesh)
        .await
        .restore(restore_request(data.clone()))
        .await
        .expect("native Restore")
        .into_inner();

    // The whole upload in one body, as a browser sends it: the header, then 16 KiB chunks.
    let mut messages = vec![
        RestoreStreamRequest {
            part: Some(Part::Header(RestoreStreamHeader {
                total_bytes: data.len() as u64,
                chunk_bytes: 32 << 10,
                ..RestoreStreamHeader::default()
            })),
        }
        .encode_to_vec(),
    ];
    for chunk in data.chunks(16 << 10) {
        messages.push(
            RestoreStreamRequest {
                part: Some(Part::Chunk(chunk.to_vec())),
            }
            .encode_to_vec(),
        );
    }
    let (replies, code, message) = grpc_web(web, "RestoreStream", &messages, None).await;
    assert_eq!(code, 0, "{message}");
    let events: Vec<Event> = replies
        .iter()
        .map(|m| {
            RestoreStreamResponse::decode(&m[..])
                .unwrap()
                .event
                .unwrap()
        })
        .collect();
    let first_result = events
        .iter()
        .position(|e| matches!(e, Event::Result(_)))
        .expect("a result header");
    assert!(
        events[..first_result]
            .iter()
            .all(|e| matches!(e, Event::Progress(_))),
        "progress events come first"
    );
    assert!(first_result > 0, "at least one progress event");
    let Event::Result(result) = &events[first_result] else {
        unreachable!()
    };
    let restored: Vec<u8> = events[first_result + 1..]
        .iter()
        .flat_map(|e| match e {
            Event::Chunk(bytes) => bytes.clone(),
            other => panic!("only chunks after the result: {other:?}"),
        })
        .collect();
    assert_eq!(restored.len() as u64, result.total_bytes);
    assert!(
        events.len() - first_result - 1 > 1,
        "the result came in chunks"
    );
    assert_eq!(restored, expected.image.unwrap().data);
    mesh.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_metrics_are_those_of_native_grpc() {
    const TOKEN: &str = "correct-horse-battery-staple";
    let (mesh, web) = web_mesh(|config| {
        config.orchestrator.server.auth.bearer_token = TOKEN.to_owned();
    })
    .await;
    let refused = r#"clearair_requests_total{code="UNAUTHENTICATED",method="/clearair.v1.ClearAir/Analyze",service="orchestrator"}"#;
    let count = || {
        clearair_runtime::metrics::global()
            .render()
            .lines()
            .find(|l| l.starts_with(refused))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = count();
    let analyze = AnalyzeRequest {
        image: Some(EncodedImage {
            data: photo(),
            media_type: String::new(),
        }),
        include_priors: false,
    }
    .encode_to_vec();

    let (_, code, message) = grpc_web(web, "Analyze", std::slice::from_ref(&analyze), None).await;
    assert_eq!(code, tonic::Code::Unauthenticated as i32, "{message}");
    let (_, code, _) = grpc_web(
        web,
        "Analyze",
        std::slice::from_ref(&analyze),
        Some("wrong"),
    )
    .await;
    assert_eq!(code, tonic::Code::Unauthenticated as i32);
    let (messages, code, message) = grpc_web(web, "Analyze", &[analyze], Some(TOKEN)).await;
    assert_eq!(code, 0, "{message}");
    assert_eq!(messages.len(), 1);
    assert_eq!(
        count() - before,
        2.0,
        "both refusals counted by the same metrics"
    );
    mesh.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_admits_only_the_configured_origins() {
    let (mesh, web) = web_mesh(|config| {
        config.orchestrator.web.allowed_origins = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        http::Request::builder()
            .method("OPTIONS")
            .uri("/clearair.v1.ClearAir/Restore")
            .header("host", web.to_string())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization,grpc-timeout",
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let allowed = send(web, preflight("https://app.example.com")).await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    let headers = allowed.header("access-control-allow-headers").to_owned();
    for name in [
        "content-type",
        "x-grpc-web",
        "authorization",
        "grpc-timeout",
    ] {
        assert!(headers.contains(name), "{name} not in {headers}");
    }
    let other = send(web, preflight("https://evil.example.com")).await;
    assert!(
        other.headers.get("access-control-allow-origin").is_none(),
        "{:?}",
        other.headers
    );

    // An actual call from the allowed origin exposes the status headers to its script.
    let call = http::Request::builder()
        .method("POST")
        .uri("/clearair.v1.ClearAir/Restore")
        .header("host", web.to_string())
        .header("origin", "https://app.example.com")
        .header("content-type", GRPC_WEB)
        .body(Full::new(Bytes::from(frames(&[restore_request(
            b"not an image".to_vec(),
        )
        .encode_to_vec()]))))
        .unwrap();
    let reply = send(web, call).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(
        reply
            .header("access-control-expose-headers")
            .contains("grpc-status")
    );
    mesh.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_server_tls_the_web_front_speaks_https() {
    let certs = tempfile::Builder::new()
        .prefix("clearair-web-certs-")
        .tempdir()
        .unwrap();
    let status =
        std::process::Command::new(clearair_e2e::workspace().join("deploy/tls/make-certs.sh"))
            .arg(certs.path())
            .status()
            .expect("deploy/tls/make-certs.sh runs (it needs openssl)");
    assert!(status.success());
    let dir = certs.path();
    // Not `start_mesh`: its readiness poll speaks plaintext. The web front's listener is bound
    // before `Mesh::start` returns, so the first connection waits for the server to accept it.
    let mut config = clearair_e2e::test_config();
    config.orchestrator.web.listen = "127.0.0.1:0".to_owned();
    config.orchestrator.server.tls = clearair_runtime::tls::ServerTls {
        enabled: true,
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ..Default::default()
    };
    let mesh = Mesh::start(config).await.expect("mesh starts");
    let web = mesh.web_addr().expect("the web front is bound");

    let (status, grpc_status) = over_tls(web, &certs.path().join("ca.pem")).await;
    assert_eq!(status, 200);
    assert_eq!(
        grpc_status.as_deref(),
        Some("0"),
        "gRPC-Web Analyze over HTTPS"
    );

    // Plain HTTP to the TLS listener gets no page.
    let tcp = tokio::net::TcpStream::connect(web).await.unwrap();
    let plain = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = http::Request::builder()
            .uri("/")
            .header("host", web.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        sender.send_request(request).await.ok()
    };
    let answered = tokio::time::timeout(std::time::Duration::from_secs(10), plain)
        .await
        .ok()
        .flatten();
    assert!(
        answered.is_none_or(|r| r.status() != 200),
        "no plaintext page on a TLS listener"
    );
    mesh.shutdown().await.expect("clean shutdown");
}
