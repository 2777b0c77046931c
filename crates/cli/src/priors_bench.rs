//! `clearair priors-bench`: latency and throughput of exported prior modules (DeQA-Score,
//! SAM2, DA-CLIP) at several batch sizes on one device, the figures behind the GPU sizing of
//! the prior services.
//!
//! Each module runs on random inputs of its manifest's input size: `warmup` untimed calls,
//! then `runs` timed ones per batch size. A call ends when its outputs are on the CPU, so GPU
//! work is included. SAM2 is timed as its two halves: the image encoder at each batch size,
//! and the mask decoder on one image's `prompts` point prompts (a 32×32 grid is 16 such calls
//! per image).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, bail};
use clap::Args;
use clearair_model::{ExportManifest, Precision, ScriptModel};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// What to measure.
#[derive(Args, Debug, Clone)]
pub(crate) struct PriorsBenchArgs {
    /// A DeQA-Score export (`deploy/export/deqa_export.py`).
    #[arg(long)]
    pub quality: Option<PathBuf>,
    /// A SAM2 encoder export (`deploy/export/sam2_export.py`; its decoder sits beside it).
    #[arg(long)]
    pub segmentation: Option<PathBuf>,
    /// A DA-CLIP export (`deploy/export/daclip.py`).
    #[arg(long)]
    pub degradation: Option<PathBuf>,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// `fp32`, `fp16` or `bf16`.
    #[arg(long, value_parser = parse_precision, default_value = "fp32")]
    pub precision: Precision,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub batches: Vec<i64>,
    /// Timed calls per batch size.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Untimed calls first (allocator, cuDNN autotuning, graph optimisation).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Point prompts per SAM2 decoder call.
    #[arg(long, default_value_t = 64)]
    pub prompts: i64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_precision(text: &str) -> Result<Precision, String> {
    match text {
        "fp32" => Ok(Precision::Fp32),
        "fp16" => Ok(Precision::Fp16),
        "bf16" => Ok(Precision::Bf16),
        other => Err(format!("`{other}`: use fp32, fp16 or bf16")),
    }
}

/// One module at one batch size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measurement {
    /// `quality`, `segmentation encoder`, `segmentation decoder` or `degradation`.
    pub module: String,
    /// The export's architecture.
    pub architecture: String,
    /// Images (or, for the decoder, prompts) per call.
    pub batch: i64,
    /// Median call time, milliseconds.
    pub p50_ms: f64,
    /// Slowest call, milliseconds.
    pub max_ms: f64,
    /// `batch / p50`, items per second.
    pub per_second: f64,
}

fn time_calls(
    runs: usize,
    warmup: usize,
    mut call: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    for _ in 0..warmup {
        call()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        call()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

fn input_size(manifest: &ExportManifest) -> anyhow::Result<i64> {
    #[derive(serde::Deserialize)]
    struct Input {
        size: i64,
    }
    let input: Input = manifest.section("input")?;
    Ok(input.size)
}

fn measure_images(
    args: &PriorsBenchArgs,
    label: &str,
    path: &Path,
    prior: &str,
    progress: &mut impl FnMut(&Measurement),
) -> anyhow::Result<Vec<Measurement>> {
    let manifest = ExportManifest::read_for(path, prior)?;
    let side = input_size(&manifest)?;
    let model = ScriptModel::load(path, &args.device, args.precision)?;
    let mut results = Vec::new();
    for &batch in &args.batches {
        let input = Tensor::rand([batch, 3, side, side], (Kind::Float, Device::Cpu));
        let (p50, max) = time_calls(args.runs, args.warmup, || {
            model.forward(std::slice::from_ref(&input))?;
            Ok(())
        })
        .with_context(|| format!("{label} at batch {batch}"))?;
        let measurement = Measurement {
            module: label.to_owned(),
            architecture: manifest.architecture.clone(),
            batch,
            p50_ms: p50,
            max_ms: max,
            per_second: batch as f64 / (p50 / 1e3),
        };
        progress(&measurement);
        results.push(measurement);
    }
    Ok(results)
}

fn measure_sam2_decoder(
    args: &PriorsBenchArgs,
    path: &Path,
    progress: &mut impl FnMut(&Measurement),
) -> anyhow::Result<Measurement> {
    let manifest = ExportManifest::read_for(path, "segmentation")?;
    let side = input_size(&manifest)?;
    let decoder_name: String = manifest.section("decoder")?;
    let encoder = ScriptModel::load(path, &args.device, args.precision)?;
    let decoder = ScriptModel::load(
        &path.with_file_name(decoder_name),
        &args.device,
        args.precision,
    )?;
    let image = Tensor::rand([1, 3, side, side], (Kind::Float, Device::Cpu));
    let features = encoder.forward_on_device(&[image])?;
    let coords = Tensor::rand([args.prompts, 1, 2], (Kind::Float, Device::Cpu)) * side as f64;
    let labels = Tensor::ones([args.prompts, 1], (Kind::Int, Device::Cpu));
    let mut inputs: Vec<Tensor> = features.iter().map(Tensor::shallow_clone).collect();
    inputs.push(coords);
    inputs.push(labels);
    let (p50, max) = time_calls(args.runs, args.warmup, || {
        decoder.forward(&inputs)?;
        Ok(())
    })?;
    let measurement = Measurement {
        module: "segmentation decoder".to_owned(),
        architecture: manifest.architecture,
        batch: args.prompts,
        p50_ms: p50,
        max_ms: max,
        per_second: args.prompts as f64 / (p50 / 1e3),
    };
    progress(&measurement);
    Ok(measurement)
}

/// Runs every requested measurement, calling `progress` after each.
pub(crate) fn run(
    args: &PriorsBenchArgs,
    mut progress: impl FnMut(&Measurement),
) -> anyhow::Result<Vec<Measurement>> {
    if args.quality.is_none() && args.segmentation.is_none() && args.degradation.is_none() {
        bail!("name at least one of --quality, --segmentation, --degradation");
    }
    if args.batches.is_empty() || args.batches.iter().any(|&b| b < 1) {
        bail!("--batches must list sizes of at least 1");
    }
    let mut results = Vec::new();
    if let Some(path) = &args.quality {
        results.extend(measure_images(
            args,
            "quality",
            path,
            "quality",
            &mut progress,
        )?);
    }
    if let Some(path) = &args.segmentation {
        results.extend(measure_images(
            args,
            "segmentation encoder",
            path,
            "segmentation",
            &mut progress,
        )?);
        results.push(measure_sam2_decoder(args, path, &mut progress)?);
    }
    if let Some(path) = &args.degradation {
        results.extend(measure_images(
            args,
            "degradation",
            path,
            "degradation",
            &mut progress,
        )?);
    }
    if let Some(json) = &args.json {
        std::fs::write(json, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("writing {}", json.display()))?;
    }
    Ok(results)
}

/// One line of the printed table.
pub(crate) fn format_row(m: &Measurement) -> String {
    format!(
        "{:<22} {:<28} batch {:>4}  p50 {:>9.2} ms  max {:>9.2} ms  {:>9.1} /s",
        m.module, m.architecture, m.batch, m.p50_ms, m.max_ms, m.per_second
    )
}

#[cfg(test)]
mod tests;
