//! `clearair`: run the mesh, restore and analyze photos, benchmark, train and evaluate.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use clearair_mesh::{Mesh, MeshConfig, Service, bench, client};
use clearair_proto::v1::ImageFormat;

mod priors_bench;

#[derive(Parser)]
#[command(
    version,
    about = "ClearAIR mesh: all-in-one image restoration over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run all five services in this process on loopback (orchestrator on 127.0.0.1:50051).
    Up(UpArgs),
    /// Restore a photo through the mesh.
    Restore {
        /// The degraded photo (PNG, JPEG, WebP, TIFF, BMP).
        input: PathBuf,
        /// Where to write the restored photo; its extension picks the format.
        output: PathBuf,
        /// The orchestrator.
        #[arg(
            long,
            default_value = "http://127.0.0.1:50051",
            env = "CLEARAIR_ENDPOINT"
        )]
        endpoint: String,
        /// Also write a before | after | masks sheet with the priors' summary.
        #[arg(long)]
        sheet: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Send it through RestoreStream (chunked upload, progress events): for large photos.
        #[arg(long)]
        stream: bool,
    },
    /// Print the priors of a photo: quality, degradations, regions.
    Analyze {
        /// The photo.
        input: PathBuf,
        /// The orchestrator.
        #[arg(
            long,
            default_value = "http://127.0.0.1:50051",
            env = "CLEARAIR_ENDPOINT"
        )]
        endpoint: String,
        /// Print the response as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure latency, throughput, orchestrator overhead and fan-out parallelism on loopback.
    Bench(BenchArgs),
    /// Time exported prior modules (DeQA-Score, SAM2, DA-CLIP) at several batch sizes.
    PriorsBench(priors_bench::PriorsBenchArgs),
    /// Train the degradation encoder or the restorer (CPU or CUDA), or time a training step.
    Train(clearair_train::TrainArgs),
    /// Evaluate on the held-out photos: PSNR/SSIM per degradation, FFDNet for noise, sheets.
    Eval(clearair_train::EvalArgs),
    /// Apply one synthesized degradation to a photo (to try the mesh on).
    Degrade(clearair_train::DegradeArgs),
    /// Where the restorer's time goes at a size: its stages and operations, timed on the CPU.
    Profile(clearair_train::ProfileArgs),
}

#[derive(clap::Args)]
struct UpArgs {
    /// Mesh config file (TOML with [orchestrator], [quality], …); `CLEARAIR__…` environment
    /// variables override it (e.g. CLEARAIR__RESTORATION__MODEL__DEVICE=cuda).
    #[arg(long, env = "CLEARAIR_CONFIG")]
    config: Option<PathBuf>,
    /// Orchestrator address.
    #[arg(long)]
    orchestrator: Option<String>,
    /// Quality service address.
    #[arg(long)]
    quality: Option<String>,
    /// Segmentation service address.
    #[arg(long)]
    segmentation: Option<String>,
    /// Degradation service address.
    #[arg(long)]
    degradation: Option<String>,
    /// Restoration service address.
    #[arg(long)]
    restoration: Option<String>,
    /// Serve Prometheus metrics of all five services here.
    #[arg(long)]
    metrics: Option<String>,
    /// Serve the restore page and gRPC-Web here (default 127.0.0.1:8080; empty: off).
    #[arg(long)]
    web: Option<String>,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Mesh config file, as for `up` (ports are ignored: the bench uses ephemeral ones).
    #[arg(long, env = "CLEARAIR_CONFIG")]
    config: Option<PathBuf>,
    /// The photo to send, centre-cropped and resized to each size.
    #[arg(long, default_value = "tests/fixtures/samples/noisy-coffee.png")]
    image: PathBuf,
    /// Sides of the square images sent, one report each (above 512 the restorer tiles).
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    sizes: Vec<u32>,
    /// One size only (same as `--sizes N`).
    #[arg(long, conflicts_with = "sizes")]
    size: Option<u32>,
    /// Requests per concurrency level at 256²; larger sizes send as many pixels (at least 4
    /// requests).
    #[arg(long, default_value_t = 32)]
    requests: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    concurrency: Vec<usize>,
    /// Requests on each side of the two ratios (measured at the first size; 0 skips them).
    #[arg(long, default_value_t = 12)]
    ratio_requests: usize,
    /// Use freshly initialised networks instead of the trained weights.
    #[arg(long)]
    random_init: bool,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn output_format(path: &std::path::Path) -> ImageFormat {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => ImageFormat::Jpeg,
        Some("webp") => ImageFormat::Webp,
        Some("tif" | "tiff") => ImageFormat::Tiff,
        Some("bmp") => ImageFormat::Bmp,
        _ => ImageFormat::Png,
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let mut config: MeshConfig =
        clearair_runtime::config::load("CLEARAIR", args.config.as_deref())?;
    let overrides = [
        (&args.orchestrator, &mut config.orchestrator.server.listen),
        (&args.quality, &mut config.quality.server.listen),
        (&args.segmentation, &mut config.segmentation.server.listen),
        (&args.degradation, &mut config.degradation.server.listen),
        (&args.restoration, &mut config.restoration.server.listen),
    ];
    for (flag, listen) in overrides {
        if let Some(addr) = flag {
            listen.clone_from(addr);
        }
    }
    if let Some(addr) = &args.web {
        config.orchestrator.web.listen.clone_from(addr);
    }
    if let Some(addr) = args
        .metrics
        .as_ref()
        .or(Some(&config.orchestrator.server.metrics_listen))
        .filter(|a| !a.is_empty())
    {
        let bound = clearair_runtime::metrics::spawn_metrics_endpoint(addr, std::future::pending())
            .await
            .with_context(|| format!("binding the metrics endpoint {addr}"))?;
        tracing::info!("metrics at http://{bound}/metrics");
    }
    let mut mesh = Mesh::start(config).await?;
    mesh.wait_ready(Duration::from_secs(300)).await?;
    let mut addresses: Vec<String> = Service::ALL
        .iter()
        .map(|s| format!("{} {}", s.name(), mesh.addr(*s)))
        .collect();
    if let Some(web) = mesh.web_addr() {
        addresses.push(format!("web {web}"));
        tracing::info!("the restore page is at http://{web}/");
    }
    println!("clearair mesh ready: {}", addresses.join(", "));
    tokio::select! {
        () = clearair_runtime::shutdown::signal() => {
            mesh.shutdown().await?;
            Ok(())
        }
        error = mesh.any_stopped() => Err(error.into()),
    }
}

async fn restore(
    input: PathBuf,
    output: PathBuf,
    endpoint: String,
    sheet: Option<PathBuf>,
    timeout: u64,
    stream: bool,
) -> anyhow::Result<()> {
    let data = std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
    let mut client = client::connect(&endpoint).await?;
    let timeout = Duration::from_secs(timeout);
    let format = output_format(&output);
    let response = if stream {
        client::restore_stream(&mut client, data.clone(), format, timeout, 1 << 20, |p| {
            eprintln!("  {:>3.0}% {}: {}", 100.0 * p.fraction, p.stage, p.message);
        })
        .await
    } else {
        client::restore(&mut client, data.clone(), format, timeout).await
    }
    .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
    let restored = response.image.clone().unwrap_or_default();
    std::fs::write(&output, &restored.data)
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{} -> {} ({}x{})",
        input.display(),
        output.display(),
        response.width,
        response.height
    );
    if let Some(summary) = &response.priors {
        for line in client::describe(summary, &response.fallbacks, &response.timings) {
            println!("  {line}");
        }
    }
    if let Some(sheet) = sheet {
        // The priors are cached by content hash, so this costs no model time.
        let analysis = client::analyze(&mut client, data.clone(), true, timeout)
            .await
            .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
        let before = clearair_imaging::decode(&data, &Default::default())?.image;
        let after = clearair_imaging::decode(&restored.data, &Default::default())?.image;
        client::write_sheet(&sheet, &before, &after, &analysis)?;
        println!("  sheet: {}", sheet.display());
    }
    Ok(())
}

async fn analyze(input: PathBuf, endpoint: String, json: bool) -> anyhow::Result<()> {
    let data = std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
    let mut client = client::connect(&endpoint).await?;
    let response = client::analyze(&mut client, data, false, Duration::from_secs(300))
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
    let summary = response.priors.clone().unwrap_or_default();
    if json {
        let value = serde_json::json!({
            "width": response.width,
            "height": response.height,
            "quality_score": summary.quality_score,
            "quality_level": clearair_imaging::sheet::quality_level_name(summary.quality_level),
            "degradations": summary.degradations.iter().map(|p| {
                (clearair_imaging::sheet::degradation_kind_name(p.kind), p.probability)
            }).collect::<std::collections::BTreeMap<_, _>>(),
            "mask_count": summary.mask_count,
            "fallbacks": response.fallbacks,
            "timings_ms": response.timings.iter().map(|t| (t.stage.clone(), t.milliseconds)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{} ({}x{})",
            input.display(),
            response.width,
            response.height
        );
        for line in client::describe(&summary, &response.fallbacks, &response.timings) {
            println!("  {line}");
        }
    }
    Ok(())
}

async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    let mut config: MeshConfig =
        clearair_runtime::config::load("CLEARAIR", args.config.as_deref())?;
    if args.random_init {
        config.degradation.model.random_init = true;
        config.restoration.model.random_init = true;
        // The blur stage is trained weights too: untrained networks run without it.
        config.restoration.refiner = None;
        config.restoration.fallback_refiner = None;
    }
    let data =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let photo = clearair_imaging::decode(&data, &Default::default())?.image;
    let square = photo.centre_square();
    let sizes = args.size.map_or(args.sizes.clone(), |size| vec![size]);
    let model = &config.restoration.model;
    let device = clearair_model::parse_device(&model.device)?;
    println!(
        "restorer: {:?} on {device:?} (configured {:?}; this CPU computes bfloat16 natively: {})\n",
        model.precision.resolve(device),
        model.precision,
        if clearair_backends::cpu_has_native_bf16() {
            "yes"
        } else {
            "no"
        },
    );
    let mut reports = Vec::new();
    for (index, &size) in sizes.iter().enumerate() {
        let sized = square.resize(size, size)?;
        let (image, _) = clearair_imaging::encode(&sized, clearair_imaging::OutputFormat::Png, 0)?;
        let pixels_ratio = (256.0 * 256.0) / (f64::from(size) * f64::from(size));
        let options = bench::BenchOptions {
            image,
            requests: ((args.requests as f64 * pixels_ratio).round() as usize).max(4),
            concurrency: args.concurrency.clone(),
            ratio_requests: if index == 0 { args.ratio_requests } else { 0 },
        };
        let report = bench::run(config.clone(), &options).await?;
        println!("{}", bench::render(&report));
        reports.push(report);
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    clearair_runtime::launch::run(run_command())
}

async fn run_command() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = clearair_runtime::telemetry::init("clearair")?;
    match cli.command {
        Command::Up(args) => up(args).await,
        Command::Restore {
            input,
            output,
            endpoint,
            sheet,
            timeout,
            stream,
        } => restore(input, output, endpoint, sheet, timeout, stream).await,
        Command::Analyze {
            input,
            endpoint,
            json,
        } => analyze(input, endpoint, json).await,
        Command::Bench(args) => run_bench(args).await,
        Command::PriorsBench(args) => {
            tokio::task::spawn_blocking(move || {
                println!("module                 architecture                 batch");
                priors_bench::run(&args, |m| {
                    println!("{}", priors_bench::format_row(m));
                })
                .map(|_| ())
            })
            .await?
        }
        // Training and evaluation block on libtorch for minutes: keep them off the runtime.
        Command::Train(args) => {
            tokio::task::spawn_blocking(move || clearair_train::train(args)).await?
        }
        Command::Eval(args) => {
            tokio::task::spawn_blocking(move || clearair_train::eval(args)).await?
        }
        Command::Profile(args) => {
            tokio::task::spawn_blocking(move || clearair_train::profile(args)).await?
        }
        Command::Degrade(args) => {
            tokio::task::spawn_blocking(move || clearair_train::degrade(args)).await?
        }
    }
}
