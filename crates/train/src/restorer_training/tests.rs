use super::*;
use crate::data::{CropSchedule, RestorerSampling};
use crate::mix::DegradationMix;
use crate::test_support::{
    cpu_priors, exclusive_torch, scratch_dir, synthetic_photos, tiny_restorer, window_cache,
    window_maker,
};
use clearair_model::{DegradationKind, PixelLoss, load_weights};
use tch::Tensor;

fn job(name: &str, iterations: u64, folder: &std::path::Path) -> RestorerTraining {
    job_in_view(name, iterations, folder, EncoderView::Whole)
}

/// [`job`] with F_c/F_d from the encoder's `view`.
fn job_in_view(
    name: &str,
    iterations: u64,
    folder: &std::path::Path,
    view: EncoderView,
) -> RestorerTraining {
    job_with(name, iterations, folder, view, [1.0; 5], [1.0; 5])
}

/// [`job_in_view`] with the keep and frequency losses weighted per kind by `keep_kinds` and
/// `frequency_kinds`.
fn job_with(
    name: &str,
    iterations: u64,
    folder: &std::path::Path,
    view: EncoderView,
    keep_kinds: [f64; 5],
    frequency_kinds: [f64; 5],
) -> RestorerTraining {
    let priors = cpu_priors();
    let settings = crate::windows::WindowSettings {
        min_side: 32,
        max_side: 40,
        mix: DegradationMix {
            clean: 0.0,
            mixture: 0.0,
            kinds: vec![DegradationKind::LowLight, DegradationKind::Haze],
            ..DegradationMix::default()
        },
        dark_share: 0.1,
        dark_gamma_max: 3.0,
    };
    tch::manual_seed(0);
    let maker =
        Arc::new(window_maker(synthetic_photos(3, 48), settings, 21).with_encoder_view(view));
    let cache = window_cache(
        &maker,
        crate::windows::PoolSchedule {
            size: 4,
            per_step: 0.5,
        },
    );
    let sampling = RestorerSampling {
        crops: CropSchedule::fixed(32, 2),
        prior_dropout: 0.1,
        all_neutral: 0.05,
        all_neutral_kinds: [1.0; 5],
        all_neutral_dark: 1.0,
        keep_kinds,
        frequency_kinds,
        embedding_dropout: 0.0,
        misread: 0.0,
    };
    RestorerTraining {
        name: name.to_owned(),
        config: tiny_restorer(36),
        sampler: RestorerSampler::new(cache, 32, sampling, 21).unwrap(),
        backends: priors.backends(view),
        starting_point: StartingPoint::Random,
        init: None,
        pixel_loss: PixelLoss::L1.into(),
        icrm: IcrmConfig {
            crop: Some(16),
            ..IcrmConfig::default()
        },
        icrm_every: 1,
        schedule: LearningRateSchedule {
            peak: 2e-3,
            floor: 1e-4,
            warmup_steps: 2,
            range_test: None,
        },
        adamw: AdamWConfig::default(),
        clip_grad_norm: Some(1.0),
        weight_average: None,
        seed: 21,
        device: Device::Cpu,
        shards: 1,
        prefetch: 2,
        limits: RunLimits {
            iterations,
            stop_at: None,
            time_budget: None,
            checkpoint_every: 3,
            checkpoint: Some(Checkpoint::new(folder.join("checkpoint"))),
            resume: false,
        },
        output: folder.join(format!("{name}.safetensors")),
        data_description: "synthetic test photos".into(),
        command: "test".into(),
        progress_eval: None,
        refiner_gate: None,
    }
}

/// The tiny restorer's weights as stored in `path`.
fn stored_weights(path: &std::path::Path) -> std::collections::HashMap<String, Tensor> {
    let mut store = nn::VarStore::new(Device::Cpu);
    let _ = ClearAirNet::new(&store.root(), &tiny_restorer(36));
    load_weights(&mut store, path).unwrap();
    store.variables()
}

/// Every variable of `store` matches `expected` (within float tolerance unless `exact`).
fn assert_same_weights(
    store: &nn::VarStore,
    expected: &std::collections::HashMap<String, Tensor>,
    exact: bool,
) {
    for (name, tensor) in store.variables() {
        let same = if exact {
            tensor.equal(&expected[&name])
        } else {
            tensor.allclose(&expected[&name], 1e-6, 1e-7, false)
        };
        assert!(same, "{name}");
    }
}

#[test]
fn smoke_training_lowers_the_loss_and_writes_a_loadable_model() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("smoke");
    let job = job("smoke", 24, folder.path());
    let (_, _, outcome) = train_restorer(&job).unwrap();
    assert_eq!(
        (outcome.steps, outcome.steps_run, outcome.losses.len()),
        (24, 24, 24)
    );
    let mean = |losses: &[f64]| losses.iter().sum::<f64>() / losses.len() as f64;
    let (first, last) = (mean(&outcome.losses[..6]), mean(&outcome.losses[18..]));
    assert!(
        last < 0.75 * first,
        "loss did not fall: first {first:.4}, last {last:.4}"
    );

    let manifest = ModelManifest::read(&folder.path().join("smoke.json")).unwrap();
    assert_eq!(manifest.iterations, 24);
    assert_eq!(
        manifest.backends,
        Some(cpu_priors().backends(EncoderView::Whole))
    );
    assert_eq!(manifest.network, NetworkConfig::ClearAir(tiny_restorer(36)));
    let loaded =
        crate::networks::load_restorer(&folder.path().join("smoke.safetensors"), Device::Cpu)
            .unwrap();
    assert_eq!(loaded.manifest, manifest);
}

#[test]
fn resuming_continues_at_the_saved_step_and_matches_an_uninterrupted_run() {
    let _torch = exclusive_torch();
    let straight_folder = scratch_dir("straight");
    let (straight_store, _, straight) =
        train_restorer(&job("model", 6, straight_folder.path())).unwrap();
    assert_eq!(straight.steps, 6);

    let resumed_folder = scratch_dir("resumed");
    let mut interrupted = job("model", 6, resumed_folder.path());
    interrupted.limits.stop_at = Some(3);
    let (_, _, first) = train_restorer(&interrupted).unwrap();
    assert_eq!(&straight.losses[..3], &first.losses[..]);
    assert_eq!(first.steps, 3);
    let checkpoint = Checkpoint::new(resumed_folder.path().join("checkpoint"));
    let state: CheckpointState =
        serde_json::from_str(&std::fs::read_to_string(checkpoint.state_path()).unwrap()).unwrap();
    assert_eq!(
        (state.network.as_str(), state.step, state.seed),
        ("restorer", 3, 21)
    );
    // The checkpoint's weights load as a restorer on their own, as evaluation reads them.
    let partial = crate::networks::load_restorer(&checkpoint.weights_path(), Device::Cpu).unwrap();
    assert_eq!(partial.manifest.iterations, 3);

    let mut resume = job("model", 6, resumed_folder.path());
    resume.limits.resume = true;
    let (resumed_store, _, second) = train_restorer(&resume).unwrap();
    assert_eq!((second.steps, second.steps_run), (6, 3));
    // Steps 3–5 saw the same batches and optimiser state as the uninterrupted run.
    assert_eq!(&straight.losses[3..], &second.losses[..]);
    assert_same_weights(&resumed_store, &straight_store.variables(), false);

    // The written weights are the final ones.
    let written = stored_weights(&resumed_folder.path().join("model.safetensors"));
    assert_same_weights(&resumed_store, &written, true);
}

#[test]
fn resuming_with_other_settings_is_refused() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("mismatch");
    train_restorer(&job("model", 2, folder.path())).unwrap();
    let mut other = job("model", 4, folder.path());
    other.pixel_loss = PixelLoss::Psnr.into();
    other.limits.resume = true;
    let error = train_restorer(&other).unwrap_err().to_string();
    assert!(error.contains("other settings"), "{error}");
}

/// A run trained 2 steps with `pixel` refuses to resume with `other` (another loss) and
/// resumes with `pixel`.
fn assert_the_pixel_loss_is_kept(name: &str, pixel: PixelObjective, other: PixelObjective) {
    let _torch = exclusive_torch();
    let folder = scratch_dir(name);
    let mut first = job("model", 2, folder.path());
    first.pixel_loss = pixel;
    train_restorer(&first).unwrap();
    let mut refused = job("model", 4, folder.path());
    refused.pixel_loss = other;
    let mut same = job("model", 4, folder.path());
    same.pixel_loss = pixel;
    assert_a_resume_refuses_then_resumes(refused, same);
}

#[test]
fn each_pixel_loss_setting_is_kept_across_a_resume() {
    let l1: PixelObjective = PixelLoss::L1.into();
    let capped: PixelObjective = PixelLoss::PsnrCapped.into();
    let keeping = PixelObjective {
        keep_weight: 1.0,
        ..l1
    };
    let mut lowered = capped;
    lowered.ceiling_db = 35.0;
    let mut spectral = l1;
    spectral.frequency_weight = 0.2;
    // The same keep weight under the default ceiling is another loss.
    let mut keep_capped = keeping;
    keep_capped.keep_ceiling_db = 40.0;
    // (scratch folder, the run's loss, another loss it must not resume with)
    for (name, pixel, other) in [
        ("ceiling", lowered, capped),
        ("frequency", spectral, l1),
        ("keep", keeping, l1),
        ("keep-ceiling", keep_capped, keeping),
    ] {
        assert_the_pixel_loss_is_kept(name, pixel, other);
    }
}

#[test]
fn the_keep_losss_kinds_are_kept_across_a_resume() {
    let keeping = PixelObjective {
        keep_weight: 1.0,
        ..PixelLoss::L1.into()
    };
    let spare_haze = [1.0, 0.0, 1.0, 1.0, 1.0];
    assert_the_kinds_are_kept("keep-kinds", keeping, spare_haze, [1.0; 5]);
}

#[test]
fn the_frequency_losss_kinds_are_kept_across_a_resume() {
    let spectral = PixelObjective {
        frequency_weight: 0.5,
        ..PixelLoss::L1.into()
    };
    let spare_haze = [1.0, 0.0, 1.0, 1.0, 1.0];
    assert_the_kinds_are_kept("frequency-kinds", spectral, [1.0; 5], spare_haze);
}

/// A run with `pixel` and the per-kind multipliers of its keep and frequency terms resumes
/// with them and refuses to resume with every kind alike. Haze is what they should spare:
/// the windows of these jobs are hazy or dark, so every multiplier is met.
fn assert_the_kinds_are_kept(
    name: &str,
    pixel: PixelObjective,
    keep_kinds: [f64; 5],
    frequency_kinds: [f64; 5],
) {
    let _torch = exclusive_torch();
    let folder = scratch_dir(name);
    let weighted = |iterations| {
        let mut job = job_with(
            "model",
            iterations,
            folder.path(),
            EncoderView::Whole,
            keep_kinds,
            frequency_kinds,
        );
        job.pixel_loss = pixel;
        job
    };
    train_restorer(&weighted(2)).unwrap();
    let mut every_kind = job("model", 4, folder.path());
    every_kind.pixel_loss = pixel;
    assert_a_resume_refuses_then_resumes(every_kind, weighted(4));
}

/// Resuming as `other` is refused for its other settings; resuming as `same` runs to its end
/// (4 steps).
fn assert_a_resume_refuses_then_resumes(mut other: RestorerTraining, mut same: RestorerTraining) {
    other.limits.resume = true;
    let error = train_restorer(&other).unwrap_err().to_string();
    assert!(error.contains("other settings"), "{error}");
    same.limits.resume = true;
    let (_, _, outcome) = train_restorer(&same).unwrap();
    assert_eq!(outcome.steps, 4);
}

#[test]
fn the_encoder_view_is_named_in_the_manifest_and_kept_across_a_resume() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("view");
    let first = job_in_view("model", 2, folder.path(), EncoderView::Centre);
    train_restorer(&first).unwrap();
    let manifest = ModelManifest::read(&folder.path().join("model.json")).unwrap();
    assert_eq!(
        manifest.backends.unwrap().degradation.name,
        EncoderView::Centre.backend_name()
    );
    assert_a_resume_refuses_then_resumes(
        job("model", 4, folder.path()),
        job_in_view("model", 4, folder.path(), EncoderView::Centre),
    );
}

#[test]
fn a_manifest_must_name_the_view_the_windows_were_embedded_in() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("view-mismatch");
    let mut mismatched = job("model", 2, folder.path());
    mismatched.backends = cpu_priors().backends(EncoderView::Centre);
    let error = train_restorer(&mismatched).unwrap_err().to_string();
    assert!(error.contains("`clearair-encoder/centre`"), "{error}");
    assert!(!folder.path().join("model.safetensors").exists());
}

#[test]
fn a_time_budget_stops_cleanly_and_still_writes_the_model() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("budget");
    let mut budgeted = job("budget", 10_000, folder.path());
    budgeted.limits.time_budget = Some(Duration::from_millis(1));
    let (_, _, outcome) = train_restorer(&budgeted).unwrap();
    assert!(outcome.steps < 10_000);
    assert!(folder.path().join("budget.safetensors").is_file());
    assert_eq!(
        ModelManifest::read(&folder.path().join("budget.json"))
            .unwrap()
            .iterations,
        outcome.steps
    );
    assert!((budgeted.limits.progress(1, Duration::from_secs(1)) - 1.0).abs() < 1e-12);
}

#[test]
fn init_starts_from_the_given_weights() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("init");
    let (trained, _, _) = train_restorer(&job("trained", 2, folder.path())).unwrap();
    let mut from_init = job("copy", 0, folder.path());
    from_init.init = Some(folder.path().join("trained.safetensors"));
    let (copied, _, outcome) = train_restorer(&from_init).unwrap();
    assert_eq!(outcome.steps, 0);
    assert_same_weights(&copied, &trained.variables(), true);
}

#[test]
fn a_stage_that_sees_the_upload_starts_from_weights_that_read_three_channels() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("widened");
    let (trained, _, _) = train_restorer(&job("trained", 2, folder.path())).unwrap();
    let mut stage = job("stage", 0, folder.path());
    stage.config.sees_upload = true;
    stage.init = Some(folder.path().join("trained.safetensors"));
    let (widened, _, outcome) = train_restorer(&stage).unwrap();
    assert_eq!(outcome.steps, 0);
    let (before, after) = (trained.variables(), widened.variables());
    assert_eq!(before.len(), after.len());
    for (name, was) in &before {
        let now = &after[name];
        if name == ClearAirNet::INPUT_WEIGHT {
            assert_eq!(now.size()[1], 6);
            assert!(now.narrow(1, 0, 3).equal(was));
            assert_eq!(
                now.narrow(1, 3, 3)
                    .abs()
                    .sum(tch::Kind::Float)
                    .double_value(&[]),
                0.0
            );
        } else {
            assert!(now.equal(was), "{name}");
        }
    }
}

#[test]
fn an_identity_start_returns_its_input_before_training() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("identity");
    let mut start = job("identity", 0, folder.path());
    start.starting_point = StartingPoint::IdentityOutput;
    let (_, network, outcome) = train_restorer(&start).unwrap();
    assert_eq!(outcome.steps, 0);
    let batch = RestorerBatch::assemble(&start.sampler.batch(0).unwrap(), Device::Cpu).unwrap();
    let restored = tch::no_grad(|| network.forward_t(&batch.degraded, &batch.priors, false));
    assert!(restored.equal(&batch.degraded));
}

#[test]
fn splitting_the_batch_across_threads_gives_the_same_gradient() {
    let _torch = exclusive_torch();
    let folder = scratch_dir("shards");
    let job = job("shards", 0, folder.path());
    let store = nn::VarStore::new(Device::Cpu);
    let network = ClearAirNet::new(&store.root(), &job.config);
    let samples: Vec<_> = [0, 1]
        .iter()
        .flat_map(|&i| job.sampler.batch(i).unwrap())
        .collect();
    let batch = RestorerBatch::assemble(&samples, Device::Cpu).unwrap();
    // Drawn once for both: libtorch's generator is process-global, and tests that do not
    // hold the torch lock (those building a window maker initialise an encoder) may draw
    // from it between a reseed and the draws.
    tch::manual_seed(5);
    let mut rng = keyed_rng(1, Purpose::RestorerStep, 0, 0);
    let draws = LossDraws::draw(
        &network,
        &batch.degraded,
        &batch.priors,
        &job.icrm,
        &mut rng,
    );
    let gradients = |shards: usize| {
        for mut variable in store.trainable_variables() {
            variable.zero_grad();
        }
        let loss = crate::step::accumulate_gradients(
            &network,
            &batch,
            &draws,
            &job.icrm,
            PixelLoss::L1.into(),
            shards,
        )
        .unwrap();
        let grads: Vec<Tensor> = store
            .trainable_variables()
            .iter()
            .map(|v| v.grad().copy())
            .collect();
        (loss, grads)
    };
    let (whole, whole_grads) = gradients(1);
    let (split, split_grads) = gradients(2);
    assert!(
        (whole.total - split.total).abs() < 1e-5,
        "{whole:?} vs {split:?}"
    );
    for (a, b) in whole_grads.iter().zip(&split_grads) {
        assert!(a.allclose(b, 1e-4, 1e-6, false));
    }
}

#[test]
fn a_weight_average_is_delivered_and_resumes_exactly() {
    let _torch = exclusive_torch();
    let averaged = |folder: &std::path::Path| {
        let mut job = job("model", 6, folder);
        job.weight_average = Some(0.9);
        job
    };
    let straight_folder = scratch_dir("average-straight");
    let (straight_average, _, _) = train_restorer(&averaged(straight_folder.path())).unwrap();
    // The last step's weights stay in the checkpoint; the average differs from them.
    let checkpoint = Checkpoint::new(straight_folder.path().join("checkpoint"));
    let last = stored_weights(&checkpoint.weights_path());
    assert!(
        straight_average
            .variables()
            .iter()
            .any(|(name, tensor)| !tensor.allclose(&last[name], 1e-6, 1e-7, false)),
        "the average equals the last weights"
    );
    // The average and its manifest load as a restorer, as evaluation reads them.
    let loaded = crate::networks::load_restorer(&checkpoint.average_path(), Device::Cpu).unwrap();
    assert!(loaded.manifest.name.contains("weight average"));

    // Interrupted at step 3 and resumed: the same average as the uninterrupted run.
    let resumed_folder = scratch_dir("average-resumed");
    let mut interrupted = averaged(resumed_folder.path());
    interrupted.limits.stop_at = Some(3);
    train_restorer(&interrupted).unwrap();
    let state: CheckpointState = serde_json::from_str(
        &std::fs::read_to_string(
            Checkpoint::new(resumed_folder.path().join("checkpoint")).state_path(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(state.average_updates, Some(3));
    let mut resume = averaged(resumed_folder.path());
    resume.limits.resume = true;
    let (resumed_average, _, _) = train_restorer(&resume).unwrap();
    assert_same_weights(&resumed_average, &straight_average.variables(), false);
    // What the run wrote to its output is the average.
    let written = stored_weights(&resumed_folder.path().join("model.safetensors"));
    assert_same_weights(&resumed_average, &written, true);
}
