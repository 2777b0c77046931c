//! `clearair profile`: where a restore's time goes inside the restorer, span by span.
//!
//! One photo, centre-cropped and resized to `size²`, gets the priors the mesh computes for it
//! (BRISQUE, graph masks, the encoder's embeddings); the restorer then runs as the
//! restoration service runs it ([`restore_in_tiles`] with the service's default tiling), with
//! the network's named spans ([`clearair_model::profile`]) recorded over `runs` passes after
//! one warm-up pass. Two views: the tree of stages (each level of the U-Net, and inside every
//! transformer block its layer norms, convolutions and attention) and the same time summed by
//! operation across the whole network.

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use clearair_backends::{
    Precision,
    restoration::{GlobalPriors, Tiling, forward_in, restore_in_tiles},
};
use clearair_model::profile::{SpanTotal, collect, span};
use serde::Serialize;
use tch::Device;

use crate::error::Result;
use crate::mesh::MeshRestorer;
use crate::networks::{load_encoder, load_first_restorer, trained_encoder_view};
use crate::photos::read_photo;
use crate::priors::{CpuPriorBackends, stack_quality};

/// What to profile.
#[derive(Debug, Clone)]
pub struct ProfileSettings {
    /// The restorer's weights.
    pub restorer: PathBuf,
    /// The degradation encoder's weights.
    pub encoder: PathBuf,
    /// BRISQUE parameters.
    pub brisque_params: PathBuf,
    /// The photo.
    pub image: PathBuf,
    /// Side of the square the photo is cropped and resized to.
    pub size: u32,
    /// Recorded passes (after one warm-up pass).
    pub runs: usize,
    /// The restorer's tiles (the service's default unless measuring another).
    pub tiling: Tiling,
    /// The network's arithmetic (bf16: weights, features and priors; the output back in fp32).
    pub precision: Precision,
    /// Where the networks run (the CPU: spans time synchronous ops).
    pub device: Device,
}

/// One row of the profile, per pass.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileRow {
    /// Span path (`encoder_level1/attention/qkv_conv1x1`).
    pub path: String,
    /// Nesting depth.
    pub depth: usize,
    /// Milliseconds per pass.
    pub ms: f64,
    /// Milliseconds per pass outside nested spans.
    pub own_ms: f64,
    /// Share of the pass.
    pub share: f64,
    /// Calls per pass.
    pub calls: f64,
}

/// The profile of one size.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// Image side.
    pub size: u32,
    /// Tiles the restore was cut into.
    pub tiles: usize,
    /// Recorded passes.
    pub runs: usize,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// Milliseconds per restore (tiling, the network, back to 8 bits).
    pub restore_ms: f64,
    /// The stage tree.
    pub tree: Vec<ProfileRow>,
    /// Leaf spans summed by name, largest first.
    pub by_operation: Vec<ProfileRow>,
}

fn per_pass(total: &SpanTotal, runs: usize, pass_ms: f64) -> ProfileRow {
    let ms = total.total.as_secs_f64() * 1e3 / runs as f64;
    ProfileRow {
        path: total.path.clone(),
        depth: total.depth,
        ms,
        own_ms: total.own.as_secs_f64() * 1e3 / runs as f64,
        share: ms / pass_ms,
        calls: total.calls as f64 / runs as f64,
    }
}

/// Profiles the restorer on one photo.
pub fn run_profile(settings: &ProfileSettings) -> Result<ProfileReport> {
    let mut restorer = load_first_restorer(&settings.restorer, settings.device)?;
    let precision = settings.precision;
    precision.convert(&mut restorer.store);
    let encoder = load_encoder(&settings.encoder, settings.device)?;
    let priors = CpuPriorBackends::load(&settings.brisque_params)?;
    let image = read_photo(&settings.image)?
        .centre_square()
        .resize(settings.size, settings.size)?;
    let mesh = MeshRestorer {
        restorer: &restorer.network,
        restorer_ensemble: 1,
        refiner: None,
        refiner_gate: None,
        fallback_refiner: None,
        fallback_gate: None,
        encoder: &encoder.network,
        view: trained_encoder_view(&restorer.manifest)?,
        priors: &priors,
        device: settings.device,
        precision,
    };
    let cpu = priors.compute(&image)?;
    let (content, degradation, _) = mesh.embed(&image)?;
    let global = GlobalPriors {
        quality: stack_quality(std::slice::from_ref(&cpu.quality), settings.device),
        content,
        degradation,
    };
    let restore = || {
        restore_in_tiles(
            &image,
            &cpu.masks,
            &global,
            settings.tiling,
            settings.device,
            |tile, priors| {
                span("network", || {
                    forward_in(precision, &restorer.network, tile, priors)
                })
            },
        )
    };
    restore()?; // warm-up: allocator pools, oneDNN primitives
    let runs = settings.runs.max(1);
    let started = Instant::now();
    let (outcome, totals) = collect(|| -> Result<()> {
        for _ in 0..runs {
            span("restore", restore)?;
        }
        Ok(())
    });
    outcome?;
    let restore_ms = started.elapsed().as_secs_f64() * 1e3 / runs as f64;
    let tree: Vec<ProfileRow> = totals
        .iter()
        .map(|t| per_pass(t, runs, restore_ms))
        .collect();
    let mut leaves: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for row in &tree {
        if row.own_ms > 0.0 && row.depth > 0 {
            let name = row.path.rsplit('/').next().unwrap_or(&row.path);
            let name = if tree
                .iter()
                .any(|other| other.path.starts_with(&format!("{}/", row.path)))
            {
                // A stage's own time: the ops between its nested spans.
                "(between spans)"
            } else {
                name
            };
            let entry = leaves.entry(name).or_default();
            entry.0 += row.own_ms;
            entry.1 += row.calls;
        }
    }
    let mut by_operation: Vec<ProfileRow> = leaves
        .into_iter()
        .map(|(name, (ms, calls))| ProfileRow {
            path: name.to_owned(),
            depth: 0,
            ms,
            own_ms: ms,
            share: ms / restore_ms,
            calls,
        })
        .collect();
    by_operation.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(ProfileReport {
        size: settings.size,
        tiles: totals
            .iter()
            .find(|t| t.path == "restore/network")
            .map_or(0, |t| t.calls as usize / runs),
        runs,
        threads: tch::get_num_threads(),
        restore_ms,
        tree,
        by_operation,
    })
}

/// The profile as two plain-text tables.
pub fn describe_profile(report: &ProfileReport) -> String {
    let mut out = format!(
        "restorer profile: {side}×{side} in {tiles} tile(s), {threads} libtorch threads, {runs} passes after a warm-up: {ms:.1} ms per restore\n\n",
        side = report.size,
        tiles = report.tiles,
        threads = report.threads,
        runs = report.runs,
        ms = report.restore_ms,
    );
    out.push_str(&format!(
        "{:<56} {:>10} {:>10} {:>7} {:>6}\n",
        "stage", "ms/pass", "own ms", "share", "calls"
    ));
    for row in &report.tree {
        let name = row.path.rsplit('/').next().unwrap_or(&row.path);
        let label = format!("{}{}", "  ".repeat(row.depth), name);
        out.push_str(&format!(
            "{label:<56} {:>10.1} {:>10.1} {:>6.1}% {:>6.0}\n",
            row.ms,
            row.own_ms,
            100.0 * row.share,
            row.calls
        ));
    }
    out.push_str(&format!(
        "\n{:<56} {:>10} {:>7} {:>6}\n",
        "by operation (own time, summed over the network)", "ms/pass", "share", "calls"
    ));
    for row in &report.by_operation {
        out.push_str(&format!(
            "{:<56} {:>10.1} {:>6.1}% {:>6.0}\n",
            row.path,
            row.ms,
            100.0 * row.share,
            row.calls
        ));
    }
    out
}
