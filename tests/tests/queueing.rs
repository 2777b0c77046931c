//! Requests waiting in a service's admission queue have sent their headers but not had their
//! bodies read. Their unread data holds HTTP/2 flow-control credit of the connection they share
//! with the requests that hold the slots; if the queued ones could take all of it, the running
//! ones could never receive the rest of their bodies and the service would stall with an idle
//! CPU. A burst of large requests, deeper than the slots, must all be answered.

use std::time::Duration;

use clearair_e2e::{fixture, public_client, restore_request, start_mesh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_large_requests_drains_instead_of_stalling() {
    const BURST: usize = 12;
    let mesh = start_mesh(|config| {
        // One slot and a deep queue: every restore after the first waits, and each carries a
        // 256×256 image and 256×256 masks to the restorer (about 300 KB, several times
        // HTTP/2's default 64 KiB window), all over the orchestrator's one connection.
        config.restoration.server.max_concurrency = 1;
        config.restoration.server.max_queue = BURST;
        config.restoration.tile_size = 256;
        config.orchestrator.server.max_concurrency = BURST;
        config.orchestrator.server.max_queue = BURST;
    })
    .await;
    let client = public_client(&mesh).await;
    // A 256×256 sample; distinct requests would only add prior work, the same image is enough
    // (the prior cache answers, the restorer still runs every time).
    let image = fixture("samples/noisy-coffee.png");

    let calls: Vec<_> = (0..BURST)
        .map(|_| {
            let mut client = client.clone();
            let image = image.clone();
            tokio::spawn(async move { client.restore(restore_request(image)).await.map(|_| ()) })
        })
        .collect();
    // Not a speed check: a stalled queue never finishes, a working one finishes in seconds to
    // a few minutes on a loaded 2-core machine.
    let outcomes = tokio::time::timeout(Duration::from_secs(600), futures::future::join_all(calls))
        .await
        .expect(
            "the queued restores stalled: flow control deadlock between queued and running calls",
        );
    for outcome in outcomes {
        outcome
            .expect("the call task")
            .expect("every queued restore is answered");
    }
}
