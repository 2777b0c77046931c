use super::*;
use crate::priors::neutral_quality;
use crate::test_support::{
    exclusive_torch, synthetic_photos, window_cache, window_maker, window_settings,
};
use crate::windows::{PoolSchedule, WindowMaker};

const POOL: PoolSchedule = PoolSchedule {
    size: 6,
    per_step: 0.5,
};

fn maker(seed: u64) -> Arc<WindowMaker> {
    Arc::new(window_maker(
        synthetic_photos(3, 56),
        window_settings(40, 48),
        seed,
    ))
}

fn sampling(prior_dropout: f64) -> RestorerSampling {
    RestorerSampling {
        crops: CropSchedule::fixed(24, 3),
        prior_dropout,
        all_neutral: 0.0,
        all_neutral_kinds: [1.0; 5],
        all_neutral_dark: 1.0,
        keep_kinds: [1.0; 5],
        frequency_kinds: [1.0; 5],
        embedding_dropout: 0.0,
        misread: 0.0,
    }
}

fn sampler(maker: &Arc<WindowMaker>, settings: RestorerSampling, seed: u64) -> RestorerSampler {
    let cache = window_cache(maker, POOL);
    cache.advance(0);
    RestorerSampler::new(cache, 40, settings, seed).unwrap()
}

/// Every sample of the first `steps` iterations, in order.
fn samples(sampler: &RestorerSampler, steps: u64) -> Vec<RestorerSample> {
    (0..steps).flat_map(|i| sampler.batch(i).unwrap()).collect()
}

/// F_c and F_d of `sample` are their neutral value (zeros).
fn embeddings_are_neutral(sample: &RestorerSample) -> bool {
    sample
        .content
        .iter()
        .chain(&sample.degradation)
        .all(|&v| v == 0.0)
}

#[test]
fn same_seed_and_iteration_give_the_same_batch() {
    let _torch = exclusive_torch();
    let maker = maker(11);
    let first_sampler = sampler(&maker, sampling(0.1), 11);
    let first = first_sampler.batch(5).unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first, first_sampler.batch(5).unwrap());
    // A separately built sampler (its own cache) with the same seed agrees; another seed or
    // iteration does not.
    assert_eq!(first, sampler(&maker, sampling(0.1), 11).batch(5).unwrap());
    assert_ne!(first, first_sampler.batch(6).unwrap());
    assert_ne!(first, sampler(&maker, sampling(0.1), 12).batch(5).unwrap());
    assert_ne!(first[0].clean, first[1].clean);
}

#[test]
fn samples_are_flipped_crops_of_their_window_with_the_matching_masks() {
    let _torch = exclusive_torch();
    let maker = maker(3);
    let sampler = sampler(&maker, sampling(0.0), 3);
    for index in 0..6 {
        let sample = sampler.sample(1, index).unwrap();
        assert!(POOL.pool(1).contains(&sample.window));
        let window = maker.make(sample.window).unwrap();
        assert_eq!(sample.crop, 24);
        assert_eq!((sample.quality.len(), sample.content.len()), (36, 512));
        assert_eq!(sample.quality, window.quality, "F_q of the whole window");
        assert_eq!(sample.content, window.content);
        assert_eq!(sample.kinds, window.kinds);
        // Find where the crop came from and how it was turned.
        let side = window.clean.width();
        let found = (0..=side - 24)
            .flat_map(|y| (0..=side - 24).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                (0..8u8).map(move |k| {
                    (
                        x,
                        y,
                        PixelSymmetry {
                            flip: k >= 4,
                            quarter_turns: k % 4,
                        },
                    )
                })
            })
            .find(|&(x, y, symmetry)| {
                symmetry
                    .apply(&window.clean.crop(x, y, 24, 24).unwrap())
                    .to_planar_f32()
                    == sample.clean
            });
        let (x, y, symmetry) = found.expect("the clean crop is a turned piece of the window");
        let degraded = symmetry.apply(&window.degraded.crop(x, y, 24, 24).unwrap());
        if degraded.to_planar_f32() != sample.degraded {
            // A flat region can match under several symmetries; the masks then decide.
            continue;
        }
        let masks = symmetry.apply_planes(&window.masks.window_planes(x, y, 24, 24), 24, 24);
        assert_eq!(sample.masks, masks);
        assert_eq!(sample.mask_count, window.masks.count());
        // The graph segmenter's regions cover every pixel exactly once.
        for pixel in 0..24 * 24 {
            let covering: f32 = (0..sample.mask_count as usize)
                .map(|m| sample.masks[m * 24 * 24 + pixel])
                .sum();
            assert_eq!(covering, 1.0);
        }
        assert!(
            sample
                .degraded
                .iter()
                .all(|v| ((v * 255.0).round() - v * 255.0).abs() < 1e-3),
            "8-bit pixels, as the services receive"
        );
    }
}

#[test]
fn prior_dropout_gives_exactly_the_neutral_priors() {
    let _torch = exclusive_torch();
    let maker = maker(9);
    let samples = sampler(&maker, sampling(1.0), 9).batch(0).unwrap();
    for sample in &samples {
        assert_eq!(sample.dropout, crate::priors::PriorDropout::ALL);
        assert_eq!(sample.quality, neutral_quality(36));
        assert_eq!(sample.mask_count, 1);
        assert!(sample.masks.iter().all(|&v| v == 1.0));
        assert!(embeddings_are_neutral(sample));
    }
    let batch = RestorerBatch::assemble(&samples, Device::Cpu).unwrap();
    assert_eq!(batch.priors.content.size(), [3, 512]);
    assert_eq!(batch.priors.quality.size(), [3, 36]);
    assert_eq!(batch.priors.masks.size(), [3, 1, 24, 24]);
    assert_eq!(batch.priors.masks.min().double_value(&[]), 1.0);
    let halves = batch.rows(1, 2);
    assert_eq!(halves.degraded.size(), [2, 3, 24, 24]);
    assert!(halves.clean.equal(&batch.clean.narrow(0, 1, 2)));

    // All-neutral alone (no per-prior dropout) also gives the full fallback.
    let all = RestorerSampling {
        all_neutral: 1.0,
        ..sampling(0.0)
    };
    for sample in sampler(&maker, all, 9).batch(2).unwrap() {
        assert_eq!(sample.dropout, crate::priors::PriorDropout::ALL);
    }
    // And without dropout the embeddings are the encoder's (unit norm).
    let kept = sampler(&maker, sampling(0.0), 9).batch(0).unwrap();
    let batch = RestorerBatch::assemble(&kept, Device::Cpu).unwrap();
    let norms = batch.priors.degradation.norm_scalaropt_dim(2.0, [1], false);
    assert!((norms.min().double_value(&[]) - 1.0).abs() < 1e-4);
}

#[test]
fn embedding_dropout_drops_only_the_embeddings_of_the_same_crops() {
    let _torch = exclusive_torch();
    let maker = maker(13);
    let with = |embedding_dropout: f64| RestorerSampling {
        embedding_dropout,
        ..sampling(0.0)
    };
    let served = samples(&sampler(&maker, with(0.0), 13), 6);
    for (probability, expect_some, expect_all) in [(1.0, true, true), (0.5, true, false)] {
        let samples = samples(&sampler(&maker, with(probability), 13), 6);
        let dropped = samples.iter().filter(|s| s.dropout.embeddings).count();
        assert_eq!(
            dropped > 0,
            expect_some,
            "p {probability}: {dropped} dropped"
        );
        assert_eq!(dropped == samples.len(), expect_all, "p {probability}");
        for (sample, kept) in samples.iter().zip(&served) {
            // The same crops, F_q and masks: only F_c and F_d change, and only to zeros.
            assert!(!sample.dropout.quality && !sample.dropout.masks);
            assert_eq!(
                (&sample.degraded, &sample.clean, sample.window),
                (&kept.degraded, &kept.clean, kept.window)
            );
            assert_eq!(
                (&sample.quality, &sample.masks),
                (&kept.quality, &kept.masks)
            );
            if sample.dropout.embeddings {
                assert!(embeddings_are_neutral(sample));
            } else {
                assert_eq!(
                    (&sample.content, &sample.degradation),
                    (&kept.content, &kept.degradation)
                );
            }
        }
    }
    assert!(
        served
            .iter()
            .all(|s| s.dropout == crate::priors::PriorDropout::default())
    );
}

#[test]
fn a_misread_crop_carries_another_windows_degradation_embedding_and_nothing_else_changes() {
    let _torch = exclusive_torch();
    let maker = maker(17);
    let with = |misread: f64| RestorerSampling {
        misread,
        ..sampling(0.0)
    };
    let served = samples(&sampler(&maker, with(0.0), 17), 8);
    assert!(served.iter().all(|s| s.degradation_from == s.window));
    let misreading = sampler(&maker, with(1.0), 17);
    let misread = samples(&misreading, 8);
    let mut from_elsewhere = 0;
    for (sample, kept) in misread.iter().zip(&served) {
        // The same crops and every other prior; F_d is the named window's own, unchanged.
        assert_eq!(
            (&sample.degraded, &sample.clean, sample.window),
            (&kept.degraded, &kept.clean, kept.window)
        );
        assert_eq!(
            (&sample.quality, &sample.masks, &sample.content),
            (&kept.quality, &kept.masks, &kept.content)
        );
        let source = misreading.windows().get(sample.degradation_from).unwrap();
        assert_eq!(sample.degradation, source.degradation);
        if sample.degradation_from != sample.window {
            from_elsewhere += 1;
            assert_ne!(sample.degradation, kept.degradation);
        }
    }
    assert!(
        from_elsewhere > misread.len() / 2,
        "{from_elsewhere} of {} misread from another window",
        misread.len()
    );
    // Crops without their embeddings stay neutral: a misreading needs a reading.
    let dropped = sampler(
        &maker,
        RestorerSampling {
            embedding_dropout: 1.0,
            ..with(1.0)
        },
        17,
    );
    for sample in samples(&dropped, 8) {
        assert!(embeddings_are_neutral(&sample));
        assert_eq!(sample.degradation_from, sample.window);
    }
}

#[test]
fn frequency_multipliers_weigh_each_sample_by_its_windows_kinds() {
    let _torch = exclusive_torch();
    let every = sampling(0.0);
    let drawn = samples(&sampler(&maker(3), every.clone(), 5), 4);
    assert_eq!(every.frequency_per_image(&drawn, Device::Cpu), None);
    let blur_only = RestorerSampling {
        frequency_kinds: [0.0, 0.0, 0.0, 2.0, 0.0],
        ..sampling(0.0)
    };
    assert_eq!(
        blur_only.frequency_for(&[0.0; 5]),
        1.0,
        "clean windows keep theirs"
    );
    assert_eq!(blur_only.frequency_for(&[0.0, 0.0, 1.0, 0.0, 0.0]), 0.0);
    assert_eq!(
        blur_only.frequency_for(&[0.0, 0.0, 1.0, 1.0, 0.0]),
        2.0,
        "a rainy and blurred window is weighed as blurred"
    );
    // The keep loss's multipliers are its own.
    assert_eq!(blur_only.keep_per_image(&drawn, Device::Cpu), None);
    let weights = blur_only
        .frequency_per_image(&drawn, Device::Cpu)
        .expect("multipliers set");
    let want: Vec<f32> = drawn
        .iter()
        .map(|sample| blur_only.frequency_for(&sample.kinds) as f32)
        .collect();
    assert_eq!(Vec::<f32>::try_from(&weights).unwrap(), want);
}

#[test]
fn keep_multipliers_weigh_each_sample_by_its_windows_kinds() {
    let _torch = exclusive_torch();
    let every = sampling(0.0);
    let drawn = samples(&sampler(&maker(3), every.clone(), 5), 2);
    assert_eq!(
        every.keep_per_image(&drawn, Device::Cpu),
        None,
        "all ones: the plain mean, as before there were multipliers"
    );
    let sparing = RestorerSampling {
        keep_kinds: [1.0, 0.0, 2.0, 1.0, 1.0],
        ..sampling(0.0)
    };
    assert_eq!(
        sparing.keep_for(&[0.0; 5]),
        1.0,
        "clean windows keep theirs"
    );
    assert_eq!(sparing.keep_for(&[0.0, 1.0, 0.0, 0.0, 0.0]), 0.0);
    assert_eq!(
        sparing.keep_for(&[0.0, 1.0, 0.0, 1.0, 0.0]),
        1.0,
        "a hazy and blurred window is charged as blurred"
    );
    assert_eq!(sparing.keep_for(&[1.0, 0.0, 1.0, 0.0, 0.0]), 2.0);
    let weights = sparing
        .keep_per_image(&drawn, Device::Cpu)
        .expect("multipliers set");
    let want: Vec<f32> = drawn
        .iter()
        .map(|sample| sparing.keep_for(&sample.kinds) as f32)
        .collect();
    assert_eq!(Vec::<f32>::try_from(&weights).unwrap(), want);
}

#[test]
fn all_neutral_multipliers_pick_the_largest_of_a_windows_kinds() {
    let _torch = exclusive_torch();
    let settings = RestorerSampling {
        all_neutral: 0.2,
        all_neutral_kinds: [1.0, 3.0, 0.5, 0.0, 2.0],
        ..sampling(0.0)
    };
    let p = |kinds: [f32; 5]| settings.all_neutral_for(&kinds, 0.5);
    assert!(
        (p([0.0; 5]) - 0.2).abs() < 1e-12,
        "clean windows keep the base"
    );
    assert!((p([1.0, 0.0, 0.0, 0.0, 0.0]) - 0.2).abs() < 1e-12);
    assert!((p([0.0, 1.0, 0.0, 0.0, 0.0]) - 0.6).abs() < 1e-12);
    assert!((p([0.0, 0.0, 1.0, 0.0, 0.0]) - 0.1).abs() < 1e-12);
    assert_eq!(
        p([0.0, 0.0, 0.0, 1.0, 0.0]),
        0.0,
        "a zero multiplier never drops all"
    );
    assert!(
        (p([0.0, 1.0, 0.0, 0.0, 1.0]) - 0.6).abs() < 1e-12,
        "mixtures take the largest"
    );
    let capped = RestorerSampling {
        all_neutral: 0.5,
        ..settings.clone()
    };
    assert_eq!(capped.all_neutral_for(&[0.0, 1.0, 0.0, 0.0, 0.0], 0.5), 1.0);
    assert_eq!(settings.kinds_never_with_priors(), []);
    assert_eq!(
        capped.kinds_never_with_priors(),
        [DegradationKind::Haze, DegradationKind::LowLight],
        "0.5 × 3 and 0.5 × 2 reach 1, 0.5 × 1 does not"
    );

    // In the sampler: with every kind's multiplier 0, only crops of clean windows get the
    // fallback, although the base probability is 1.
    let maker = maker(5);
    let only_clean = RestorerSampling {
        all_neutral: 1.0,
        all_neutral_kinds: [0.0; 5],
        ..sampling(0.0)
    };
    let samples = samples(&sampler(&maker, only_clean, 9), 4);
    assert!(samples.iter().any(|s| s.kinds.iter().any(|k| *k > 0.0)));
    for sample in samples {
        let expect_all = sample.kinds.iter().all(|k| *k == 0.0);
        assert_eq!(
            sample.dropout == crate::priors::PriorDropout::ALL,
            expect_all,
            "kinds {:?}",
            sample.kinds
        );
    }
}

#[test]
fn dark_targets_without_noise_or_haze_take_their_own_multiplier() {
    let _torch = exclusive_torch();
    let settings = RestorerSampling {
        all_neutral: 0.3,
        all_neutral_kinds: [2.0, 1.0, 1.0, 1.0, 2.0],
        all_neutral_dark: 0.25,
        ..sampling(0.0)
    };
    let dark = DARK_TARGET_MEAN - 0.01;
    let bright = DARK_TARGET_MEAN + 0.01;
    let kinds = |present: &[DegradationKind]| {
        let mut hot = [0.0f32; 5];
        present.iter().for_each(|kind| hot[kind.index()] = 1.0);
        hot
    };
    use DegradationKind::{Blur, Haze, LowLight, Noise, Rain};
    // (kinds, target mean, expected probability, why)
    let cases = [
        (kinds(&[]), dark, 0.075, "clean dark scene: multiplied"),
        (kinds(&[LowLight]), dark, 0.15, "under-exposed dark scene"),
        (kinds(&[Rain, Blur]), dark, 0.075, "rain, blur: still dark"),
        (kinds(&[]), bright, 0.3, "bright target: unchanged"),
        (kinds(&[LowLight]), bright, 0.6, "under-exposed, bright"),
        (kinds(&[Noise]), dark, 0.6, "noise tells a dark scene apart"),
        (kinds(&[Noise, Rain]), dark, 0.6, "noise in a mixture"),
        (kinds(&[Haze]), dark, 0.3, "haze's veil tells it apart"),
        (kinds(&[Haze, LowLight]), dark, 0.6, "haze in a mixture"),
    ];
    for (kinds, mean, expected, why) in cases {
        let p = settings.all_neutral_for(&kinds, mean);
        assert!((p - expected).abs() < 1e-12, "{why}: {p} for {kinds:?}");
    }

    // In the sampler: with the base probability 1 and a zero multiplier for dark targets,
    // every crop is all-neutral except those of dark windows without noise or haze (half the
    // windows darkened to as far as γ 6, so both occur).
    let maker = Arc::new(window_maker(
        synthetic_photos(3, 56),
        crate::windows::WindowSettings {
            dark_share: 0.5,
            dark_gamma_max: 6.0,
            ..window_settings(40, 48)
        },
        5,
    ));
    let never_dark = RestorerSampling {
        all_neutral: 1.0,
        all_neutral_dark: 0.0,
        ..sampling(0.0)
    };
    let sampler = sampler(&maker, never_dark, 9);
    let samples = samples(&sampler, 8);
    let exempt_count = samples
        .iter()
        .filter(|s| s.dropout != crate::priors::PriorDropout::ALL)
        .count();
    assert!(
        exempt_count > 0 && exempt_count < samples.len(),
        "{exempt_count} of {} crops kept their priors",
        samples.len()
    );
    for sample in samples {
        let window = sampler.windows().get(sample.window).unwrap();
        let exempt = window.target_mean < DARK_TARGET_MEAN
            && window.kinds[DegradationKind::Noise.index()] == 0.0
            && window.kinds[DegradationKind::Haze.index()] == 0.0;
        assert_eq!(
            sample.dropout == crate::priors::PriorDropout::ALL,
            !exempt,
            "kinds {:?}, target mean {}",
            window.kinds,
            window.target_mean
        );
    }
}

#[test]
fn crops_follow_the_schedule_and_must_fit_the_windows() {
    let _torch = exclusive_torch();
    let maker = maker(5);
    let schedule = CropSchedule::parse("0:16x4, 3:32x2").unwrap();
    assert_eq!(schedule.at(2).crop, 16);
    assert_eq!((schedule.at(3).crop, schedule.at(99).batch), (32, 2));
    let staged = RestorerSampling {
        crops: schedule,
        ..sampling(0.0)
    };
    let sampler = sampler(&maker, staged, 5);
    let early = sampler.batch(1).unwrap();
    let late = sampler.batch(4).unwrap();
    assert_eq!((early.len(), early[0].crop), (4, 16));
    assert_eq!((late.len(), late[0].crop), (2, 32));
    assert_eq!(late[0].clean.len(), 3 * 32 * 32);

    for bad in [
        "",
        "1:16x4",
        "0:16x4,0:32x2",
        "0:16x0",
        "0:8x4",
        "0:16",
        "a:16x4",
    ] {
        assert!(CropSchedule::parse(bad).is_err(), "{bad:?}");
    }
    let cache = window_cache(&maker, POOL);
    let too_big = RestorerSampling {
        crops: CropSchedule::fixed(48, 2),
        ..sampling(0.0)
    };
    assert!(RestorerSampler::new(cache, 40, too_big, 0).is_err());
}

#[test]
fn encoder_pairs_share_content_and_differ_in_kinds() {
    let settings = EncoderSampling {
        side: 32,
        final_side: 40,
        final_from: 5,
        max_scale: 1.5,
        mix: DegradationMix {
            clean: 0.2,
            mixture: 0.2,
            ..DegradationMix::default()
        },
    };
    let sampler = EncoderSampler::new(synthetic_photos(2, 56), settings, 5).unwrap();
    let batch = sampler.batch(3, 4).unwrap();
    assert_eq!(batch, sampler.batch(3, 4).unwrap());
    assert_eq!(batch.len(), 8);
    for pair in batch.chunks(2) {
        assert_eq!(pair[0].content_id, pair[1].content_id);
        assert_ne!(pair[0].kinds, pair[1].kinds);
        assert_eq!(pair[0].image.len(), 3 * 32 * 32);
    }
    let later = sampler.batch(5, 1).unwrap();
    assert_eq!((later[0].side, later[0].image.len()), (40, 3 * 40 * 40));
    let assembled = EncoderBatch::assemble(&batch, Device::Cpu);
    assert_eq!(assembled.images.size(), [8, 3, 32, 32]);
    assert_eq!(assembled.kinds.size(), [8, 5]);
    assert_eq!(
        Vec::<i64>::try_from(&assembled.content_ids).unwrap(),
        [0, 0, 1, 1, 2, 2, 3, 3]
    );
}

#[test]
fn a_stage_that_sees_the_upload_gets_the_same_crop_of_it_as_three_more_channels() {
    use crate::windows::FirstStage;
    let _torch = exclusive_torch();
    let config = crate::test_support::tiny_restorer(36);
    tch::manual_seed(21);
    let first =
        clearair_model::ClearAirNet::new(&tch::nn::VarStore::new(Device::Cpu).root(), &config);
    let staged = Arc::new(
        window_maker(synthetic_photos(3, 56), window_settings(40, 48), 17).with_first_stage(
            FirstStage {
                network: first,
                name: "first".into(),
                neutral_share: 1.0,
                priors: clearair_model::RefinerPriors::Neutral,
                keeps_upload: true,
                holds: Vec::new(),
            },
        ),
    );
    let all = RestorerSampling {
        all_neutral: 1.0,
        ..sampling(0.0)
    };
    let (plain, staged) = (
        sampler(&maker(17), all.clone(), 17).batch(4).unwrap(),
        sampler(&staged, all, 17).batch(4).unwrap(),
    );
    for (plain, staged) in plain.iter().zip(&staged) {
        // The crop as it was sent is what the sampler draws from the plain window.
        assert_eq!(staged.upload.as_ref(), Some(&plain.degraded));
        assert_eq!(staged.clean, plain.clean);
        assert_ne!(staged.degraded, plain.degraded);
        assert_eq!(plain.upload, None);
    }
    let batch = RestorerBatch::assemble(&staged, Device::Cpu).unwrap();
    let sent = RestorerBatch::assemble(&plain, Device::Cpu).unwrap();
    assert_eq!(batch.degraded.size(), [3, 6, 24, 24]);
    assert!(batch.degraded.narrow(1, 3, 3).equal(&sent.degraded));
    assert_eq!(batch.rows(1, 2).degraded.size(), [2, 6, 24, 24]);
    // Crops with and without their upload do not make one batch.
    let mixed = [staged[0].clone(), plain[1].clone()];
    let error = RestorerBatch::assemble(&mixed, Device::Cpu).unwrap_err();
    assert!(error.to_string().contains("upload"), "{error}");
}
