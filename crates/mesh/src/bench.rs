//! `clearair bench`: end-to-end latency and throughput on loopback, the orchestrator's
//! overhead against calling the services directly, and parallel against sequential prior
//! fan-out — all measured in one run against an in-process mesh.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clearair_imaging::{OutputFormat, Rgb8Image};
use clearair_orchestrator::config::FanOut;
use clearair_proto::v1::{
    AssessRequest, EmbedRequest, ImageFormat, RestoreRequest, SegmentRequest,
    clear_air_client::ClearAirClient, degradation_service_client::DegradationServiceClient,
    quality_service_client::QualityServiceClient,
    restoration_service_client::RestorationServiceClient,
    segmentation_service_client::SegmentationServiceClient,
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::{Mesh, MeshConfig, Service, client};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The encoded image sent (already at the size to measure).
    pub image: Vec<u8>,
    /// Requests per concurrency level.
    pub requests: usize,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// Requests per side of each ratio.
    pub ratio_requests: usize,
}

/// Latency percentiles and throughput at one concurrency.
#[derive(Clone, Debug, Serialize)]
pub struct LoadResult {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests completed.
    pub requests: usize,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests per second.
    pub throughput_rps: f64,
    /// Requests that failed (and their first error).
    pub errors: usize,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Median time of each stage the orchestrator reports, in its order (decode, the priors,
    /// restoration, encode, total).
    pub stages: Vec<StageMedian>,
}

/// The median of one stage's times over a level's requests.
#[derive(Clone, Debug, Serialize)]
pub struct StageMedian {
    /// The stage, as the orchestrator names it.
    pub stage: String,
    /// Median, ms.
    pub ms: f64,
}

/// A ratio of two medians measured in the same run.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// Median of the measured path, ms.
    pub measured_ms: f64,
    /// Median of the baseline path, ms.
    pub baseline_ms: f64,
    /// measured / baseline.
    pub ratio: f64,
    /// The goal for the ratio.
    pub target: f64,
}

/// Everything `clearair bench` reports.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Image size.
    pub width: u32,
    /// Image size.
    pub height: u32,
    /// Latency and throughput per concurrency.
    pub load: Vec<LoadResult>,
    /// Orchestrated Restore against direct calls of the same services (not measured when
    /// `ratio_requests` is 0, as for all but the first size).
    pub orchestrator_overhead: Option<Ratio>,
    /// Analyze with parallel fan-out against sequential fan-out.
    pub parallel_over_sequential: Option<Ratio>,
    /// Each prior service called alone (median ms), to read the fan-out ratio against.
    pub priors_alone: Option<PriorsAlone>,
}

/// Median latency of each prior service called directly, one call at a time.
#[derive(Clone, Debug, Serialize)]
pub struct PriorsAlone {
    /// `QualityService/Assess`, ms.
    pub quality_ms: f64,
    /// `SegmentationService/Segment`, ms.
    pub segmentation_ms: f64,
    /// `DegradationService/Embed`, ms.
    pub degradation_ms: f64,
    /// The slowest over the sum: the parallel/sequential ratio a fan-out reaches when each
    /// service has cores of its own (on a shared CPU they slow each other down).
    pub ideal_ratio: f64,
    /// CPU cores this process may use (all five services share them here).
    pub cores: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    percentile(samples, 50.0)
}

const TIMEOUT: Duration = Duration::from_secs(600);

async fn load_level(
    client: &ClearAirClient<Channel>,
    image: &Arc<Vec<u8>>,
    concurrency: usize,
    requests: usize,
) -> LoadResult {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (mut client, image, next) = (client.clone(), image.clone(), next.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = Vec::new();
                let mut timings = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < requests {
                    let t = Instant::now();
                    match client::restore(&mut client, image.to_vec(), ImageFormat::Png, TIMEOUT)
                        .await
                    {
                        Ok(response) => {
                            samples.push(t.elapsed().as_secs_f64() * 1e3);
                            timings.push(response.timings);
                        }
                        Err(status) => errors.push(status.to_string()),
                    }
                }
                (samples, errors, timings)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    let mut timings = Vec::new();
    for worker in workers {
        let (s, e, t) = worker.await.expect("bench worker panicked");
        samples.extend(s);
        errors.extend(e);
        timings.extend(t);
    }
    let mut stages: Vec<StageMedian> = Vec::new();
    for stage in timings.first().into_iter().flatten() {
        let mut times: Vec<f64> = timings
            .iter()
            .flat_map(|t| t.iter().filter(|s| s.stage == stage.stage))
            .map(|s| s.milliseconds)
            .collect();
        stages.push(StageMedian {
            stage: stage.stage.clone(),
            ms: median(&mut times),
        });
    }
    let wall = started.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    LoadResult {
        concurrency,
        requests: samples.len(),
        p50_ms: percentile(&samples, 50.0),
        p90_ms: percentile(&samples, 90.0),
        p99_ms: percentile(&samples, 99.0),
        throughput_rps: samples.len() as f64 / wall,
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        stages,
    }
}

/// The direct path a client without the orchestrator would take: decode, the three priors in
/// parallel, restore, encode.
struct DirectClients {
    quality: QualityServiceClient<Channel>,
    segmentation: SegmentationServiceClient<Channel>,
    degradation: DegradationServiceClient<Channel>,
    restoration: RestorationServiceClient<Channel>,
}

impl DirectClients {
    async fn connect(mesh: &Mesh) -> anyhow::Result<Self> {
        let channel = |service| async move {
            let endpoint = tonic::transport::Endpoint::from_shared(mesh.url(service))?;
            anyhow::Ok(endpoint.connect().await?)
        };
        let limit = 256 << 20;
        Ok(Self {
            quality: QualityServiceClient::new(channel(Service::Quality).await?)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            segmentation: SegmentationServiceClient::new(channel(Service::Segmentation).await?)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            degradation: DegradationServiceClient::new(channel(Service::Degradation).await?)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            restoration: RestorationServiceClient::new(channel(Service::Restoration).await?)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        })
    }

    /// Times each prior service alone: (quality, segmentation, degradation) in ms.
    async fn priors_one_by_one(&mut self, encoded: &[u8]) -> anyhow::Result<[f64; 3]> {
        let image = clearair_imaging::decode(encoded, &Default::default())?.image;
        let wire = image.to_proto();
        let t = Instant::now();
        self.quality
            .assess(AssessRequest {
                image: Some(wire.clone()),
            })
            .await?;
        let quality = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        self.segmentation
            .segment(SegmentRequest {
                image: Some(wire.clone()),
                max_masks: clearair_imaging::MAX_MASKS,
            })
            .await?;
        let segmentation = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        self.degradation
            .embed(EmbedRequest { image: Some(wire) })
            .await?;
        Ok([quality, segmentation, t.elapsed().as_secs_f64() * 1e3])
    }

    async fn restore(&mut self, encoded: &[u8]) -> anyhow::Result<Vec<u8>> {
        let image = clearair_imaging::decode(encoded, &Default::default())?.image;
        let wire = image.to_proto();
        let (quality, masks, degradation) = tokio::join!(
            self.quality.assess(AssessRequest {
                image: Some(wire.clone())
            }),
            self.segmentation.segment(SegmentRequest {
                image: Some(wire.clone()),
                max_masks: clearair_imaging::MAX_MASKS
            }),
            self.degradation.embed(EmbedRequest {
                image: Some(wire.clone())
            }),
        );
        let restored = self
            .restoration
            .restore(RestoreRequest {
                image: Some(wire),
                quality: quality?.into_inner().quality,
                masks: masks?.into_inner().masks,
                degradation: degradation?.into_inner().degradation,
            })
            .await?
            .into_inner()
            .image
            .ok_or_else(|| anyhow::anyhow!("no image"))?;
        let restored = Rgb8Image::try_from(restored)?;
        Ok(clearair_imaging::encode(&restored, OutputFormat::Png, 0)?.0)
    }
}

/// Runs the benchmark against meshes started from `config`; prints progress to stderr.
pub async fn run(config: MeshConfig, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let decoded = clearair_imaging::decode(&options.image, &Default::default())?.image;
    let mut config = config.ephemeral();
    // Every request must do the full work: no prior cache.
    config.orchestrator.cache_bytes = 0;
    let mut sequential_config = config.clone();
    sequential_config.orchestrator.fan_out = FanOut::Sequential;

    eprintln!("bench: starting the mesh…");
    let mut mesh = Mesh::start(config).await?;
    mesh.wait_ready(Duration::from_secs(300)).await?;
    let client = client::connect(&mesh.url(Service::Orchestrator)).await?;
    let image = Arc::new(options.image.clone());

    // Warm every path once so no measurement pays for connection set-up.
    let mut warm = client.clone();
    client::restore(&mut warm, options.image.clone(), ImageFormat::Png, TIMEOUT).await?;

    let mut load = Vec::new();
    for &concurrency in &options.concurrency {
        eprintln!(
            "bench: {} requests at concurrency {concurrency}…",
            options.requests
        );
        load.push(load_level(&client, &image, concurrency, options.requests).await);
    }

    if options.ratio_requests == 0 {
        mesh.shutdown().await?;
        return Ok(BenchReport {
            width: decoded.width(),
            height: decoded.height(),
            load,
            orchestrator_overhead: None,
            parallel_over_sequential: None,
            priors_alone: None,
        });
    }
    eprintln!("bench: orchestrated vs direct calls…");
    let mut direct = DirectClients::connect(&mesh).await?;
    direct.restore(&options.image).await?;
    let (mut orchestrated_ms, mut direct_ms) = (Vec::new(), Vec::new());
    let mut orchestrated = client.clone();
    for _ in 0..options.ratio_requests {
        // Interleaved, so drift on a noisy machine hits both sides alike.
        let t = Instant::now();
        client::restore(
            &mut orchestrated,
            options.image.clone(),
            ImageFormat::Png,
            TIMEOUT,
        )
        .await?;
        orchestrated_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        direct.restore(&options.image).await?;
        direct_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (measured, baseline) = (median(&mut orchestrated_ms), median(&mut direct_ms));
    let orchestrator_overhead = Ratio {
        measured_ms: measured,
        baseline_ms: baseline,
        ratio: measured / baseline,
        target: 1.10,
    };

    eprintln!("bench: parallel vs sequential prior fan-out…");
    // A second orchestrator over the same four model services, fanning out sequentially.
    let sequential = start_sequential_orchestrator(sequential_config, &mesh).await?;
    let mut parallel_client = client.clone();
    let mut sequential_client = client::connect(&format!("http://{}", sequential.0)).await?;
    client::analyze(
        &mut sequential_client,
        options.image.clone(),
        false,
        TIMEOUT,
    )
    .await?;
    let (mut parallel_ms, mut sequential_ms) = (Vec::new(), Vec::new());
    for _ in 0..options.ratio_requests {
        let t = Instant::now();
        client::analyze(&mut parallel_client, options.image.clone(), false, TIMEOUT).await?;
        parallel_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        client::analyze(
            &mut sequential_client,
            options.image.clone(),
            false,
            TIMEOUT,
        )
        .await?;
        sequential_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = sequential.1.send(());
    let (mut quality_ms, mut segmentation_ms, mut degradation_ms) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.ratio_requests {
        let [quality, segmentation, degradation] = direct.priors_one_by_one(&options.image).await?;
        quality_ms.push(quality);
        segmentation_ms.push(segmentation);
        degradation_ms.push(degradation);
    }
    let alone = [
        median(&mut quality_ms),
        median(&mut segmentation_ms),
        median(&mut degradation_ms),
    ];
    let priors_alone = PriorsAlone {
        quality_ms: alone[0],
        segmentation_ms: alone[1],
        degradation_ms: alone[2],
        ideal_ratio: alone.iter().copied().fold(0.0, f64::max) / alone.iter().sum::<f64>(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let (measured, baseline) = (median(&mut parallel_ms), median(&mut sequential_ms));
    let parallel_over_sequential = Ratio {
        measured_ms: measured,
        baseline_ms: baseline,
        ratio: measured / baseline,
        target: 0.75,
    };
    mesh.shutdown().await?;
    Ok(BenchReport {
        width: decoded.width(),
        height: decoded.height(),
        load,
        orchestrator_overhead: Some(orchestrator_overhead),
        parallel_over_sequential: Some(parallel_over_sequential),
        priors_alone: Some(priors_alone),
    })
}

async fn start_sequential_orchestrator(
    mut config: MeshConfig,
    mesh: &Mesh,
) -> anyhow::Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let orchestrator = &mut config.orchestrator;
    orchestrator.quality.endpoint = mesh.url(Service::Quality);
    orchestrator.segmentation.endpoint = mesh.url(Service::Segmentation);
    orchestrator.degradation.endpoint = mesh.url(Service::Degradation);
    orchestrator.restoration.endpoint = mesh.url(Service::Restoration);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let orchestrator = config.orchestrator;
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) = clearair_orchestrator::serve(orchestrator, listener, shutdown).await {
            eprintln!("bench: sequential orchestrator failed: {error}");
        }
    });
    Ok((addr, stop))
}

/// Throughput of each higher concurrency level against the lowest, measured in the same run:
/// more requests at once must never serve fewer per second (requests queue for the restorer's
/// one thread, and the priors of the next overlap the restoration of the current one).
fn throughput_scaling(load: &[LoadResult]) -> Option<String> {
    let base = load.iter().min_by_key(|l| l.concurrency)?;
    let parts: Vec<String> = load
        .iter()
        .filter(|l| l.concurrency > base.concurrency && base.throughput_rps > 0.0)
        .map(|l| {
            let ratio = l.throughput_rps / base.throughput_rps;
            let verdict = if ratio >= 1.0 { "" } else { " LOWER" };
            format!(
                "{:.2} req/s at concurrency {} = {ratio:.2}x{verdict}",
                l.throughput_rps, l.concurrency
            )
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "throughput against concurrency {} ({:.2} req/s): {}\n",
            base.concurrency,
            base.throughput_rps,
            parts.join(", ")
        )
    })
}

/// The report as the table `clearair bench` prints.
pub fn render(report: &BenchReport) -> String {
    let mut out = format!(
        "ClearAIR mesh benchmark, {}x{} image, loopback, one process\n\n",
        report.width, report.height
    );
    out.push_str("concurrency  requests   p50 ms   p90 ms   p99 ms   req/s  errors\n");
    for level in &report.load {
        out.push_str(&format!(
            "{:>11}  {:>8}  {:>7.1}  {:>7.1}  {:>7.1}  {:>6.2}  {:>6}\n",
            level.concurrency,
            level.requests,
            level.p50_ms,
            level.p90_ms,
            level.p99_ms,
            level.throughput_rps,
            level.errors
        ));
    }
    if let Some(line) = throughput_scaling(&report.load) {
        out.push_str(&line);
    }
    if let Some(level) = report.load.first().filter(|l| !l.stages.is_empty()) {
        let stages: Vec<String> = level
            .stages
            .iter()
            .map(|s| format!("{} {:.1}", s.stage, s.ms))
            .collect();
        out.push_str(&format!(
            "stages at concurrency {} (median ms, as the orchestrator reports them): {}\n",
            level.concurrency,
            stages.join(", ")
        ));
    }
    for (separator, label, ratio) in [
        (
            "\n",
            "orchestrated / direct calls",
            &report.orchestrator_overhead,
        ),
        (
            "",
            "parallel / sequential prior fan-out",
            &report.parallel_over_sequential,
        ),
    ] {
        if let Some(r) = ratio {
            let verdict = if r.ratio <= r.target {
                "meets"
            } else {
                "MISSES"
            };
            out.push_str(&format!(
                "{separator}{label}: {:.1} ms / {:.1} ms = {:.3} ({verdict} target <= {:.2})\n",
                r.measured_ms, r.baseline_ms, r.ratio, r.target
            ));
        }
    }
    if let Some(a) = &report.priors_alone {
        out.push_str(&format!(
            "prior services alone: quality {:.1} ms, segmentation {:.1} ms, degradation {:.1} ms; \
             slowest / sum = {:.3}, the fan-out's floor with a core per service ({} cores shared \
             here)\n",
            a.quality_ms, a.segmentation_ms, a.degradation_ms, a.ideal_ratio, a.cores
        ));
    }
    out
}
