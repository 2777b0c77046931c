use super::*;
use crate::config::ClearAirConfig;
use crate::test_support::{random_priors, tiny_config};
use rand::SeedableRng;
use tch::{Device, Kind, nn};

#[test]
fn l1_is_the_mean_absolute_error() {
    let a = Tensor::from_slice(&[0.0f32, 1.0, 0.5, 0.25]);
    let b = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 0.5]);
    assert!((l1_loss(&a, &b).double_value(&[]) - 0.4375).abs() < 1e-7);
}

#[test]
fn every_symmetry_inverts_exactly() {
    let x = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]);
    let mut seen = std::collections::HashSet::new();
    for flip in [false, true] {
        for quarter_turns in 0..4 {
            let symmetry = Dihedral {
                flip,
                quarter_turns,
            };
            let moved = symmetry.apply(&x);
            let expected_shape = if quarter_turns % 2 == 1 {
                [2, 3, 5, 4]
            } else {
                [2, 3, 4, 5]
            };
            assert_eq!(moved.size(), expected_shape);
            assert!(symmetry.invert(&moved).equal(&x));
            seen.insert(
                Vec::<f32>::try_from(moved.flatten(0, -1))
                    .unwrap()
                    .iter()
                    .map(|v| *v as i64)
                    .collect::<Vec<_>>(),
            );
        }
    }
    assert_eq!(seen.len(), 8, "the eight symmetries must be distinct");
}

fn setup(config: &ClearAirConfig) -> (nn::VarStore, ClearAirNet, Tensor, Tensor, Priors) {
    tch::manual_seed(0);
    let store = nn::VarStore::new(Device::Cpu);
    let model = ClearAirNet::new(&store.root(), config);
    let clean = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let degraded =
        (&clean + Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu)) * 0.1).clamp(0.0, 1.0);
    let priors = random_priors(config, 2, 16, 16, 3);
    (store, model, degraded, clean, priors)
}

#[test]
fn disabled_icrm_is_plain_l1() {
    let config = tiny_config(36);
    let (_store, model, degraded, clean, priors) = setup(&config);
    let icrm = IcrmConfig {
        enabled: false,
        ..IcrmConfig::default()
    };
    let loss = restoration_loss(
        &model,
        &degraded,
        &clean,
        &priors,
        &icrm,
        &mut ChaCha8Rng::seed_from_u64(1),
    );
    assert!(loss.consistency.is_none());
    assert!(loss.total.equal(&loss.pixel));
    assert!(loss.pixel.equal(&l1_loss(&loss.restored, &clean)));
}

#[test]
fn consistency_vanishes_without_photometric_change_and_is_weighted_by_alpha() {
    let config = ClearAirConfig {
        mask_dropout: 0.0,
        ..tiny_config(36)
    };
    let (_store, model, degraded, clean, priors) = setup(&config);
    let still = IcrmConfig {
        noise_sigma: 0.0,
        brightness: 0.0,
        contrast: 0.0,
        crop: Some(8),
        ..IcrmConfig::default()
    };
    let loss = restoration_loss(
        &model,
        &degraded,
        &clean,
        &priors,
        &still,
        &mut ChaCha8Rng::seed_from_u64(2),
    );
    let consistency = loss.consistency.unwrap().double_value(&[]);
    assert!(
        consistency < 1e-10,
        "w and s differ only by rounding, got {consistency}"
    );

    let jittered = IcrmConfig {
        alpha: 0.5,
        crop: Some(8),
        noise_sigma: 0.05,
        ..IcrmConfig::default()
    };
    let loss = restoration_loss(
        &model,
        &degraded,
        &clean,
        &priors,
        &jittered,
        &mut ChaCha8Rng::seed_from_u64(2),
    );
    let consistency = loss.consistency.as_ref().unwrap().double_value(&[]);
    assert!(consistency > 0.0);
    let expected = loss.pixel.double_value(&[]) + 0.5 * consistency;
    assert!((loss.total.double_value(&[]) - expected).abs() < 1e-6);
}

#[test]
fn the_consistency_term_reaches_the_weights() {
    let config = tiny_config(36);
    let (store, model, degraded, clean, priors) = setup(&config);
    let icrm = IcrmConfig {
        crop: None,
        ..IcrmConfig::default()
    };
    let loss = restoration_loss(
        &model,
        &degraded,
        &clean,
        &priors,
        &icrm,
        &mut ChaCha8Rng::seed_from_u64(3),
    );
    loss.consistency.unwrap().backward();
    let gradient_norm: f64 = store
        .trainable_variables()
        .iter()
        .map(|v| v.grad())
        .filter(|g| g.defined())
        .map(|g| g.square().sum(Kind::Double).double_value(&[]))
        .sum();
    assert!(
        gradient_norm.is_finite() && gradient_norm > 0.0,
        "gradient norm² {gradient_norm}"
    );
}

#[test]
fn works_without_masks_and_on_crops_larger_than_the_image() {
    let config = tiny_config(36);
    let (_store, model, degraded, clean, _) = setup(&config);
    let priors = random_priors(&config, 2, 16, 16, 0);
    let icrm = IcrmConfig {
        crop: Some(100),
        ..IcrmConfig::default()
    };
    let loss = restoration_loss(
        &model,
        &degraded,
        &clean,
        &priors,
        &icrm,
        &mut ChaCha8Rng::seed_from_u64(4),
    );
    assert!(loss.total.double_value(&[]).is_finite());
    assert!(loss.consistency.unwrap().double_value(&[]) > 0.0);
}

#[test]
fn psnr_loss_is_minus_the_mean_per_image_psnr() {
    let clean = Tensor::zeros([2, 3, 4, 4], (Kind::Float, Device::Cpu));
    // Image 0 off by 0.1 everywhere (20 dB), image 1 by 0.01 (40 dB).
    let restored = Tensor::cat(
        &[clean.narrow(0, 0, 1) + 0.1, clean.narrow(0, 1, 1) + 0.01],
        0,
    );
    let loss = psnr_loss(&restored, &clean).double_value(&[]);
    assert!((loss + 30.0).abs() < 1e-3, "{loss}");
    let scaled = PixelLoss::Psnr.compute(&restored, &clean).double_value(&[]);
    assert!((scaled + 0.3).abs() < 1e-5);
    // Plus L1: the mean absolute error is (0.1 + 0.01) / 2.
    let mixed = PixelLoss::PsnrL1
        .compute(&restored, &clean)
        .double_value(&[]);
    assert!((mixed - (-0.3 + 0.055)).abs() < 1e-5, "{mixed}");
    let keyword: PixelLoss = serde_json::from_str("\"psnr-l1\"").unwrap();
    assert_eq!(keyword, PixelLoss::PsnrL1);
}

#[test]
fn capped_psnr_loss_saturates_at_its_ceiling_and_tames_nearly_clean_images() {
    let clean = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    // Far below the ceiling the two losses nearly agree: 20 dB, less 10·log10(1.01).
    let rough = &clean + 0.1;
    let capped = psnr_loss_capped(&rough, &clean, 40.0).double_value(&[]);
    assert!((capped + 19.957).abs() < 1e-3, "{capped}");
    // A perfect restoration is worth the ceiling, not 100 dB.
    let perfect = psnr_loss_capped(&clean, &clean, 40.0).double_value(&[]);
    assert!((perfect + 40.0).abs() < 1e-3, "{perfect}");
    // The pull of an image at 60 dB: the plain loss's gradient is 1/MSE times the squared
    // error's, the capped one's 1/(MSE + 1e-4): about 100 times smaller.
    let gradient = |loss: &dyn Fn(&Tensor) -> Tensor| {
        let input = (&clean + 0.001).set_requires_grad(true);
        loss(&input).backward();
        input.grad().abs().sum(Kind::Float).double_value(&[])
    };
    let plain = gradient(&|x| psnr_loss(x, &clean));
    let tamed = gradient(&|x| psnr_loss_capped(x, &clean, 40.0));
    assert!(
        plain / tamed > 90.0 && plain / tamed < 110.0,
        "{plain} / {tamed}"
    );
    let keyword: PixelLoss = serde_json::from_str("\"psnr-capped\"").unwrap();
    assert_eq!(keyword, PixelLoss::PsnrCapped);
    let scaled = PixelLoss::PsnrCapped
        .compute(&rough, &clean)
        .double_value(&[]);
    assert!((scaled + 0.19957).abs() < 1e-5, "{scaled}");
}

#[test]
fn shards_of_the_draws_give_the_rows_of_the_whole_batch() {
    let config = ClearAirConfig {
        mask_dropout: 0.5,
        ..tiny_config(36)
    };
    let (_store, model, degraded, clean, priors) = setup(&config);
    let icrm = IcrmConfig {
        crop: Some(8),
        ..IcrmConfig::default()
    };
    let draws = LossDraws::draw(
        &model,
        &degraded,
        &priors,
        &icrm,
        &mut ChaCha8Rng::seed_from_u64(5),
    );
    let whole = tch::no_grad(|| {
        restoration_loss_with(
            &model,
            &degraded,
            &clean,
            &priors,
            &draws,
            &icrm,
            PixelLoss::L1.into(),
        )
    });
    let mut halves = Vec::new();
    for row in 0..2 {
        let rows = |t: &Tensor| t.narrow(0, row, 1);
        let shard_priors = Priors {
            quality: rows(&priors.quality),
            masks: rows(&priors.masks),
            content: rows(&priors.content),
            degradation: rows(&priors.degradation),
        };
        let loss = tch::no_grad(|| {
            restoration_loss_with(
                &model,
                &rows(&degraded),
                &rows(&clean),
                &shard_priors,
                &draws.rows(row, 1),
                &icrm,
                PixelLoss::L1.into(),
            )
        });
        assert!(
            loss.restored
                .allclose(&rows(&whole.restored), 1e-5, 1e-6, false)
        );
        halves.push(loss.total.double_value(&[]));
    }
    let mean = (halves[0] + halves[1]) / 2.0;
    assert!((mean - whole.total.double_value(&[])).abs() < 1e-5);
}

#[test]
fn a_lower_ceiling_weighs_nearly_clean_images_less_against_degraded_ones() {
    let clean = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    // The gradient's size for an image restored to `offset` everywhere under `objective`.
    let pull = |objective: PixelObjective, offset: f64| {
        let input = (&clean + offset).set_requires_grad(true);
        objective.compute(&input, &clean).backward();
        input.grad().abs().sum(Kind::Float).double_value(&[]) / offset
    };
    // Per unit of error, a crop at 46 dB (0.005) against one at 30 dB (0.0316).
    let ratio = |objective: PixelObjective| pull(objective, 0.005) / pull(objective, 0.0316);
    let default: PixelObjective = PixelLoss::PsnrCapped.into();
    assert_eq!(default.ceiling_db, PSNR_LOSS_CEILING_DB);
    let lowered = PixelObjective {
        ceiling_db: 32.0,
        ..default
    };
    // 1/(MSE + floor): (1e-3 + 1e-4)/(2.5e-5 + 1e-4) = 8.8 at 40 dB, 2.5 at 32 dB.
    assert!((ratio(default) - 8.8).abs() < 0.1, "{}", ratio(default));
    assert!((ratio(lowered) - 2.5).abs() < 0.1, "{}", ratio(lowered));
    // The value is the capped loss at that ceiling, scaled as the default.
    let rough = &clean + 0.1;
    let value = lowered.compute(&rough, &clean).double_value(&[]);
    let expected = psnr_loss_capped(&rough, &clean, 32.0).double_value(&[]) * 0.01;
    assert!((value - expected).abs() < 1e-7, "{value} {expected}");
    // The other losses ignore the ceiling.
    let l1 = PixelObjective {
        loss: PixelLoss::L1,
        ceiling_db: 32.0,
        frequency_weight: 0.0,
        keep_weight: 0.0,
        keep_ceiling_db: KEEP_LOSS_CEILING_DB,
    };
    assert!((l1.compute(&rough, &clean).double_value(&[]) - 0.1).abs() < 1e-6);
}

#[test]
fn the_frequency_loss_weighs_the_lowest_and_highest_frequencies_alike() {
    let clean = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    assert!(frequency_l1_loss(&clean, &clean).double_value(&[]).abs() < 1e-9);
    // An offset of 0.05 everywhere is one coefficient per channel, the DC term 0.05·√64, of
    // the 8 × 5 complex (80 real) numbers of the orthonormal real FFT: a mean of 0.005.
    let offset = frequency_l1_loss(&(&clean + 0.05), &clean).double_value(&[]);
    assert!((offset - 0.005).abs() < 1e-7, "{offset}");
    // A checkerboard of the same size is the highest frequency alone, at the same strength.
    let rows = Tensor::arange(8, (Kind::Float, Device::Cpu)).view([8, 1]);
    let columns = Tensor::arange(8, (Kind::Float, Device::Cpu)).view([1, 8]);
    let checkerboard = ((rows + columns).remainder(2.0) * 2.0 - 1.0) * 0.05;
    let high = frequency_l1_loss(&(&clean + &checkerboard), &clean).double_value(&[]);
    assert!((high - 0.005).abs() < 1e-7, "{high}");
    // An error a hundred times fainter pulls on the weights as hard: the gradient's size
    // does not shrink with the error, as a squared error's does.
    let error = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let pull = |amplitude: f64| {
        let input = (&clean + &error * amplitude).set_requires_grad(true);
        frequency_l1_loss(&input, &clean).backward();
        input.grad().abs().sum(Kind::Float).double_value(&[])
    };
    let (faint, strong) = (pull(0.0005), pull(0.05));
    assert!(
        faint > 0.0 && (faint / strong - 1.0).abs() < 1e-3,
        "{faint} {strong}"
    );
}

#[test]
fn the_frequency_weight_adds_the_frequency_loss_to_the_pixel_loss() {
    let clean = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let restored = &clean + Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu)) * 0.03;
    for loss in [PixelLoss::L1, PixelLoss::PsnrCapped] {
        let plain: PixelObjective = loss.into();
        assert_eq!(plain.frequency_weight, 0.0);
        let weighted = PixelObjective {
            frequency_weight: 0.5,
            ..plain
        };
        let difference = weighted.compute(&restored, &clean).double_value(&[])
            - plain.compute(&restored, &clean).double_value(&[]);
        let expected = frequency_l1_loss(&restored, &clean).double_value(&[]) * 0.5;
        assert!(
            expected > 0.0 && (difference - expected).abs() < 1e-6,
            "{difference} {expected}"
        );
    }
}

#[test]
fn a_weighted_frequency_loss_multiplies_each_images_term_before_the_mean() {
    let clean = Tensor::rand([3, 3, 16, 16], (Kind::Float, Device::Cpu));
    let error = Tensor::randn([3, 3, 16, 16], (Kind::Float, Device::Cpu));
    // Errors of three sizes, so each image's term is its own.
    let scale = Tensor::from_slice(&[0.01f32, 0.03, 0.05]).view([3, 1, 1, 1]);
    let restored = &clean + &error * &scale;
    let each: Vec<f64> = (0..3)
        .map(|i| {
            frequency_l1_loss(&restored.narrow(0, i, 1), &clean.narrow(0, i, 1)).double_value(&[])
        })
        .collect();
    let plain = frequency_l1_loss(&restored, &clean).double_value(&[]);
    let mean = each.iter().sum::<f64>() / 3.0;
    assert!((plain - mean).abs() < 1e-6, "{plain} {mean}");
    let ones = Tensor::ones([3], (Kind::Float, Device::Cpu));
    let unweighted = frequency_l1_loss_weighted(&restored, &clean, Some(&ones)).double_value(&[]);
    assert!((unweighted - plain).abs() < 1e-6, "{unweighted} {plain}");
    // Spare the first, charge the third three times.
    let weights = Tensor::from_slice(&[0.0f32, 1.0, 3.0]);
    let weighted = frequency_l1_loss_weighted(&restored, &clean, Some(&weights)).double_value(&[]);
    let want = (each[1] + 3.0 * each[2]) / 3.0;
    assert!((weighted - want).abs() < 1e-6, "{weighted} {want}");
    // A spared image gets no gradient from the term.
    let output = restored.copy().set_requires_grad(true);
    frequency_l1_loss_weighted(&output, &clean, Some(&weights)).backward();
    let grad = output.grad();
    assert_eq!(grad.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert!(grad.get(2).abs().sum(Kind::Float).double_value(&[]) > 0.0);
    // The objective weighs its frequency term the same way, at its weight, and its keep
    // term is untouched by the frequency multipliers.
    let spectral = PixelObjective {
        frequency_weight: 0.5,
        ..PixelLoss::PsnrCapped.into()
    };
    let extra = spectral
        .compute_weighted_from(
            &clean,
            &restored,
            &clean,
            PerImageWeights {
                keep: None,
                frequency: Some(&weights),
            },
        )
        .double_value(&[])
        - PixelObjective::from(PixelLoss::PsnrCapped)
            .compute(&restored, &clean)
            .double_value(&[]);
    assert!((extra - 0.5 * weighted).abs() < 1e-5, "{extra} {weighted}");
}

#[test]
fn a_lower_keep_ceiling_frees_clean_windows_and_still_charges_a_worse_one() {
    let clean = Tensor::rand([1, 3, 16, 16], (Kind::Float, Device::Cpu));
    // dB of 10·log10((a + floor) / (b + floor)) for squared errors a, b under a ceiling.
    let expected = |a: f64, b: f64, ceiling: f64| {
        let floor = 10f64.powf(-ceiling / 10.0);
        10.0 * ((a + floor) / (b + floor)).log10()
    };
    // A clean window restored at 45 dB (an error of 10^-2.25 per pixel): about 15 dB to pay
    // under the default ceiling, about 1.2 under a 40 dB one, which pulls twelve times less.
    let at_45 = &clean + 10f64.powf(-2.25);
    let by_default = keep_loss(&clean, &at_45, &clean).double_value(&[]);
    assert!(
        (by_default - expected(10f64.powf(-4.5), 0.0, KEEP_LOSS_CEILING_DB)).abs() < 0.02,
        "{by_default}"
    );
    let capped = keep_loss_capped(&clean, &at_45, &clean, 40.0).double_value(&[]);
    assert!(
        (capped - expected(10f64.powf(-4.5), 0.0, 40.0)).abs() < 0.02,
        "{capped}"
    );
    assert!(by_default > 12.0 * capped, "{by_default} {capped}");
    // A degraded window at 30 dB made 1 dB worse costs nearly its decibel at either ceiling.
    let input = &clean + 10f64.powf(-1.5);
    let worse = &clean + 10f64.powf(-1.45);
    for ceiling in [40.0, KEEP_LOSS_CEILING_DB] {
        let lost = keep_loss_capped(&input, &worse, &clean, ceiling).double_value(&[]);
        let want = expected(10f64.powf(-2.9), 10f64.powf(-3.0), ceiling);
        assert!(
            (lost - want).abs() < 0.02 && lost > 0.9,
            "{ceiling}: {lost}"
        );
    }
    // The objective uses its own ceiling, at 0.01 per dB and its weight.
    let keeping = PixelObjective {
        keep_weight: 2.0,
        keep_ceiling_db: 40.0,
        ..PixelLoss::PsnrCapped.into()
    };
    let extra = keeping
        .compute_from(&clean, &at_45, &clean)
        .double_value(&[])
        - keeping.compute(&at_45, &clean).double_value(&[]);
    assert!((extra - 0.02 * capped).abs() < 1e-4, "{extra} {capped}");
}

#[test]
fn a_weighted_keep_loss_multiplies_each_images_loss_before_the_mean() {
    let clean = Tensor::zeros([3, 3, 8, 8], (Kind::Float, Device::Cpu));
    // Three degraded windows at 30 dB, each made 1 dB worse.
    let input = &clean + 10f64.powf(-1.5);
    let worse = &clean + 10f64.powf(-1.45);
    let plain = keep_loss_capped(&input, &worse, &clean, 40.0).double_value(&[]);
    let unweighted = keep_loss_weighted(&input, &worse, &clean, 40.0, None).double_value(&[]);
    assert_eq!(plain, unweighted);
    // Spare the first, charge the third three times: (0 + 1 + 3) / 3 of the plain loss.
    let weights = Tensor::from_slice(&[0.0f32, 1.0, 3.0]);
    let weighted =
        keep_loss_weighted(&input, &worse, &clean, 40.0, Some(&weights)).double_value(&[]);
    assert!(
        (weighted - plain * 4.0 / 3.0).abs() < 1e-4,
        "{weighted} {plain}"
    );
    // Every image spared: nothing to pay, and no gradient.
    let output = worse.copy().set_requires_grad(true);
    let spared = Tensor::zeros([3], (Kind::Float, Device::Cpu));
    let loss = keep_loss_weighted(&input, &output, &clean, 40.0, Some(&spared));
    assert_eq!(loss.double_value(&[]), 0.0);
    loss.backward();
    assert_eq!(output.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
    // The objective weighs its keep term the same way, at 0.01 per dB.
    let keeping = PixelObjective {
        keep_weight: 1.0,
        keep_ceiling_db: 40.0,
        ..PixelLoss::PsnrCapped.into()
    };
    let extra = keeping
        .compute_weighted_from(
            &input,
            &worse,
            &clean,
            PerImageWeights {
                keep: Some(&weights),
                frequency: None,
            },
        )
        .double_value(&[])
        - keeping.compute(&worse, &clean).double_value(&[]);
    assert!((extra - 0.01 * weighted).abs() < 1e-5, "{extra} {weighted}");
}

#[test]
fn the_keep_loss_counts_only_what_an_image_loses_below_its_input() {
    let clean = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let noise = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let input = &clean + &noise * 0.01;
    // Closer to the target than the input, on both images: nothing to pay.
    let better = &clean + &noise * 0.005;
    assert_eq!(keep_loss(&input, &better, &clean).double_value(&[]), 0.0);
    // Twice the input's error on both: 20·log10(2) ≈ 6.02 dB below it (a little less with
    // the 60 dB cap's floor beside errors of about 1e-4).
    let worse = &clean + &noise * 0.02;
    let lost = keep_loss(&input, &worse, &clean).double_value(&[]);
    assert!((lost - 6.0).abs() < 0.05, "{lost}");
    // One image better, one worse: the worse one alone, averaged over the batch.
    let mixed = Tensor::cat(&[better.narrow(0, 0, 1), worse.narrow(0, 1, 1)], 0);
    let half = keep_loss(&input, &mixed, &clean).double_value(&[]);
    assert!((half - lost / 2.0).abs() < 0.05, "{half} {lost}");
    // A clean input asks for its output at the 60 dB cap: an error of 1e-3 (60 dB) costs
    // about 3 dB, one of 1e-4 almost nothing.
    let at_cap = keep_loss(&clean, &(&clean + 1e-3), &clean).double_value(&[]);
    assert!((at_cap - 3.01).abs() < 0.02, "{at_cap}");
    assert!(keep_loss(&clean, &(&clean + 1e-4), &clean).double_value(&[]) < 0.05);
    // It pulls on the output, not on the input.
    let input = input.set_requires_grad(true);
    let output = worse.set_requires_grad(true);
    keep_loss(&input, &output, &clean).backward();
    assert!(output.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(!input.grad().defined());
    // Weighted into the objective at 0.01 per dB, only through `compute_from`.
    let plain: PixelObjective = PixelLoss::PsnrCapped.into();
    let keeping = PixelObjective {
        keep_weight: 2.0,
        ..plain
    };
    let output = output.detach();
    let difference = keeping
        .compute_from(&input.detach(), &output, &clean)
        .double_value(&[])
        - plain.compute(&output, &clean).double_value(&[]);
    assert!(
        (difference - lost * 0.02).abs() < 1e-5,
        "{difference} {lost}"
    );
    assert_eq!(
        keeping.compute(&output, &clean).double_value(&[]),
        plain.compute(&output, &clean).double_value(&[])
    );
}

#[test]
fn the_restoration_loss_keeps_each_window_against_its_own_input() {
    let config = tiny_config(36);
    let (_store, model, degraded, clean, priors) = setup(&config);
    let icrm = IcrmConfig {
        enabled: false,
        ..IcrmConfig::default()
    };
    let draws = LossDraws::draw(
        &model,
        &degraded,
        &priors,
        &icrm,
        &mut ChaCha8Rng::seed_from_u64(5),
    );
    let plain: PixelObjective = PixelLoss::PsnrCapped.into();
    let keeping = PixelObjective {
        keep_weight: 1.0,
        ..plain
    };
    let loss = |objective| {
        tch::no_grad(|| {
            restoration_loss_with(&model, &degraded, &clean, &priors, &draws, &icrm, objective)
        })
    };
    let (without, with) = (loss(plain), loss(keeping));
    // The term is what the restored batch loses below the degraded one it was made from.
    let expected = keep_loss(&degraded, &without.restored, &clean).double_value(&[]) * 0.01;
    let added = with.total.double_value(&[]) - without.total.double_value(&[]);
    assert!(
        expected > 0.0,
        "the untrained network is worse than its input somewhere"
    );
    assert!((added - expected).abs() < 1e-6, "{added} {expected}");
    // Against the clean target as its input, every window is below it: the term is there.
    let against_clean = keep_loss(&clean, &without.restored, &clean).double_value(&[]);
    assert!(against_clean > 0.0, "{against_clean}");
}

#[test]
fn a_stage_that_sees_the_upload_keeps_against_the_better_of_its_inputs() {
    let config = ClearAirConfig {
        sees_upload: true,
        ..tiny_config(36)
    };
    let (_store, model, upload, clean, priors) = setup(&config);
    // What the restorer in front made of the upload: nearer the clean photo in the first
    // image, farther in the second (it took away what was there).
    let nearer = (&clean * 0.8 + &upload * 0.2).narrow(0, 0, 1);
    let farther = (&upload * 0.5).narrow(0, 1, 1);
    let first = Tensor::cat(&[&nearer, &farther], 0);
    let input = Tensor::cat(&[&first, &upload], 1);
    let reference = keep_reference(&config, &input, &clean);
    assert!(reference.narrow(0, 0, 1).equal(&nearer));
    assert!(reference.narrow(0, 1, 1).equal(&upload.narrow(0, 1, 1)));
    // A restorer keeps against its own input.
    let plain = tiny_config(36);
    assert!(keep_reference(&plain, &upload, &clean).equal(&upload));
    let objective: PixelObjective = PixelLoss::PsnrCapped.into();
    let keeping = PixelObjective {
        keep_weight: 1.0,
        ..objective
    };
    for enabled in [false, true] {
        let icrm = IcrmConfig {
            enabled,
            crop: Some(8),
            ..IcrmConfig::default()
        };
        let draws = LossDraws::draw(
            &model,
            &input,
            &priors,
            &icrm,
            &mut ChaCha8Rng::seed_from_u64(5),
        );
        let loss = |objective| {
            tch::no_grad(|| {
                restoration_loss_with(&model, &input, &clean, &priors, &draws, &icrm, objective)
            })
        };
        let (without, with) = (loss(objective), loss(keeping));
        assert_eq!(without.restored.size(), [2, 3, 16, 16]);
        assert_eq!(without.consistency.is_some(), enabled);
        // The term is what the output loses below that reference, not below either input.
        let against = |reference: &Tensor| {
            keep_loss(reference, &without.restored, &clean).double_value(&[]) * 0.01
        };
        let expected = against(&reference);
        let added = with.total.double_value(&[]) - without.total.double_value(&[]);
        assert!((added - expected).abs() < 1e-6, "{added} {expected}");
        for other in [&first, &upload] {
            assert!((against(other) - expected).abs() > 1e-5, "{expected}");
        }
    }
}
