//! Spreading a peer's calls over every replica of it.
//!
//! A peer is reached at one URL (`endpoint`) or a list (`endpoints`). An IP address in a URL
//! is one replica; a DNS name is every address it resolves to — a Kubernetes headless Service
//! names each ready pod — re-resolved every `resolve_interval_ms`, so replicas the autoscaler
//! adds get calls and replicas that leave are dropped. Each replica has its own lazily
//! connected HTTP/2 channel: one connection per replica, where a ClusterIP Service would pin
//! every call of an orchestrator to one pod.
//!
//! A call goes to the replica with the fewest calls in flight, ties to the one that waited
//! longest for a call (so idle replicas are taken in turn, even when one is skipped). A replica
//! that cannot be connected to is passed over for a back-off (1 s, doubling to 30 s) and the
//! call goes to the next one: it never reached a server, so sending it again is safe. A call
//! that reached a replica is never sent again — only the calls in flight on a replica that
//! dies are lost. The request's single message is kept for that resend, so only RPCs with a
//! unary request are balanced (every call between the services of the mesh is one).
//!
//! `clearair_peer_replicas{peer}` says how many replicas each peer's calls are spread over and
//! `clearair_peer_unreachable_total{peer}` counts calls that had to go to another replica.
//!
//! With TLS, the peer's certificate files are read again every `tls.reload_interval_ms`; when
//! they change, every replica gets a new channel made with them, so renewed certificates are
//! used from the next call on without a restart.

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use tonic::{
    Status,
    body::Body,
    transport::{Channel, ClientTlsConfig, Endpoint},
};
use tower::{Service, ServiceExt};

use crate::{
    RuntimeError,
    client::PeerConfig,
    metrics,
    tls::{PeerFiles, PeerTls, report_reload},
};

type BoxError = Box<dyn StdError + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// Resolves a host name and port to addresses (DNS; a fake in tests).
type Resolver = Arc<dyn Fn(String, u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// How long an unreachable replica is first passed over; each further failure doubles it.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest a replica is passed over before it is tried again.
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);

/// One URL of a peer: where its replicas are found.
#[derive(Clone, Debug, PartialEq)]
struct Target {
    /// `http` or `https` (already decided by the peer's TLS setting).
    scheme: &'static str,
    /// A DNS name or an IP address (without brackets).
    host: String,
    port: u16,
}

impl Target {
    /// Parses a dial URL (`http://host:port`; the port defaults to the scheme's).
    fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => "http",
            Some("https") => "https",
            _ => return Err(format!("{url:?}: the scheme must be http:// or https://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{url:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(Self { scheme, host, port })
    }

    /// The address itself when the host is an IP literal (nothing to resolve).
    fn address(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

/// How a replica's channel is dialled.
#[derive(Clone, Debug)]
struct Dial {
    connect_timeout: Duration,
    tls: Option<ClientTlsConfig>,
    /// The files `tls` was made from.
    tls_files: Option<PeerFiles>,
    /// Whether the config names the certificate's expected host (else: the target's host,
    /// never the resolved address).
    tls_domain_given: bool,
}

impl Dial {
    /// The endpoint for `target` at `authority` (a resolved `address:port`, or the target's
    /// own `host:port` when only checking the settings).
    fn endpoint(&self, target: &Target, authority: &str) -> Result<Endpoint, RuntimeError> {
        let url = format!("{}://{authority}", target.scheme);
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| RuntimeError::InvalidConfig(format!("peer endpoint {url:?}: {e}")))?;
        if let Some(tls) = &self.tls {
            let tls = if self.tls_domain_given {
                tls.clone()
            } else {
                tls.clone().domain_name(target.host.clone())
            };
            endpoint = endpoint.tls_config(tls)?;
        }
        Ok(endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true))
    }

    fn replica(&self, target: &Target, address: SocketAddr) -> Result<Replica, RuntimeError> {
        let channel = self.endpoint(target, &address.to_string())?.connect_lazy();
        Ok(Replica {
            target: target.clone(),
            address,
            channel,
            in_flight: AtomicUsize::new(0),
            last_pick: AtomicU64::new(0),
            backoff: Mutex::new(Backoff::default()),
        })
    }
}

/// One replica: an address and its connection.
#[derive(Debug)]
struct Replica {
    /// The URL it was found through.
    target: Target,
    address: SocketAddr,
    channel: Channel,
    in_flight: AtomicUsize,
    /// The peer's pick number when this replica was last chosen (0: never).
    last_pick: AtomicU64,
    backoff: Mutex<Backoff>,
}

/// Failed connection attempts in a row and until when the replica is passed over.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Replica {
    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the replica is being passed over at `now`.
    fn set_aside(&self, now: Instant) -> bool {
        self.backoff().until.is_some_and(|until| until > now)
    }

    /// Records a failed connection attempt; returns how long the replica is passed over.
    fn unreachable(&self) -> Duration {
        let mut backoff = self.backoff();
        backoff.failures = backoff.failures.saturating_add(1);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << (backoff.failures - 1).min(5))
            .min(LONGEST_BACKOFF);
        backoff.until = Some(Instant::now() + wait);
        wait
    }

    /// Records that a call reached the replica.
    fn reached(&self) {
        *self.backoff() = Backoff::default();
    }
}

/// Counts a call in flight on a replica until dropped (with the response body, for streams).
struct InFlight(Arc<Replica>);

impl InFlight {
    fn enter(replica: &Arc<Replica>) -> Self {
        replica.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(replica.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A peer: its URLs, its current replicas, and the state of the choice between them.
struct Peer {
    /// The configured URL(s), for messages.
    label: String,
    targets: Vec<Target>,
    /// How replicas are dialled; replaced when the TLS files change. Locked after
    /// `replicas` when both are.
    dial: RwLock<Dial>,
    /// The TLS settings (`None`: plaintext) and their section's name for errors.
    tls: Option<(PeerTls, String)>,
    resolve: Resolver,
    replicas: RwLock<Vec<Arc<Replica>>>,
    /// Why the last resolution found nothing, for the error of a call with no replica.
    resolve_error: Mutex<Option<String>>,
    /// Picks made so far: the clock that `Replica::last_pick` reads.
    picks: AtomicU64,
}

impl Peer {
    fn dial(&self) -> Dial {
        self.dial
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves every target and makes the replica set match, keeping the connection of each
    /// address still present. A resolution that finds nothing keeps the current set: a DNS
    /// hiccup must not drop replicas that serve.
    async fn refresh(&self) {
        let mut found: Vec<(SocketAddr, &Target)> = Vec::new();
        let mut errors = Vec::new();
        for target in &self.targets {
            match target.address() {
                Some(address) => found.push((address, target)),
                None => match (self.resolve)(target.host.clone(), target.port).await {
                    Ok(addresses) if !addresses.is_empty() => {
                        found.extend(addresses.into_iter().map(|a| (a, target)));
                    }
                    Ok(_) => errors.push(format!("{} resolves to no address", target.host)),
                    Err(e) => errors.push(format!("{}: {e}", target.host)),
                },
            }
        }
        if found.is_empty() {
            let why = errors.join("; ");
            tracing::warn!(peer = %self.label, error = %why, "peer resolves to no replica");
            *self
                .resolve_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(why);
            return;
        }
        let mut set = self
            .replicas
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let dial = self.dial();
        let mut next: Vec<Arc<Replica>> = Vec::with_capacity(found.len());
        for (address, target) in found {
            if next.iter().any(|r| r.address == address) {
                continue;
            }
            match set.iter().find(|r| r.address == address) {
                Some(kept) => next.push(kept.clone()),
                None => match dial.replica(target, address) {
                    Ok(replica) => next.push(Arc::new(replica)),
                    Err(e) => tracing::warn!(peer = %self.label, %address, error = %e,
                        "cannot dial a resolved replica"),
                },
            }
        }
        let addresses = |replicas: &[Arc<Replica>]| {
            let mut list: Vec<SocketAddr> = replicas.iter().map(|r| r.address).collect();
            list.sort();
            list
        };
        if addresses(&set) != addresses(&next) {
            tracing::info!(peer = %self.label, replicas = ?addresses(&next), "peer replicas");
        }
        metrics::global().set_peer_replicas(&self.label, next.len());
        *set = next;
    }

    /// Reads the TLS files again; when they changed and load, every replica gets a new
    /// channel made with them, so the next calls connect with the new certificates (calls in
    /// flight finish on the old connections). Returns whether they changed; an error leaves
    /// the channels as they are.
    fn reload_tls(&self) -> Result<bool, RuntimeError> {
        let Some((settings, field)) = &self.tls else {
            return Ok(false);
        };
        let files = settings.read(field)?;
        let current = self.dial();
        if current.tls_files.as_ref() == Some(&files) {
            return Ok(false);
        }
        let dial = Dial {
            tls: Some(settings.config(&files)),
            tls_files: Some(files),
            ..current
        };
        for target in &self.targets {
            dial.endpoint(target, &format!("{}:{}", target.host, target.port))?;
        }
        let mut set = self
            .replicas
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let next = set
            .iter()
            .map(|r| dial.replica(&r.target, r.address).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        *self.dial.write().unwrap_or_else(PoisonError::into_inner) = dial;
        *set = next;
        Ok(true)
    }

    /// The replica for the next call: the fewest calls in flight among those not passed over
    /// (passed-over ones only when nothing else is left), ties to the one chosen longest ago;
    /// never one in `tried`.
    fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Replica>> {
        let set = self.replicas.read().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let chosen = set
            .iter()
            .filter(|r| !tried.contains(&r.address))
            .min_by_key(|r| {
                (
                    r.set_aside(now),
                    r.in_flight.load(Ordering::Relaxed),
                    r.last_pick.load(Ordering::Relaxed),
                )
            })?;
        let pick = self.picks.fetch_add(1, Ordering::Relaxed) + 1;
        chosen.last_pick.store(pick, Ordering::Relaxed);
        Some(chosen.clone())
    }

    /// The error of a call that found no replica to reach.
    fn no_replica(&self, tried: usize, last: Option<BoxError>) -> BoxError {
        let message = match last {
            Some(error) => format!(
                "{}: none of its {tried} replica(s) could be reached: {}",
                self.label,
                Status::from_error(error).message()
            ),
            None => {
                let why = self
                    .resolve_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                    .unwrap_or_else(|| "nothing resolved yet".to_owned());
                format!("{}: no replica: {why}", self.label)
            }
        };
        Box::new(Status::unavailable(message))
    }
}

/// Whether a failed call certainly never reached a server: the connection could not be made,
/// or the request was cancelled before it was written (its connection had closed).
fn never_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>()
            || error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// A channel to every replica of one peer (see the module documentation). Cheap to clone;
/// clones share the replicas and their connections.
#[derive(Clone)]
pub struct BalancedChannel {
    peer: Arc<Peer>,
}

impl fmt::Debug for BalancedChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancedChannel")
            .field("peer", &self.peer.label)
            .field("replicas", &self.replicas())
            .finish()
    }
}

impl BalancedChannel {
    /// A channel to `peer`'s replicas; nothing connects until the first call. Names are
    /// resolved in the background, first at once; must be called within a Tokio runtime.
    pub fn new(peer: &PeerConfig, dial_urls: Vec<String>) -> Result<Self, RuntimeError> {
        let resolve: Resolver = Arc::new(|host: String, port: u16| {
            Box::pin(async move {
                tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map(Iterator::collect)
            })
        });
        let channel = Self::with_resolver(peer, dial_urls, resolve)?;
        let interval = Duration::from_millis(peer.resolve_interval_ms);
        if channel.peer.targets.iter().any(|t| t.address().is_none()) && !interval.is_zero() {
            let peer = Arc::downgrade(&channel.peer);
            tokio::spawn(async move {
                while let Some(live) = peer.upgrade() {
                    live.refresh().await;
                    drop(live);
                    tokio::time::sleep(interval).await;
                }
            });
        }
        let reload = Duration::from_millis(peer.tls.reload_interval_ms);
        if peer.tls.enabled && !reload.is_zero() {
            metrics::global().expect_tls_reloads("client", &channel.peer.label);
            let peer = Arc::downgrade(&channel.peer);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(reload).await;
                    let Some(live) = peer.upgrade() else { break };
                    report_reload("client", &live.label, &live.reload_tls());
                }
            });
        }
        Ok(channel)
    }

    /// Builds the channel with `resolve` for names; IP literals become replicas at once.
    fn with_resolver(
        peer: &PeerConfig,
        dial_urls: Vec<String>,
        resolve: Resolver,
    ) -> Result<Self, RuntimeError> {
        let label = dial_urls.join(", ");
        let targets = dial_urls
            .iter()
            .map(|url| Target::parse(url).map_err(RuntimeError::InvalidConfig))
            .collect::<Result<Vec<_>, _>>()?;
        let tls_field = format!("peer {label} tls");
        let tls_files = if peer.tls.enabled {
            Some(peer.tls.read(&tls_field)?)
        } else {
            None
        };
        let dial = Dial {
            connect_timeout: Duration::from_millis(peer.connect_timeout_ms),
            tls: tls_files.as_ref().map(|files| peer.tls.config(files)),
            tls_files,
            tls_domain_given: !peer.tls.domain.is_empty(),
        };
        let mut replicas: Vec<Arc<Replica>> = Vec::new();
        for target in &targets {
            // Every setting is checked now, names included, so a bad one stops the start.
            dial.endpoint(target, &format!("{}:{}", target.host, target.port))?;
            if let Some(address) = target.address()
                && !replicas.iter().any(|r| r.address == address)
            {
                replicas.push(Arc::new(dial.replica(target, address)?));
            }
        }
        metrics::global().set_peer_replicas(&label, replicas.len());
        Ok(Self {
            peer: Arc::new(Peer {
                label,
                targets,
                dial: RwLock::new(dial),
                tls: peer.tls.enabled.then(|| (peer.tls.clone(), tls_field)),
                resolve,
                replicas: RwLock::new(replicas),
                resolve_error: Mutex::new(None),
                picks: AtomicU64::new(0),
            }),
        })
    }

    /// The addresses of the replicas calls are spread over now.
    pub fn replicas(&self) -> Vec<SocketAddr> {
        self.peer.replicas().iter().map(|r| r.address).collect()
    }
}

impl Service<http::Request<Body>> for BalancedChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is each replica's own (its channel's buffer), awaited in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let peer = self.peer.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let message = body.collect().await?.to_bytes();
            let none_yet = peer
                .replicas
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty();
            if none_yet {
                peer.refresh().await;
            }
            let mut tried = Vec::new();
            let mut last_error = None;
            while let Some(replica) = peer.pick(&tried) {
                let request =
                    http::Request::from_parts(parts.clone(), Body::new(Full::new(message.clone())));
                let in_flight = InFlight::enter(&replica);
                let mut channel = replica.channel.clone();
                let outcome = match channel.ready().await {
                    Ok(ready) => ready.call(request).await,
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(response) => {
                        replica.reached();
                        // The call stays in flight until its response body is done.
                        return Ok(response.map(|body| {
                            Body::new(body.map_err(move |e| {
                                let _counted = &in_flight;
                                e
                            }))
                        }));
                    }
                    Err(error) if never_sent(&error) => {
                        let wait = replica.unreachable();
                        metrics::global().record_peer_unreachable(&peer.label);
                        tracing::warn!(peer = %peer.label, replica = %replica.address,
                            error = %error, passed_over_ms = wait.as_millis() as u64,
                            "replica unreachable; the call goes to another");
                        tried.push(replica.address);
                        last_error = Some(Box::new(error) as BoxError);
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Err(peer.no_replica(tried.len(), last_error))
        })
    }
}

#[cfg(test)]
mod tests;
