//! `clearair-e2e-replica <grpc address> <metrics address>`: one restoration server (the tests'
//! settings: random-init network, small tiles) as a process of its own, so a test can run
//! several replicas, read each one's `/metrics` and kill one outright
//! (`tests/tests/balancing.rs`). Prints `listening <address>` once bound, then serves until
//! killed.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let usage = "usage: clearair-e2e-replica <grpc address> <metrics address>";
    let mut args = std::env::args().skip(1);
    let (listen, metrics) = (args.next().expect(usage), args.next().expect(usage));
    let mut config = clearair_e2e::test_config().restoration;
    config.server.listen.clone_from(&listen);
    clearair_runtime::metrics::spawn_metrics_endpoint(&metrics, std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("cannot serve metrics on {metrics}: {e}"));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("cannot bind {listen}: {e}"));
    println!(
        "listening {}",
        listener.local_addr().expect("bound listener")
    );
    clearair_restoration::serve(config, listener, std::future::pending())
        .await
        .expect("the replica serves until killed");
}
