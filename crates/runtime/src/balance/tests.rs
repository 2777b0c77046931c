use std::sync::Mutex as StdMutex;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("valid address")
}

/// A resolver whose answer the test changes; `None` answers with an error.
fn fake_dns(answer: Arc<StdMutex<Option<Vec<SocketAddr>>>>) -> Resolver {
    Arc::new(move |host: String, _port: u16| {
        let answer = answer.lock().unwrap().clone();
        Box::pin(
            async move { answer.ok_or_else(|| io::Error::other(format!("{host}: no such host"))) },
        )
    })
}

fn channel(urls: &[&str], resolve: Resolver) -> BalancedChannel {
    BalancedChannel::with_resolver(
        &PeerConfig::default(),
        urls.iter().map(|u| (*u).to_owned()).collect(),
        resolve,
    )
    .expect("valid peer")
}

/// The value of `metric{peer="<peer>"}` on the metrics page.
fn peer_metric(metric: &str, peer: &str) -> Option<f64> {
    let wanted = format!("{metric}{{peer=\"{peer}\"}} ");
    crate::metrics::global()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&wanted)?.parse().ok())
}

fn sorted(mut list: Vec<SocketAddr>) -> Vec<SocketAddr> {
    list.sort();
    list
}

#[test]
fn targets_parse_with_default_ports_and_bracketless_ipv6() {
    let target = Target::parse("http://restoration:50055").unwrap();
    assert_eq!(
        (target.scheme, target.host.as_str()),
        ("http", "restoration")
    );
    assert_eq!((target.port, target.address()), (50055, None));
    assert_eq!(Target::parse("https://quality").unwrap().port, 443);
    assert_eq!(Target::parse("http://quality").unwrap().port, 80);
    let v6 = Target::parse("http://[::1]:50052").unwrap();
    assert_eq!(v6.address(), Some(addr("[::1]:50052")));
    let v4 = Target::parse("http://127.0.0.3:9").unwrap();
    assert_eq!(v4.address(), Some(addr("127.0.0.3:9")));
    for bad in [
        "quality:50052",
        "ftp://quality:1",
        "http://:50052",
        "not a url",
    ] {
        assert!(Target::parse(bad).is_err(), "{bad} must be refused");
    }
}

#[tokio::test]
async fn ip_literals_are_replicas_at_once_and_listed_twice_count_once() {
    let never = fake_dns(Arc::new(StdMutex::new(None)));
    let channel = channel(
        &[
            "http://127.0.0.2:7",
            "http://127.0.0.3:7",
            "http://127.0.0.2:7",
        ],
        never,
    );
    assert_eq!(
        channel.replicas(),
        vec![addr("127.0.0.2:7"), addr("127.0.0.3:7")]
    );
}

#[tokio::test]
async fn the_replica_set_follows_dns_and_keeps_the_connections_of_addresses_that_stay() {
    let answer = Arc::new(StdMutex::new(Some(vec![
        addr("10.0.0.1:50055"),
        addr("10.0.0.2:50055"),
    ])));
    let channel = channel(
        &["http://restoration-scaled:50055"],
        fake_dns(answer.clone()),
    );
    assert!(
        channel.replicas().is_empty(),
        "nothing resolved before the first refresh"
    );

    channel.peer.refresh().await;
    assert_eq!(
        sorted(channel.replicas()),
        vec![addr("10.0.0.1:50055"), addr("10.0.0.2:50055")]
    );
    let before = channel.peer.replicas();
    let stays = before.iter().find(|r| r.address == addr("10.0.0.2:50055"));

    // Scaled: one pod left, two arrived.
    *answer.lock().unwrap() = Some(vec![
        addr("10.0.0.2:50055"),
        addr("10.0.0.3:50055"),
        addr("10.0.0.4:50055"),
    ]);
    channel.peer.refresh().await;
    assert_eq!(
        sorted(channel.replicas()),
        vec![
            addr("10.0.0.2:50055"),
            addr("10.0.0.3:50055"),
            addr("10.0.0.4:50055")
        ]
    );
    let after = channel.peer.replicas();
    let kept = after.iter().find(|r| r.address == addr("10.0.0.2:50055"));
    assert!(
        Arc::ptr_eq(stays.unwrap(), kept.unwrap()),
        "an address that stays keeps its replica (and connection)"
    );

    assert_eq!(
        peer_metric("clearair_peer_replicas", "http://restoration-scaled:50055"),
        Some(3.0)
    );

    // A failed resolution keeps the replicas that serve.
    *answer.lock().unwrap() = None;
    channel.peer.refresh().await;
    assert_eq!(channel.replicas().len(), 3);
    assert_eq!(
        peer_metric("clearair_peer_replicas", "http://restoration-scaled:50055"),
        Some(3.0)
    );
}

#[tokio::test]
async fn a_call_with_no_replica_says_why() {
    let mut channel = channel(
        &["http://restoration:50055"],
        fake_dns(Arc::new(StdMutex::new(None))),
    );
    let error = channel
        .call(http::Request::new(Body::empty()))
        .await
        .expect_err("nothing to call");
    let status = Status::from_error(error);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("restoration: no such host"),
        "{status:?}"
    );
}

#[tokio::test]
async fn idle_replicas_are_taken_in_turn_and_busy_or_unreachable_ones_last() {
    let urls = [
        "http://127.0.0.2:7",
        "http://127.0.0.3:7",
        "http://127.0.0.4:7",
    ];
    let channel = channel(&urls, fake_dns(Arc::new(StdMutex::new(None))));
    let peer = &channel.peer;
    let picks: Vec<SocketAddr> = (0..6).map(|_| peer.pick(&[]).unwrap().address).collect();
    for replica in channel.replicas() {
        assert_eq!(
            picks.iter().filter(|a| **a == replica).count(),
            2,
            "{picks:?}"
        );
    }

    let replicas = peer.replicas();
    let busy = InFlight::enter(&replicas[0]);
    let also_busy = InFlight::enter(&replicas[0]);
    replicas[1].unreachable();
    for _ in 0..4 {
        assert_eq!(peer.pick(&[]).unwrap().address, replicas[2].address);
    }
    drop(also_busy);
    // Once the only healthy one is tried, the busy one comes before the unreachable one.
    let tried = [replicas[2].address];
    assert_eq!(peer.pick(&tried).unwrap().address, replicas[0].address);
    drop(busy);

    // A replica skipped for a while does not hand its turns to one neighbour: the idle ones
    // still alternate.
    let mut turns = Vec::new();
    for _ in 0..4 {
        turns.push(peer.pick(&[]).unwrap().address);
    }
    assert!(
        turns[0] != turns[1] && turns[0] == turns[2] && turns[1] == turns[3],
        "the idle replicas alternate: {turns:?}"
    );
    assert!(
        !turns.contains(&replicas[1].address),
        "replica 1 is passed over"
    );
    let all = [
        replicas[0].address,
        replicas[1].address,
        replicas[2].address,
    ];
    assert!(peer.pick(&all).is_none(), "every replica tried");
}

#[test]
fn an_unreachable_replica_is_passed_over_for_a_doubling_capped_time() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let dial = Dial {
        connect_timeout: Duration::from_secs(1),
        tls: None,
        tls_files: None,
        tls_domain_given: false,
    };
    let target = Target::parse("http://127.0.0.2:7").unwrap();
    let replica = dial.replica(&target, addr("127.0.0.2:7")).unwrap();
    let waits: Vec<u64> = (0..8).map(|_| replica.unreachable().as_secs()).collect();
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    assert!(replica.set_aside(Instant::now()));
    replica.reached();
    assert!(!replica.set_aside(Instant::now()));
    assert_eq!(
        replica.unreachable().as_secs(),
        1,
        "a reached replica starts over"
    );
}

#[tokio::test]
async fn a_refused_connection_goes_to_the_next_replica_and_is_never_sent_twice() {
    // Nothing listens on these ports: every attempt is a refused connection.
    let free = |ip: &str| {
        std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (a, b) = (free("127.0.0.1"), free("127.0.0.1"));
    let urls = [format!("http://{a}"), format!("http://{b}")];
    let mut channel = BalancedChannel::with_resolver(
        &PeerConfig::default(),
        urls.to_vec(),
        fake_dns(Arc::new(StdMutex::new(None))),
    )
    .unwrap();
    let request = http::Request::builder()
        .uri("/clearair.v1.RestorationService/Restore")
        .body(Body::empty())
        .unwrap();
    let status = Status::from_error(channel.call(request).await.expect_err("nobody listens"));
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("none of its 2 replica(s)"),
        "{status:?}"
    );
    let now = Instant::now();
    assert!(channel.peer.replicas().iter().all(|r| r.set_aside(now)));
    let label = urls.join(", ");
    assert_eq!(peer_metric("clearair_peer_replicas", &label), Some(2.0));
    assert_eq!(
        peer_metric("clearair_peer_unreachable_total", &label),
        Some(2.0),
        "both replicas were tried once"
    );
}
