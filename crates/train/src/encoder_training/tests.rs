use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;

use super::*;
use crate::data::EncoderSampling;
use crate::mix::DegradationMix;
use crate::networks::load_encoder;
use crate::test_support::{exclusive_torch, scratch_dir, small_encoder, synthetic_photos};

fn job(
    folder: &Path,
    name: &str,
    iterations: u64,
    init: Option<PathBuf>,
    anchor: Option<PathBuf>,
    frozen_norm: bool,
) -> EncoderTraining {
    EncoderTraining {
        name: name.into(),
        config: small_encoder(),
        sampler: EncoderSampler::new(
            synthetic_photos(3, 48),
            EncoderSampling {
                side: 32,
                final_side: 32,
                final_from: iterations,
                max_scale: 1.0,
                mix: DegradationMix {
                    clean: 0.3,
                    ..DegradationMix::default()
                },
            },
            5,
        )
        .unwrap(),
        init,
        anchor: anchor.map(|path| (path, 1.0)),
        frozen_norm,
        pairs: 3,
        loss_weights: EncoderLossWeights::default(),
        schedule: LearningRateSchedule {
            peak: 1e-2,
            floor: 1e-3,
            warmup_steps: 0,
            range_test: None,
        },
        adamw: AdamWConfig::default(),
        seed: 5,
        device: Device::Cpu,
        workers: 1,
        prefetch: 1,
        limits: RunLimits {
            iterations,
            stop_at: None,
            time_budget: None,
            checkpoint_every: 0,
            checkpoint: None,
            resume: false,
        },
        output: folder.join(format!("{name}.safetensors")),
        data_description: "synthetic test photos".into(),
        command: "test".into(),
    }
}

fn variables(path: &Path) -> HashMap<String, Tensor> {
    load_encoder(path, Device::Cpu).unwrap().store.variables()
}

/// Names of the batch-norm statistics whose values differ between `a` and `b`, and whether
/// any trainable weight differs.
fn changes(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> (Vec<String>, bool) {
    let statistic = |name: &str| name.ends_with("running_mean") || name.ends_with("running_var");
    let mut statistics = Vec::new();
    let mut weights = false;
    for (name, value) in a {
        if value.equal(&b[name]) {
            continue;
        }
        if statistic(name) {
            statistics.push(name.clone());
        } else {
            weights = true;
        }
    }
    (statistics, weights)
}

#[test]
fn an_anchored_fine_tune_with_frozen_norm_keeps_the_statistics() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("encoder-anchor");
    let start = folder.path().join("start.safetensors");
    train_encoder(&job(folder.path(), "start", 3, None, None, false)).unwrap();
    let before = variables(&start);
    assert!(before.keys().any(|name| name.ends_with("running_mean")));

    // Frozen: the statistics are the starting weights', the weights moved.
    let (_, _, outcome) = train_encoder(&job(
        folder.path(),
        "frozen",
        4,
        Some(start.clone()),
        Some(start.clone()),
        true,
    ))
    .unwrap();
    assert_eq!(outcome.steps, 4);
    assert!(outcome.losses.iter().all(|loss| loss.is_finite()));
    let (statistics, weights) = changes(
        &before,
        &variables(&folder.path().join("frozen.safetensors")),
    );
    assert!(statistics.is_empty(), "statistics moved: {statistics:?}");
    assert!(weights, "no weight moved");
    let manifest = ModelManifest::read(&folder.path().join("frozen.json")).unwrap();
    assert_eq!(manifest.iterations, 4);

    // Not frozen: the same fine-tune moves the statistics too.
    train_encoder(&job(
        folder.path(),
        "free",
        4,
        Some(start.clone()),
        Some(start),
        false,
    ))
    .unwrap();
    let (statistics, _) = changes(&before, &variables(&folder.path().join("free.safetensors")));
    assert!(!statistics.is_empty());
}
