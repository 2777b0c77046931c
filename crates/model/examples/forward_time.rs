//! Times inference forward passes on this machine's CPU (or `--device cuda`):
//!
//! ```text
//! cargo run --release -p clearair-model --example forward_time -- [--size 256] [--full] [--device cpu]
//! ```
//!
//! Prints parameter counts and the median of five timed passes after one warm-up, for the
//! compact restorer, the degradation encoder and, with `--full`, the paper's configuration;
//! then the time of one compact training step (batch 4, 64² crops, L1 + ICRM on 32² sub-crops,
//! backward and AdamW update).

use std::time::{Duration, Instant};

use clearair_model::{
    ClearAirConfig, ClearAirNet, DegradationEncoder, EncoderConfig, IcrmConfig, Priors,
    parameter_count, parse_device, restoration_loss,
};
use rand::SeedableRng;
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

fn median_time(mut run: impl FnMut()) -> Duration {
    run();
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

fn random_priors(config: &ClearAirConfig, batch: i64, size: i64, device: Device) -> Priors {
    let options = (Kind::Float, device);
    let labels = Tensor::randint(8, [batch, 1, size, size], (Kind::Int64, device));
    Priors {
        quality: Tensor::randn([batch, config.quality_dim], options),
        masks: labels
            .eq_tensor(&Tensor::arange(8, (Kind::Int64, device)).view([1, 8, 1, 1]))
            .to_kind(Kind::Float),
        content: Tensor::randn([batch, config.content_dim], options),
        degradation: Tensor::randn([batch, config.degradation_dim], options),
    }
}

fn time_restorer(name: &str, config: &ClearAirConfig, size: i64, device: Device) {
    let store = nn::VarStore::new(device);
    let network = ClearAirNet::new(&store.root(), config);
    let image = Tensor::rand([1, 3, size, size], (Kind::Float, device));
    let priors = random_priors(config, 1, size, device);
    let time = median_time(|| {
        let restored =
            tch::no_grad(|| network.forward_checked(&image, &priors, false)).expect("valid priors");
        let _ = restored.sum(Kind::Float).double_value(&[]); // forces completion on CUDA
    });
    println!(
        "{name}: {} parameters, {size}×{size} forward {:.1} ms",
        parameter_count(&store),
        time.as_secs_f64() * 1e3
    );
}

fn time_training_step(
    config: &ClearAirConfig,
    device: Device,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = nn::VarStore::new(device);
    let network = ClearAirNet::new(&store.root(), config);
    let mut optimiser = nn::AdamW::default().build(&store, 2e-4)?;
    let clean = Tensor::rand([4, 3, 64, 64], (Kind::Float, device));
    let degraded = (&clean + clean.randn_like() * 0.1).clamp(0.0, 1.0);
    let priors = random_priors(config, 4, 64, device);
    let icrm = IcrmConfig {
        crop: Some(32),
        ..IcrmConfig::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let time = median_time(|| {
        let loss = restoration_loss(&network, &degraded, &clean, &priors, &icrm, &mut rng);
        optimiser.backward_step(&loss.total);
        let _ = loss.total.double_value(&[]);
    });
    println!(
        "compact training step (4×64², ICRM on 32²): {:.1} ms",
        time.as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let size: i64 = value_of("--size")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(256);
    let device = parse_device(&value_of("--device").unwrap_or_else(|| "cpu".into()))?;
    println!(
        "device {device:?}, {} libtorch threads",
        tch::get_num_threads()
    );

    time_restorer("compact(36)", &ClearAirConfig::compact(36), size, device);
    if args.iter().any(|a| a == "--full") {
        time_restorer("full(4096)", &ClearAirConfig::full(4096), size, device);
    }

    let store = nn::VarStore::new(device);
    let encoder = DegradationEncoder::new(&store.root(), &EncoderConfig::default());
    let image = Tensor::rand([1, 3, size, size], (Kind::Float, device));
    let time = median_time(|| {
        let output = tch::no_grad(|| encoder.forward(&image));
        let _ = output.logits.sum(Kind::Float).double_value(&[]);
    });
    println!(
        "encoder: {} parameters, {size}×{size} forward {:.1} ms",
        parameter_count(&store),
        time.as_secs_f64() * 1e3
    );
    time_training_step(&ClearAirConfig::compact(36), device)
}
