//! `clearair train benchmark`: how fast the restorers run on this device, so training can be
//! laid out by measurement rather than guesswork.
//!
//! Three parts, each optional:
//! - **configs**: forward pass, full training step and single-image latency of each restorer
//!   configuration (`compact`, `full`) under the current thread setting;
//! - **settings**: the compact restorer's training step under every thread layout (libtorch
//!   intra-op threads against the batch split across threads), crop size and ICRM on/off, in
//!   milliseconds per step, steps/s and pixels/s (the figure to compare: the same pixels per
//!   batch cost different times);
//! - **data**: the cost of one cached training window — degradation, BRISQUE, segmentation
//!   and the encoder — at the smallest and largest window side, which the priors cache
//!   spreads over many steps.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clearair_model::{
    ClearAirConfig, ClearAirNet, DegradationEncoder, EncoderConfig, IcrmConfig, LossDraws,
    PixelLoss, Priors, StartingPoint, parameter_count,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Cuda, Device, Kind, Tensor, nn};

use crate::data::RestorerBatch;
use crate::error::Result;
use crate::mix::{DegradationMix, ParameterRanges};
use crate::optimizer::{AdamW, AdamWConfig};
use crate::photos::Photo;
use crate::priors::CpuPriorBackends;
use crate::step::accumulate_gradients;
use crate::windows::{WindowMaker, WindowSettings};

/// A way to spend the CPU threads on a training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadLayout {
    /// libtorch intra-op threads.
    pub intra_op: i32,
    /// Threads the batch is split across.
    pub shards: usize,
}

/// Inputs of the data-cost part.
#[derive(Debug)]
pub struct DataBench {
    /// Training photos.
    pub photos: Arc<Vec<Photo>>,
    /// The CPU priors.
    pub priors: Arc<CpuPriorBackends>,
    /// The degradation encoder's weights.
    pub encoder: PathBuf,
    /// Window sides to time.
    pub sides: Vec<u32>,
    /// Windows per side.
    pub windows: u64,
}

/// What to measure.
#[derive(Debug)]
pub struct BenchmarkSettings {
    /// Where to run.
    pub device: Device,
    /// The restorer configurations of the first part, by name (empty: skip it).
    pub configs: Vec<(String, ClearAirConfig)>,
    /// Images per batch for the first part.
    pub batch: i64,
    /// Side of the first part's batch images.
    pub size: i64,
    /// Side of the single image for the latency timing.
    pub inference_size: i64,
    /// Timed repetitions (after one warm-up); the median is reported.
    pub runs: usize,
    /// The second part's thread layouts (empty: skip it).
    pub layouts: Vec<ThreadLayout>,
    /// The second part's (crop, batch) pairs.
    pub crops: Vec<(i64, i64)>,
    /// The third part (None: skip it).
    pub data: Option<DataBench>,
}

/// The figures of one configuration, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RestorerTimings {
    /// Configuration name.
    pub config: String,
    /// Trainable parameters.
    pub parameters: i64,
    /// Forward pass of `batch × size²`, no gradient.
    pub forward_ms: f64,
    /// Training step on `batch × size²`: L1 + ICRM (64² sub-crop), backward, AdamW.
    pub train_step_ms: f64,
    /// Forward pass of one `inference_size²` image, no gradient.
    pub inference_ms: f64,
}

/// One training-step setting and its speed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepTiming {
    /// Thread layout.
    pub layout: ThreadLayout,
    /// Crop side.
    pub crop: i64,
    /// Crops per batch.
    pub batch: i64,
    /// Whether the step included ICRM.
    pub icrm: bool,
    /// Median milliseconds per step.
    pub step_ms: f64,
    /// Steps per second.
    pub steps_per_second: f64,
    /// Training pixels (crop² × batch) per second.
    pub pixels_per_second: f64,
}

/// The cost of one window of one side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowTiming {
    /// Window side.
    pub side: u32,
    /// Mean milliseconds per window (degradation, BRISQUE, segmentation, encoder).
    pub window_ms: f64,
}

/// Everything measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchmarkReport {
    /// The device, in words.
    pub device: String,
    /// libtorch's CPU threads for the first part.
    pub cpu_threads: i32,
    /// Batch size of the first part.
    pub batch: i64,
    /// Side of the first part's images.
    pub size: i64,
    /// Side of the latency image.
    pub inference_size: i64,
    /// First part, per configuration.
    pub restorers: Vec<RestorerTimings>,
    /// The degradation encoder's forward pass on one `size²` image.
    pub encoder_forward_ms: f64,
    /// Second part.
    pub settings: Vec<StepTiming>,
    /// Third part.
    pub windows: Vec<WindowTiming>,
}

fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        Cuda::synchronize(index as i64);
    }
}

/// Median wall time of `runs` calls after one warm-up, synchronising the device around each.
fn median_ms(device: Device, runs: usize, mut task: impl FnMut() -> Result<()>) -> Result<f64> {
    task()?;
    synchronize(device);
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        task()?;
        synchronize(device);
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2].as_secs_f64() * 1e3)
}

/// Regions of the synthetic masks: as many as the segmenter gives at most.
const REGIONS: i64 = 16;

/// Priors of the right shapes: random F_q, 16 masks partitioning the image, unit F_c/F_d.
fn random_priors(config: &ClearAirConfig, batch: i64, size: i64, device: Device) -> Priors {
    let options = (Kind::Float, device);
    let labels = Tensor::randint(REGIONS, [batch, 1, size, size], (Kind::Int64, device));
    let unit = |width: i64| {
        let x = Tensor::randn([batch, width], options);
        &x / x.norm_scalaropt_dim(2.0, [1], true)
    };
    Priors {
        quality: Tensor::randn([batch, config.quality_dim], options),
        masks: labels
            .eq_tensor(&Tensor::arange(REGIONS, (Kind::Int64, device)).view([1, REGIONS, 1, 1]))
            .to_kind(Kind::Float),
        content: unit(config.content_dim),
        degradation: unit(config.degradation_dim),
    }
}

/// A synthetic batch of `batch` crops of `size²`.
fn random_batch(config: &ClearAirConfig, batch: i64, size: i64, device: Device) -> RestorerBatch {
    let clean = Tensor::rand([batch, 3, size, size], (Kind::Float, device));
    let degraded = (&clean + clean.randn_like() * 0.1).clamp(0.0, 1.0);
    RestorerBatch {
        degraded,
        clean,
        priors: random_priors(config, batch, size, device),
    }
}

/// One full training step as training runs it: draws, sharded forward and backward, AdamW.
fn training_step(
    network: &ClearAirNet,
    optimizer: &mut AdamW,
    batch: &RestorerBatch,
    icrm: &IcrmConfig,
    shards: usize,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let draws = LossDraws::draw(network, &batch.degraded, &batch.priors, icrm, rng);
    optimizer.zero_grad();
    accumulate_gradients(network, batch, &draws, icrm, PixelLoss::L1.into(), shards)?;
    optimizer.clip_grad_norm(1.0);
    optimizer.step(2e-4);
    Ok(())
}

fn time_restorer(
    name: &str,
    config: &ClearAirConfig,
    settings: &BenchmarkSettings,
) -> Result<RestorerTimings> {
    let device = settings.device;
    let store = nn::VarStore::new(device);
    let network = ClearAirNet::new(&store.root(), config);
    let batch = random_batch(config, settings.batch, settings.size, device);
    let forward_ms = median_ms(device, settings.runs, || {
        let _ = tch::no_grad(|| network.forward_checked(&batch.degraded, &batch.priors, false))?;
        Ok(())
    })?;
    let mut optimizer = AdamW::new(&store, AdamWConfig::default());
    let icrm = IcrmConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let train_step_ms = median_ms(device, settings.runs, || {
        training_step(&network, &mut optimizer, &batch, &icrm, 1, &mut rng)
    })?;
    let side = settings.inference_size;
    let single = random_batch(config, 1, side, device);
    let inference_ms = median_ms(device, settings.runs, || {
        let _ = tch::no_grad(|| network.forward_checked(&single.degraded, &single.priors, false))?;
        Ok(())
    })?;
    Ok(RestorerTimings {
        config: name.to_owned(),
        parameters: parameter_count(&store),
        forward_ms,
        train_step_ms,
        inference_ms,
    })
}

/// The second part: every layout × crop × ICRM on the compact restorer.
fn time_settings(settings: &BenchmarkSettings) -> Result<Vec<StepTiming>> {
    let device = settings.device;
    let config = ClearAirConfig::compact(36);
    let store = nn::VarStore::new(device);
    let network = ClearAirNet::new(&store.root(), &config);
    StartingPoint::IdentityOutput.apply(&store);
    let mut optimizer = AdamW::new(&store, AdamWConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let previous_threads = tch::get_num_threads();
    let mut timings = Vec::new();
    for &layout in &settings.layouts {
        tch::set_num_threads(layout.intra_op.max(1));
        for &(crop, batch_size) in &settings.crops {
            let batch = random_batch(&config, batch_size, crop, device);
            for icrm_on in [true, false] {
                let icrm = IcrmConfig {
                    enabled: icrm_on,
                    ..IcrmConfig::default()
                };
                let step_ms = median_ms(device, settings.runs, || {
                    training_step(
                        &network,
                        &mut optimizer,
                        &batch,
                        &icrm,
                        layout.shards,
                        &mut rng,
                    )
                })?;
                let pixels = (crop * crop * batch_size) as f64;
                timings.push(StepTiming {
                    layout,
                    crop,
                    batch: batch_size,
                    icrm: icrm_on,
                    step_ms,
                    steps_per_second: 1e3 / step_ms,
                    pixels_per_second: pixels * 1e3 / step_ms,
                });
                eprintln!("{}", describe_step(timings.last().expect("just pushed")));
            }
        }
    }
    tch::set_num_threads(previous_threads);
    Ok(timings)
}

/// The third part: windows made exactly as training makes them.
fn time_windows(data: &DataBench, device: Device) -> Result<Vec<WindowTiming>> {
    let mut timings = Vec::new();
    for &side in &data.sides {
        let settings = WindowSettings {
            min_side: side,
            max_side: side,
            mix: DegradationMix {
                ranges: ParameterRanges::Training,
                ..DegradationMix::default()
            },
            dark_share: 0.0,
            dark_gamma_max: 3.0,
        };
        let photos: Vec<Photo> = data
            .photos
            .iter()
            .filter(|p| p.image.width().min(p.image.height()) >= side)
            .cloned()
            .collect();
        let encoder = crate::networks::load_encoder(&data.encoder, device)?;
        let maker = WindowMaker::new(
            Arc::new(photos),
            data.priors.clone(),
            encoder.network,
            device,
            settings,
            7,
        )?;
        maker.make(0)?;
        let started = Instant::now();
        for index in 1..=data.windows.max(1) {
            maker.make(index)?;
        }
        timings.push(WindowTiming {
            side,
            window_ms: started.elapsed().as_secs_f64() * 1e3 / data.windows.max(1) as f64,
        });
    }
    Ok(timings)
}

/// Runs the benchmark.
pub fn run_benchmark(settings: &BenchmarkSettings) -> Result<BenchmarkReport> {
    tch::manual_seed(0);
    let restorers = settings
        .configs
        .iter()
        .map(|(name, config)| time_restorer(name, config, settings))
        .collect::<Result<Vec<_>>>()?;
    let store = nn::VarStore::new(settings.device);
    let encoder = DegradationEncoder::new(&store.root(), &EncoderConfig::default());
    let image = Tensor::rand(
        [1, 3, settings.size, settings.size],
        (Kind::Float, settings.device),
    );
    let encoder_forward_ms = median_ms(settings.device, settings.runs, || {
        let _ = tch::no_grad(|| encoder.forward(&image));
        Ok(())
    })?;
    let cpu_threads = tch::get_num_threads();
    let step_settings = time_settings(settings)?;
    let windows = match &settings.data {
        Some(data) => time_windows(data, settings.device)?,
        None => Vec::new(),
    };
    Ok(BenchmarkReport {
        device: format!("{:?}", settings.device),
        cpu_threads,
        batch: settings.batch,
        size: settings.size,
        inference_size: settings.inference_size,
        restorers,
        encoder_forward_ms,
        settings: step_settings,
        windows,
    })
}

fn describe_step(t: &StepTiming) -> String {
    format!(
        "{:>2} intra-op × {} shard(s)  {:>3}²×{:<2} ICRM {:3}  {:8.1} ms/step  {:5.2} steps/s  {:8.0} px/s",
        t.layout.intra_op,
        t.layout.shards,
        t.crop,
        t.batch,
        if t.icrm { "on" } else { "off" },
        t.step_ms,
        t.steps_per_second,
        t.pixels_per_second
    )
}

/// The report as aligned text, with the ratios that decide a layout.
pub fn describe(report: &BenchmarkReport) -> String {
    let mut text = format!(
        "device {} ({} CPU threads); batch {}×{}², latency at {}²\n",
        report.device, report.cpu_threads, report.batch, report.size, report.inference_size
    );
    for r in &report.restorers {
        text.push_str(&format!(
            "{:8} {:>10} params  forward {:9.1} ms/batch  train step {:9.1} ms/batch  inference {:9.1} ms\n",
            r.config, r.parameters, r.forward_ms, r.train_step_ms, r.inference_ms
        ));
    }
    text.push_str(&format!(
        "encoder forward {:.1} ms per {}² image\n",
        report.encoder_forward_ms, report.size
    ));
    if !report.settings.is_empty() {
        text.push_str("training step of the compact restorer, per setting:\n");
        for t in &report.settings {
            text.push_str(&describe_step(t));
            text.push('\n');
        }
        let best = report
            .settings
            .iter()
            .max_by(|a, b| a.pixels_per_second.total_cmp(&b.pixels_per_second))
            .expect("non-empty");
        let baseline = report
            .settings
            .iter()
            .find(|t| t.layout.shards == 1 && t.crop == best.crop && t.icrm == best.icrm);
        text.push_str(&format!("fastest: {}\n", describe_step(best)));
        if let Some(baseline) = baseline {
            text.push_str(&format!(
                "  {:.2}× the same crops with {} intra-op thread(s) and no split\n",
                best.pixels_per_second / baseline.pixels_per_second,
                baseline.layout.intra_op
            ));
        }
        if let Some(with) = report
            .settings
            .iter()
            .find(|t| t.layout == best.layout && t.crop == best.crop && t.icrm)
        {
            let without = report
                .settings
                .iter()
                .find(|t| t.layout == best.layout && t.crop == best.crop && !t.icrm);
            if let Some(without) = without {
                text.push_str(&format!(
                    "  ICRM costs {:.2}× a step at {}²\n",
                    with.step_ms / without.step_ms,
                    best.crop
                ));
            }
        }
    }
    for w in &report.windows {
        text.push_str(&format!(
            "training window {}²: {:.0} ms (degradation, BRISQUE, segmentation, encoder)\n",
            w.side, w.window_ms
        ));
    }
    text
}
