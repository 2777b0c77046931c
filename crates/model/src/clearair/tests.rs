use super::*;
use crate::error::ModelError;
use crate::test_support::{random_priors, tiny_config};
use crate::weights::parameter_count;
use tch::{Device, Kind};

fn network(config: &ClearAirConfig) -> (nn::VarStore, ClearAirNet) {
    let store = nn::VarStore::new(Device::Cpu);
    let network = ClearAirNet::new(&store.root(), config);
    (store, network)
}

#[test]
fn compact_keeps_odd_sizes() {
    let config = ClearAirConfig::compact(36);
    let (_store, network) = network(&config);
    let image = Tensor::rand([1, 3, 37, 53], (Kind::Float, Device::Cpu));
    let priors = random_priors(&config, 1, 37, 53, 5);
    let restored = tch::no_grad(|| network.forward_checked(&image, &priors, false)).unwrap();
    assert_eq!(restored.size(), [1, 3, 37, 53]);
    assert!(bool::try_from(restored.isfinite().all()).unwrap());
}

#[test]
fn tiny_and_degenerate_sizes_work() {
    let config = tiny_config(36);
    let (_store, network) = network(&config);
    for (height, width) in [(1, 1), (1, 9), (8, 8), (9, 2)] {
        let image = Tensor::rand([2, 3, height, width], (Kind::Float, Device::Cpu));
        let priors = random_priors(&config, 2, height, width, 2);
        let restored = tch::no_grad(|| network.forward_t(&image, &priors, false));
        assert_eq!(restored.size(), [2, 3, height, width]);
    }
}

#[test]
fn identity_starting_points_return_the_input_exactly() {
    let config = tiny_config(36);
    let image = Tensor::rand([2, 3, 13, 19], (Kind::Float, Device::Cpu));
    let priors = random_priors(&config, 2, 13, 19, 4);
    for start in [
        StartingPoint::Random,
        StartingPoint::IdentityOutput,
        StartingPoint::IdentityBranches,
    ] {
        let (store, network) = network(&config);
        start.apply(&store);
        let restored = tch::no_grad(|| network.forward_t(&image, &priors, true));
        let identity = restored.equal(&image);
        assert_eq!(identity, start != StartingPoint::Random, "{start:?}");
    }
}

#[test]
fn identity_branches_zero_every_residual_branch_and_nothing_else() {
    let config = tiny_config(36);
    let (store, _network) = network(&config);
    StartingPoint::IdentityBranches.apply(&store);
    let variables = store.variables();
    let zeroed: Vec<&String> = variables
        .iter()
        .filter(|(_, t)| t.numel() > 0 && t.abs().max().double_value(&[]) == 0.0)
        .map(|(name, _)| name)
        .collect();
    assert!(
        zeroed
            .iter()
            .any(|n| n.ends_with("attn.project_out.weight"))
    );
    assert!(zeroed.iter().any(|n| n.ends_with("ffn.project_out.weight")));
    assert!(zeroed.iter().any(|n| n.ends_with("sgu.project_out.weight")));
    assert!(zeroed.iter().any(|n| n.ends_with("dam.modulation.weight")));
    assert!(zeroed.contains(&&"output.weight".to_owned()));
    for name in &zeroed {
        assert!(
            name.contains("project_out")
                || name.contains("modulation")
                || name.starts_with("output.")
                || name.ends_with(".bias")
                || name.contains("qgm"),
            "{name} should not start at zero"
        );
    }
}

#[test]
fn samples_in_a_batch_do_not_interact() {
    let config = tiny_config(36);
    let (_store, network) = network(&config);
    let image = Tensor::rand([2, 3, 16, 24], (Kind::Float, Device::Cpu));
    let priors = random_priors(&config, 2, 16, 24, 3);
    let single = |i: i64| Priors {
        quality: priors.quality.narrow(0, i, 1),
        masks: priors.masks.narrow(0, i, 1),
        content: priors.content.narrow(0, i, 1),
        degradation: priors.degradation.narrow(0, i, 1),
    };
    tch::no_grad(|| {
        let batched = network.forward_t(&image, &priors, false);
        for i in 0..2 {
            let alone = network.forward_t(&image.narrow(0, i, 1), &single(i), false);
            assert!(batched.narrow(0, i, 1).allclose(&alone, 1e-4, 1e-5, false));
        }
    });
}

#[test]
fn every_prior_steers_the_output() {
    let config = tiny_config(36);
    let (store, network) = network(&config);
    // QGM starts as the identity; give it a non-zero map so F_q matters too.
    tch::no_grad(|| {
        for (name, tensor) in store.variables() {
            if name.contains("qgm") && name.ends_with("weight") {
                let _ = tensor.shallow_clone().normal_(0.0, 0.1);
            }
        }
    });
    let image = Tensor::rand([1, 3, 16, 16], (Kind::Float, Device::Cpu));
    let priors = random_priors(&config, 1, 16, 16, 4);
    let other = random_priors(&config, 1, 16, 16, 4);
    let restore_with = |edit: &dyn Fn(&mut Priors)| {
        let mut edited = priors.with_masks(priors.masks.shallow_clone());
        edit(&mut edited);
        tch::no_grad(|| network.forward_t(&image, &edited, false))
    };
    let base = restore_with(&|_| {});
    type Edit<'a> = (&'a str, &'a dyn Fn(&mut Priors));
    let edits: [Edit<'_>; 4] = [
        ("quality", &|p| p.quality = other.quality.shallow_clone()),
        ("masks", &|p| p.masks = other.masks.shallow_clone()),
        ("content", &|p| p.content = other.content.shallow_clone()),
        ("degradation", &|p| {
            p.degradation = other.degradation.shallow_clone()
        }),
    ];
    for (name, edit) in edits {
        assert!(
            !restore_with(edit).allclose(&base, 1e-6, 1e-6, false),
            "{name} had no effect"
        );
    }
}

#[test]
fn no_masks_and_sixteen_masks_are_both_accepted() {
    let config = tiny_config(36);
    let (_store, network) = network(&config);
    let image = Tensor::rand([1, 3, 21, 13], (Kind::Float, Device::Cpu));
    for count in [0, 16] {
        let priors = random_priors(&config, 1, 21, 13, count);
        assert_eq!(priors.masks.size()[1], count);
        for train in [false, true] {
            let restored =
                tch::no_grad(|| network.forward_checked(&image, &priors, train)).unwrap();
            assert_eq!(restored.size(), [1, 3, 21, 13]);
        }
    }
}

#[test]
fn mask_dropout_only_acts_in_training() {
    let config = ClearAirConfig {
        mask_dropout: 0.5,
        ..tiny_config(36)
    };
    let (_store, network) = network(&config);
    let priors = random_priors(&config, 4, 8, 8, 6);
    let eval = network.prepare_masks(&priors.masks, false);
    assert!(eval.equal(&network.prepare_masks(&priors.masks, false)));
    assert_eq!(eval.size(), [4, 7, 8, 8]);
    tch::manual_seed(3);
    let trained = network.prepare_masks(&priors.masks, true);
    let dropped = trained
        .narrow(1, 0, 6)
        .sum_dim_intlist(&[2, 3][..], false, None)
        .eq(0.0);
    let dropped = dropped.sum(Kind::Int64).int64_value(&[]);
    // 24 masks at p = 0.5: dropping none or all has probability 2·2⁻²⁴.
    assert!(dropped > 0 && dropped < 24, "{dropped} of 24 masks dropped");
    // Every pixel stays covered: the six masks partition the image, dropped ones go to the background.
    let coverage = trained.amax([1], false);
    assert!(bool::try_from(coverage.eq(1.0).all()).unwrap());
}

#[test]
fn malformed_priors_are_typed_errors() {
    let config = tiny_config(36);
    let image = Tensor::rand([2, 3, 10, 12], (Kind::Float, Device::Cpu));
    let good = random_priors(&config, 2, 10, 12, 3);
    assert!(check_priors(&config, &image, &good).is_ok());

    let expect_shape = |priors: Priors, prior: &str| match check_priors(&config, &image, &priors) {
        Err(ModelError::PriorShape { prior: got, .. }) => assert_eq!(got, prior),
        other => panic!("{prior}: expected PriorShape, got {other:?}"),
    };
    let mut wrong = good.with_masks(good.masks.shallow_clone());
    wrong.quality = Tensor::zeros([2, 4096], (Kind::Float, Device::Cpu));
    expect_shape(wrong, "quality");
    let mut wrong = good.with_masks(good.masks.shallow_clone());
    wrong.content = Tensor::zeros([1, 512], (Kind::Float, Device::Cpu));
    expect_shape(wrong, "content");
    let mut wrong = good.with_masks(good.masks.shallow_clone());
    wrong.degradation = Tensor::zeros([2, 512, 1], (Kind::Float, Device::Cpu));
    expect_shape(wrong, "degradation");
    expect_shape(
        good.with_masks(Tensor::zeros([2, 17, 10, 12], (Kind::Float, Device::Cpu))),
        "masks",
    );
    expect_shape(
        good.with_masks(Tensor::zeros([2, 3, 12, 10], (Kind::Float, Device::Cpu))),
        "masks",
    );

    let message = check_priors(
        &config,
        &image,
        &good.with_masks(Tensor::zeros([2, 3, 5, 6], (Kind::Float, Device::Cpu))),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        "prior `masks` has shape [2, 3, 5, 6], expected [2, M ≤ 16, 10, 12]"
    );

    let mut poisoned = good.with_masks(good.masks.shallow_clone());
    poisoned.degradation = good.degradation.copy();
    let _ = poisoned.degradation.get(1).get(7).fill_(f64::NAN);
    assert!(matches!(
        check_priors(&config, &image, &poisoned),
        Err(ModelError::PriorNotFinite {
            prior: "degradation"
        })
    ));
    let mut infinite = good.with_masks(good.masks.shallow_clone());
    infinite.quality = good.quality.copy();
    let _ = infinite.quality.get(0).get(0).fill_(f64::INFINITY);
    assert!(matches!(
        check_priors(&config, &image, &infinite),
        Err(ModelError::PriorNotFinite { prior: "quality" })
    ));

    let mut as_double = good.with_masks(good.masks.shallow_clone());
    as_double.content = good.content.to_kind(Kind::Double);
    assert!(matches!(
        check_priors(&config, &image, &as_double),
        Err(ModelError::PriorPlacement {
            prior: "content",
            ..
        })
    ));
    let gray = Tensor::rand([2, 1, 10, 12], (Kind::Float, Device::Cpu));
    assert!(matches!(
        check_priors(&config, &gray, &good),
        Err(ModelError::ImageShape { .. })
    ));
}

#[test]
fn parameter_counts_of_the_named_configurations() {
    let count = |config: &ClearAirConfig| parameter_count(&network(config).0);
    let full = count(&ClearAirConfig::full(4096));
    let full_brisque = count(&ClearAirConfig::full(36));
    let compact = count(&ClearAirConfig::compact(36));
    println!("parameters: full(4096) {full}, full(36) {full_brisque}, compact(36) {compact}");
    assert!(
        (25_000_000..=35_000_000).contains(&full),
        "full(4096) has {full} parameters"
    );
    assert!(compact < 1_000_000, "compact has {compact} parameters");
    // Only the quality embedding depends on F_q's width: LayerNorm (2·Dq) and projection (Dq·E).
    let embed = ClearAirConfig::full(36).quality_embed_dim;
    assert_eq!(full - full_brisque, (4096 - 36) * (2 + embed));
}

#[test]
#[ignore = "needs a CUDA device: run with --ignored on a GPU machine"]
fn cuda_matches_cpu_and_trains() {
    let device = crate::device::parse_device("cuda").expect("a usable CUDA device");
    let config = ClearAirConfig::compact(36);
    tch::manual_seed(4);
    let (cpu_store, cpu_network) = network(&config);
    let mut gpu_store = nn::VarStore::new(device);
    let gpu_network = ClearAirNet::new(&gpu_store.root(), &config);
    gpu_store.copy(&cpu_store).unwrap();

    let image = Tensor::rand([2, 3, 61, 47], (Kind::Float, Device::Cpu));
    let priors = random_priors(&config, 2, 61, 47, 7);
    let on_cpu = tch::no_grad(|| cpu_network.forward_checked(&image, &priors, false)).unwrap();
    let gpu_image = image.to_device(device);
    let gpu_priors = priors.to_device(device);
    let on_gpu =
        tch::no_grad(|| gpu_network.forward_checked(&gpu_image, &gpu_priors, false)).unwrap();
    assert_eq!(on_gpu.device(), device);
    let difference = (on_cpu - on_gpu.to_device(Device::Cpu)).abs();
    let (largest, mean) = (
        difference.max().double_value(&[]),
        difference.mean(Kind::Double).double_value(&[]),
    );
    println!("CPU vs CUDA: max |Δ| {largest:.2e}, mean |Δ| {mean:.2e}");
    // cuDNN convolutions run in TF32 by default, hence the loose bound.
    assert!(largest < 2e-2 && mean < 1e-3, "max {largest}, mean {mean}");

    let mixed = gpu_priors.with_masks(priors.masks.shallow_clone());
    assert!(matches!(
        check_priors(&config, &gpu_image, &mixed),
        Err(ModelError::PriorPlacement { prior: "masks", .. })
    ));

    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let clean = gpu_image.shallow_clone();
    let degraded = (&clean + clean.randn_like() * 0.1).clamp(0.0, 1.0);
    let icrm = crate::loss::IcrmConfig {
        crop: Some(32),
        ..Default::default()
    };
    let loss = crate::loss::restoration_loss(
        &gpu_network,
        &degraded,
        &clean,
        &gpu_priors,
        &icrm,
        &mut rng,
    );
    loss.total.backward();
    assert!(loss.total.double_value(&[]).is_finite());
}

#[test]
fn a_stage_that_sees_the_upload_starts_from_a_stage_that_read_the_restorers_output_alone() {
    let folder = tempfile::tempdir().unwrap();
    let (narrow_path, wide_path) = (
        folder.path().join("narrow.safetensors"),
        folder.path().join("wide.safetensors"),
    );
    tch::manual_seed(6);
    let (mut narrow_store, narrow) = network(&tiny_config(36));
    crate::save_weights(&narrow_store, &narrow_path).unwrap();
    let config = ClearAirConfig {
        sees_upload: true,
        ..tiny_config(36)
    };
    let (mut wide_store, wide) = network(&config);
    crate::save_weights(&wide_store, &wide_path).unwrap();
    // Loaded plainly, the first convolution's shape is named as the difference.
    let refused = crate::load_weights(&mut wide_store, &narrow_path)
        .unwrap_err()
        .to_string();
    assert!(refused.contains(ClearAirNet::INPUT_WEIGHT), "{refused}");
    // Widened, the stage computes what the three-channel network did, whatever the upload.
    crate::load_weights_widening(
        &mut wide_store,
        &narrow_path,
        Some(ClearAirNet::INPUT_WEIGHT),
    )
    .unwrap();
    let restored = Tensor::rand([2, 3, 13, 19], (Kind::Float, Device::Cpu));
    let priors = random_priors(&config, 2, 13, 19, 4);
    let before = tch::no_grad(|| narrow.forward_checked(&restored, &priors, false)).unwrap();
    for _ in 0..2 {
        let upload = Tensor::rand([2, 3, 13, 19], (Kind::Float, Device::Cpu));
        let input = Tensor::cat(&[&restored, &upload], 1);
        let after = tch::no_grad(|| wide.forward_checked(&input, &priors, false)).unwrap();
        assert!(after.allclose(&before, 1e-5, 1e-6, false));
    }
    // It only ever adds inputs: six channels do not go into a three-channel network.
    let refused = crate::load_weights_widening(
        &mut narrow_store,
        &wide_path,
        Some(ClearAirNet::INPUT_WEIGHT),
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains(ClearAirNet::INPUT_WEIGHT), "{refused}");
}

#[test]
fn a_stage_that_sees_the_upload_starts_at_its_first_input_and_reads_the_upload() {
    let config = ClearAirConfig {
        sees_upload: true,
        ..tiny_config(36)
    };
    assert_eq!(config.input_channels(), 6);
    assert!(config.restorer_problem().is_some());
    let restored = Tensor::rand([2, 3, 13, 19], (Kind::Float, Device::Cpu));
    let upload = Tensor::rand([2, 3, 13, 19], (Kind::Float, Device::Cpu));
    let other_upload = Tensor::rand([2, 3, 13, 19], (Kind::Float, Device::Cpu));
    let input = |upload: &Tensor| Tensor::cat(&[&restored, upload], 1);
    let priors = random_priors(&config, 2, 13, 19, 4);
    // At the identity start it returns the restorer's output, whatever the upload.
    let (store, identity) = network(&config);
    StartingPoint::IdentityOutput.apply(&store);
    for upload in [&upload, &other_upload] {
        let out = tch::no_grad(|| identity.forward_checked(&input(upload), &priors, false));
        assert!(out.unwrap().equal(&restored));
    }
    // Off the identity its output depends on the upload, and a three-channel image is
    // refused by name.
    tch::manual_seed(4);
    let (_store, stage) = network(&config);
    let run = |upload: &Tensor| {
        tch::no_grad(|| stage.forward_checked(&input(upload), &priors, false)).unwrap()
    };
    let (a, b) = (run(&upload), run(&other_upload));
    assert_eq!(a.size(), [2, 3, 13, 19]);
    assert!(!a.allclose(&b, 1e-6, 1e-6, false));
    let refused = stage
        .forward_checked(&restored, &priors, false)
        .unwrap_err();
    assert!(
        refused.to_string().contains("[N ≥ 1, 6, H ≥ 1, W ≥ 1]"),
        "{refused}"
    );
    // A restorer still reads three channels.
    let (_store, plain) = network(&tiny_config(36));
    assert!(
        plain
            .forward_checked(&input(&upload), &priors, false)
            .is_err()
    );
    assert!(tiny_config(36).restorer_problem().is_none());
}

#[test]
fn manifests_written_before_the_upload_stage_read_as_restorers() {
    let plain = ClearAirConfig::compact(36);
    let text = serde_json::to_string(&plain).unwrap();
    assert!(!text.contains("sees_upload"), "{text}");
    let read: ClearAirConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(read, plain);
    let stage = ClearAirConfig {
        sees_upload: true,
        ..plain
    };
    let read: ClearAirConfig =
        serde_json::from_str(&serde_json::to_string(&stage).unwrap()).unwrap();
    assert!(read.sees_upload);
}
