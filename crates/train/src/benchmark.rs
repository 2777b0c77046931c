//! `clearair train benchmark`: how fast the restorers run on this device — forward pass and
//! full training step (L1 + ICRM, backward, AdamW) per batch, and single-image inference
//! latency at a larger size — so GPU runs can be sized and compared with the CPU.

use std::time::Instant;

use clearair_model::{
    ClearAir, ClearAirConfig, DegradationEncoder, EncoderConfig, IcrmConfig, Priors,
    parameter_count, restoration_loss,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Cuda, Device, Kind, Tensor, nn};

use crate::error::Result;
use crate::optimizer::{AdamW, AdamWConfig};

/// What to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkSettings {
    /// Where to run.
    pub device: Device,
    /// The restorer configurations, by name.
    pub configs: Vec<(String, ClearAirConfig)>,
    /// Images per batch for the forward and training-step timings.
    pub batch: i64,
    /// Side of the batch images.
    pub size: i64,
    /// Side of the single image for the latency timing.
    pub inference_size: i64,
    /// Timed repetitions (after one warm-up); the median is reported.
    pub runs: usize,
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
    /// Training step on `batch × size²`: L1 + ICRM (default 64² sub-crop), backward, AdamW.
    pub train_step_ms: f64,
    /// Forward pass of one `inference_size²` image, no gradient.
    pub inference_ms: f64,
}

/// Everything measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchmarkReport {
    /// The device, in words.
    pub device: String,
    /// libtorch's CPU threads.
    pub cpu_threads: i32,
    /// Batch size of the batch timings.
    pub batch: i64,
    /// Side of the batch images.
    pub size: i64,
    /// Side of the latency image.
    pub inference_size: i64,
    /// Per restorer configuration.
    pub restorers: Vec<RestorerTimings>,
    /// The degradation encoder's forward pass on one `size²` image.
    pub encoder_forward_ms: f64,
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

/// Priors of the right shapes: random F_q, eight masks partitioning the image, unit F_c/F_d.
fn random_priors(config: &ClearAirConfig, batch: i64, size: i64, device: Device) -> Priors {
    let options = (Kind::Float, device);
    let labels = Tensor::randint(8, [batch, 1, size, size], (Kind::Int64, device));
    let unit = |width: i64| {
        let x = Tensor::randn([batch, width], options);
        &x / x.norm_scalaropt_dim(2.0, [1], true)
    };
    Priors {
        quality: Tensor::randn([batch, config.quality_dim], options),
        masks: labels
            .eq_tensor(&Tensor::arange(8, (Kind::Int64, device)).view([1, 8, 1, 1]))
            .to_kind(Kind::Float),
        content: unit(config.content_dim),
        degradation: unit(config.degradation_dim),
    }
}

fn time_restorer(
    name: &str,
    config: &ClearAirConfig,
    settings: &BenchmarkSettings,
) -> Result<RestorerTimings> {
    let device = settings.device;
    let store = nn::VarStore::new(device);
    let network = ClearAir::new(&store.root(), config);
    let (batch, size) = (settings.batch, settings.size);
    let clean = Tensor::rand([batch, 3, size, size], (Kind::Float, device));
    let degraded = (&clean + clean.randn_like() * 0.1).clamp(0.0, 1.0);
    let priors = random_priors(config, batch, size, device);
    let forward_ms = median_ms(device, settings.runs, || {
        let _ = tch::no_grad(|| network.forward_checked(&degraded, &priors, false))?;
        Ok(())
    })?;
    let mut optimizer = AdamW::new(&store, AdamWConfig::default());
    let icrm = IcrmConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let train_step_ms = median_ms(device, settings.runs, || {
        let loss = restoration_loss(&network, &degraded, &clean, &priors, &icrm, &mut rng);
        optimizer.zero_grad();
        loss.total.backward();
        optimizer.step(2e-4);
        Ok(())
    })?;
    let side = settings.inference_size;
    let single = Tensor::rand([1, 3, side, side], (Kind::Float, device));
    let single_priors = random_priors(config, 1, side, device);
    let inference_ms = median_ms(device, settings.runs, || {
        let _ = tch::no_grad(|| network.forward_checked(&single, &single_priors, false))?;
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
    Ok(BenchmarkReport {
        device: format!("{:?}", settings.device),
        cpu_threads: tch::get_num_threads(),
        batch: settings.batch,
        size: settings.size,
        inference_size: settings.inference_size,
        restorers,
        encoder_forward_ms,
    })
}

/// The report as aligned text.
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
    text
}
