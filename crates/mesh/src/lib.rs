//! The whole mesh in one process: five gRPC servers on loopback, wired to each other
//! ([`Mesh`]), with the client calls and the benchmark that drive it. Used by `clearair up`,
//! `clearair bench` and the end-to-end tests; the `clearair` command itself is `crates/cli`.
//!
//! # Layout
//! - this module: [`MeshConfig`] (one section per service), [`Mesh`] (start, wait until
//!   every service is SERVING, stop one service, shut down), [`Service`].
//! - [`client`]: restore/analyze calls and the before/after sheet.
//! - [`bench`]: latency, throughput, orchestrator overhead and fan-out parallelism.

pub mod bench;
pub mod client;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use clearair_degradation::DegradationConfig;
use clearair_orchestrator::OrchestratorConfig;
use clearair_quality::QualityConfig;
use clearair_restoration::RestorationConfig;
use clearair_runtime::{client::PeerConfig, config::ServerConfig};
use clearair_segmentation::SegmentationConfig;
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The five services of the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// The public API.
    Orchestrator,
    /// The quality prior.
    Quality,
    /// The region masks.
    Segmentation,
    /// The degradation prior.
    Degradation,
    /// The restorer.
    Restoration,
}

impl Service {
    /// Every service, orchestrator first.
    pub const ALL: [Service; 5] = [
        Self::Orchestrator,
        Self::Quality,
        Self::Segmentation,
        Self::Degradation,
        Self::Restoration,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Orchestrator => "orchestrator",
            Self::Quality => "quality",
            Self::Segmentation => "segmentation",
            Self::Degradation => "degradation",
            Self::Restoration => "restoration",
        }
    }
}

/// Configuration of all five services; the orchestrator's peers are filled in with the
/// addresses the others actually bind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// The public API.
    pub orchestrator: OrchestratorConfig,
    /// The quality service.
    pub quality: QualityConfig,
    /// The segmentation service.
    pub segmentation: SegmentationConfig,
    /// The degradation service.
    pub degradation: DegradationConfig,
    /// The restoration service.
    pub restoration: RestorationConfig,
}

fn on_loopback(server: &mut ServerConfig, port: u16) {
    server.listen = format!("127.0.0.1:{port}");
    // In one process one metrics endpoint serves every service (`clearair up --metrics`).
    server.metrics_listen.clear();
}

impl Default for MeshConfig {
    /// Loopback ports 50051 (orchestrator) to 50055, the embedded defaults' backends and the
    /// trained weights in `models/`.
    fn default() -> Self {
        let mut config = Self {
            orchestrator: OrchestratorConfig::default(),
            quality: QualityConfig::default(),
            segmentation: SegmentationConfig::default(),
            degradation: DegradationConfig::default(),
            restoration: RestorationConfig::default(),
        };
        on_loopback(&mut config.orchestrator.server, 50051);
        on_loopback(&mut config.quality.server, 50052);
        on_loopback(&mut config.segmentation.server, 50053);
        on_loopback(&mut config.degradation.server, 50054);
        on_loopback(&mut config.restoration.server, 50055);
        config.orchestrator.server.metrics_listen = "127.0.0.1:9461".to_owned();
        config.orchestrator.web.listen = "127.0.0.1:8080".to_owned();
        config
    }
}

impl MeshConfig {
    /// The same mesh on ephemeral ports (for tests and benchmarks), without the web front.
    pub fn ephemeral(mut self) -> Self {
        for server in self.servers_mut() {
            server.listen = "127.0.0.1:0".to_owned();
            server.metrics_listen.clear();
        }
        self.orchestrator.web.listen.clear();
        self
    }

    /// Every service's server settings.
    pub fn servers_mut(&mut self) -> [&mut ServerConfig; 5] {
        [
            &mut self.orchestrator.server,
            &mut self.quality.server,
            &mut self.segmentation.server,
            &mut self.degradation.server,
            &mut self.restoration.server,
        ]
    }
}

impl clearair_runtime::launch::ServiceConfig for MeshConfig {
    fn server(&self) -> &ServerConfig {
        &self.orchestrator.server
    }
}

/// Errors starting or running the mesh.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A listener could not be bound.
    #[error("cannot bind the {service} service to {addr}: {source}")]
    Bind {
        /// Which service.
        service: &'static str,
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A service stopped with an error.
    #[error("the {service} service failed: {message}")]
    Service {
        /// Which service.
        service: &'static str,
        /// Its error.
        message: String,
    },
    /// Not every service reported SERVING in time.
    #[error("the mesh was not ready after {0:?}: {1}")]
    NotReady(Duration, String),
}

type ServiceTask = JoinHandle<Result<(), String>>;

/// A running mesh.
#[derive(Debug)]
pub struct Mesh {
    addrs: BTreeMap<Service, SocketAddr>,
    web: Option<SocketAddr>,
    stops: BTreeMap<Service, oneshot::Sender<()>>,
    tasks: BTreeMap<Service, ServiceTask>,
}

async fn bind(service: Service, server: &ServerConfig) -> Result<TcpListener, MeshError> {
    TcpListener::bind(&server.listen)
        .await
        .map_err(|source| MeshError::Bind {
            service: service.name(),
            addr: server.listen.clone(),
            source,
        })
}

fn spawn<F, E>(
    service: Service,
    stops: &mut BTreeMap<Service, oneshot::Sender<()>>,
    tasks: &mut BTreeMap<Service, ServiceTask>,
    serve: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
) where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = Box::pin(async move {
        let _ = stopped.await;
    });
    let running = serve(shutdown);
    tasks.insert(
        service,
        tokio::spawn(async move { running.await.map_err(|e| e.to_string()) }),
    );
    stops.insert(service, stop);
}

impl Mesh {
    /// Binds every service's `server.listen`, points the orchestrator at the others and starts
    /// all five. Returns once they are listening; see [`Mesh::wait_ready`].
    pub async fn start(mut config: MeshConfig) -> Result<Self, MeshError> {
        let orchestrator = bind(Service::Orchestrator, &config.orchestrator.server).await?;
        let quality = bind(Service::Quality, &config.quality.server).await?;
        let segmentation = bind(Service::Segmentation, &config.segmentation.server).await?;
        let degradation = bind(Service::Degradation, &config.degradation.server).await?;
        let restoration = bind(Service::Restoration, &config.restoration.server).await?;
        let web = if config.orchestrator.web.is_enabled() {
            let listener = TcpListener::bind(&config.orchestrator.web.listen)
                .await
                .map_err(|source| MeshError::Bind {
                    service: "web front of the orchestrator",
                    addr: config.orchestrator.web.listen.clone(),
                    source,
                })?;
            Some(listener)
        } else {
            None
        };
        let web_addr = web
            .as_ref()
            .map(|l| l.local_addr().expect("bound listener"));
        let local = |listener: &TcpListener| listener.local_addr().expect("bound listener");
        let addrs = BTreeMap::from([
            (Service::Orchestrator, local(&orchestrator)),
            (Service::Quality, local(&quality)),
            (Service::Segmentation, local(&segmentation)),
            (Service::Degradation, local(&degradation)),
            (Service::Restoration, local(&restoration)),
        ]);
        let peer = |service: Service, base: &PeerConfig| PeerConfig {
            endpoint: format!("http://{}", addrs[&service]),
            ..base.clone()
        };
        config.orchestrator.quality = peer(Service::Quality, &config.orchestrator.quality);
        config.orchestrator.segmentation =
            peer(Service::Segmentation, &config.orchestrator.segmentation);
        config.orchestrator.degradation =
            peer(Service::Degradation, &config.orchestrator.degradation);
        config.orchestrator.restoration =
            peer(Service::Restoration, &config.orchestrator.restoration);

        let (mut stops, mut tasks) = (BTreeMap::new(), BTreeMap::new());
        let MeshConfig {
            orchestrator: orchestrator_config,
            quality: quality_config,
            segmentation: segmentation_config,
            degradation: degradation_config,
            restoration: restoration_config,
        } = config;
        spawn(Service::Quality, &mut stops, &mut tasks, |s| {
            clearair_quality::serve(quality_config, quality, s)
        });
        spawn(Service::Segmentation, &mut stops, &mut tasks, |s| {
            clearair_segmentation::serve(segmentation_config, segmentation, s)
        });
        spawn(Service::Degradation, &mut stops, &mut tasks, |s| {
            clearair_degradation::serve(degradation_config, degradation, s)
        });
        spawn(Service::Restoration, &mut stops, &mut tasks, |s| {
            clearair_restoration::serve(restoration_config, restoration, s)
        });
        spawn(Service::Orchestrator, &mut stops, &mut tasks, |s| {
            clearair_orchestrator::serve_with_web(orchestrator_config, orchestrator, web, s)
        });
        Ok(Self {
            addrs,
            web: web_addr,
            stops,
            tasks,
        })
    }

    /// The address a service listens on.
    pub fn addr(&self, service: Service) -> SocketAddr {
        self.addrs[&service]
    }

    /// Where the web front (the page and gRPC-Web) listens, when `[orchestrator.web]` has one.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web
    }

    /// `http://…` URL of a service.
    pub fn url(&self, service: Service) -> String {
        format!("http://{}", self.addr(service))
    }

    /// Waits until every running service reports SERVING on `grpc.health.v1`; fails early,
    /// with the reason, when a service stops (e.g. its weights are missing).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), MeshError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending: Vec<Service> = self.tasks.keys().copied().collect();
        while !pending.is_empty() {
            for service in pending.clone() {
                if self.tasks[&service].is_finished() {
                    let task = self.tasks.remove(&service).expect("task present");
                    let message = match task.await {
                        Ok(Ok(())) => "it stopped".to_owned(),
                        Ok(Err(message)) => message,
                        Err(join) => join.to_string(),
                    };
                    return Err(MeshError::Service {
                        service: service.name(),
                        message,
                    });
                }
                if self.serving(service).await {
                    pending.retain(|s| *s != service);
                }
            }
            if tokio::time::Instant::now() > deadline {
                let names: Vec<_> = pending.iter().map(|s| s.name()).collect();
                return Err(MeshError::NotReady(
                    timeout,
                    format!("not SERVING: {}", names.join(", ")),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn serving(&self, service: Service) -> bool {
        let Ok(channel) = tonic::transport::Endpoint::from_shared(self.url(service))
            .expect("valid URL")
            .connect()
            .await
        else {
            return false;
        };
        let request = HealthCheckRequest {
            service: String::new(),
        };
        matches!(
            HealthClient::new(channel).check(request).await,
            Ok(response) if response.get_ref().status == ServingStatus::Serving as i32
        )
    }

    /// Stops one service (draining its in-flight calls) and waits for it to end.
    pub async fn stop(&mut self, service: Service) -> Result<(), MeshError> {
        if let Some(stop) = self.stops.remove(&service) {
            let _ = stop.send(());
        }
        match self.tasks.remove(&service) {
            Some(task) => match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(MeshError::Service {
                    service: service.name(),
                    message,
                }),
                Err(join) => Err(MeshError::Service {
                    service: service.name(),
                    message: join.to_string(),
                }),
            },
            None => Ok(()),
        }
    }

    /// Stops every service, the orchestrator first so no new work reaches the others.
    pub async fn shutdown(mut self) -> Result<(), MeshError> {
        let mut first_error = None;
        for service in Service::ALL {
            if let Err(error) = self.stop(service).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Resolves when any service stops on its own (an error in a running mesh).
    pub async fn any_stopped(&mut self) -> MeshError {
        let (service, result) = loop {
            if let Some((&service, _)) = self.tasks.iter().find(|(_, task)| task.is_finished()) {
                let task = self.tasks.remove(&service).expect("task present");
                break (service, task.await);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let message = match result {
            Ok(Ok(())) => "it stopped".to_owned(),
            Ok(Err(message)) => message,
            Err(join) => join.to_string(),
        };
        MeshError::Service {
            service: service.name(),
            message,
        }
    }
}
