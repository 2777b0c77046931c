//! The orchestrator spreads its calls over every replica of a peer: three restoration
//! processes on 127.0.0.2–4 each serve a fair share, and a replica killed outright costs no
//! call beyond those in flight on it. Also: the public server closes connections past their
//! age, so clients re-spread over scaled-out orchestrators.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use clearair_e2e::{photo, public_client, restore_request, scrape_metrics, start_mesh};
use clearair_mesh::Service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The restorations a replica served, as its own `/metrics` counts them.
const RESTORES: &str = r#"clearair_requests_total{code="OK",method="/clearair.v1.RestorationService/Restore",service="restoration"}"#;

/// A restoration server in a process of its own.
struct Replica {
    child: Child,
    grpc: SocketAddr,
    metrics: SocketAddr,
}

impl Replica {
    /// Starts a replica on `ip` (a loopback address of its own).
    fn start(ip: &str) -> Self {
        // A free port for its metrics: nothing else binds this loopback address.
        let metrics = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("{ip} is not a usable loopback address: {e}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_clearair-e2e-replica"))
            .args([format!("{ip}:0"), metrics.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the replica binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the replica says where it listens");
        let grpc = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            child,
            grpc,
            metrics,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    async fn wait_serving(&mut self) {
        for _ in 0..2400 {
            if let Some(status) = self.child.try_wait().expect("child state") {
                panic!("replica {} exited: {status}", self.grpc);
            }
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(self.url())
                .expect("valid URL")
                .connect()
                .await
            {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(reply) = HealthClient::new(channel).check(request).await
                    && reply.get_ref().status == ServingStatus::Serving as i32
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica {} never became SERVING", self.grpc);
    }

    /// Restorations served so far.
    async fn restores(&self) -> u64 {
        scrape_metrics(self.metrics)
            .await
            .lines()
            .find_map(|l| l.strip_prefix(RESTORES))
            .map_or(0, |v| v.trim().parse().expect("a count"))
    }

    /// SIGKILL: no drain, no goodbye on its connections.
    fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn counts(replicas: &[Replica]) -> Vec<u64> {
    let mut counts = Vec::new();
    for replica in replicas {
        counts.push(replica.restores().await);
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_over_every_replica_and_a_killed_one_loses_none_beyond_its_own() {
    let mut replicas: Vec<Replica> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .into_iter()
        .map(Replica::start)
        .collect();
    for replica in &mut replicas {
        replica.wait_serving().await;
    }
    let urls: Vec<String> = replicas.iter().map(Replica::url).collect();
    let mesh = start_mesh(|config| config.orchestrator.restoration.endpoints = urls).await;
    let mut client = public_client(&mesh).await;

    // One call at a time: each replica in turn.
    for _ in 0..9 {
        client
            .restore(restore_request(photo()))
            .await
            .expect("restored");
    }
    assert_eq!(counts(&replicas).await, vec![3, 3, 3], "a fair share each");

    // Killed between calls: nothing was in flight on it, so no call fails.
    replicas[1].kill();
    for call in 0..6 {
        client
            .restore(restore_request(photo()))
            .await
            .unwrap_or_else(|e| panic!("call {call} after the kill: {e:?}"));
    }
    let after = [&replicas[0], &replicas[2]];
    let mut survivors = Vec::new();
    for replica in after {
        survivors.push(replica.restores().await);
    }
    assert_eq!(survivors.iter().sum::<u64>(), 12, "{survivors:?}");
    assert!(
        survivors.iter().all(|&n| n >= 5),
        "the survivors share the calls: {survivors:?}"
    );

    // Killed under load: only the calls in flight on it may fail (at most one per caller).
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut failed = 0;
                for _ in 0..4 {
                    if client.restore(restore_request(photo())).await.is_err() {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    replicas[2].kill();
    let mut failed = 0;
    for caller in callers {
        failed += caller.await.expect("caller");
    }
    assert!(
        failed <= 3,
        "{failed} calls failed; at most 3 were in flight"
    );
    // The last replica serves on.
    client
        .restore(restore_request(photo()))
        .await
        .expect("the last replica serves");
    mesh.shutdown().await.unwrap();
}

/// Reads HTTP/2 frames from `stream` until the server says GOAWAY or closes it (true), or
/// `limit` passes (false). (A graceful close waits for a PING answer this client never sends,
/// so the GOAWAY itself is the sign.)
async fn goaway_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    const GOAWAY: u8 = 0x7;
    tokio::time::timeout(limit, async {
        let mut header = [0u8; 9];
        loop {
            if stream.read_exact(&mut header).await.is_err() {
                return;
            }
            if header[3] == GOAWAY {
                return;
            }
            let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; length];
            if stream.read_exact(&mut payload).await.is_err() {
                return;
            }
        }
    })
    .await
    .is_ok()
}

/// An HTTP/2 connection to `addr` that says hello and nothing more.
async fn idle_http2_connection(addr: SocketAddr) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The client preface and an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_server_closes_connections_past_their_age() {
    let mesh = start_mesh(|config| config.orchestrator.server.max_connection_age_ms = 300).await;
    let mut aged = idle_http2_connection(mesh.addr(Service::Orchestrator)).await;
    assert!(
        goaway_within(&mut aged, Duration::from_secs(10)).await,
        "the connection outlived its age"
    );
    mesh.shutdown().await.unwrap();

    // Without an age, the same connection stays open.
    let mesh = start_mesh(|config| config.orchestrator.server.max_connection_age_ms = 0).await;
    let mut open = idle_http2_connection(mesh.addr(Service::Orchestrator)).await;
    assert!(
        !goaway_within(&mut open, Duration::from_secs(2)).await,
        "closed without an age"
    );
    drop(open);
    mesh.shutdown().await.unwrap();
}
