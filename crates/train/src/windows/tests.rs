use super::*;
use crate::test_support::{
    exclusive_torch, synthetic_photos, window_cache, window_maker, window_settings,
};

fn maker(seed: u64) -> Arc<WindowMaker> {
    Arc::new(window_maker(
        synthetic_photos(3, 64),
        window_settings(40, 56),
        seed,
    ))
}

#[test]
fn a_window_is_a_pure_function_of_its_index_and_seed() {
    let _torch = exclusive_torch();
    let first = maker(3);
    let twin = window_maker(synthetic_photos(3, 64), window_settings(40, 56), 3);
    let a = first.make(5).unwrap();
    let b = twin.make(5).unwrap();
    // Everything but F_c/F_d (each maker has its own random encoder) is the same.
    assert_eq!(
        (&a.clean, &a.degraded, &a.quality, &a.masks, a.kinds),
        (&b.clean, &b.degraded, &b.quality, &b.masks, b.kinds)
    );
    assert_eq!(a, first.make(5).unwrap());
    assert_ne!(a.clean, first.make(6).unwrap().clean);
    assert_ne!(a.degraded, maker(4).make(5).unwrap().degraded);
}

#[test]
fn windows_carry_the_priors_the_services_compute_for_them() {
    let _torch = exclusive_torch();
    let maker = maker(1);
    let priors = crate::test_support::cpu_priors();
    for index in 0..6 {
        let window = maker.make(index).unwrap();
        let side = window.clean.width();
        assert_eq!(window.clean.height(), side);
        assert!((40..=56).contains(&side), "side {side}");
        assert_eq!(
            (window.degraded.width(), window.degraded.height()),
            (side, side)
        );
        let expected = priors.compute(&window.degraded).unwrap();
        assert_eq!(window.quality, expected.quality);
        assert_eq!(window.masks, expected.masks);
        let (content, degradation) = maker.embed(&window.degraded).unwrap();
        assert_eq!((window.content.len(), window.degradation.len()), (512, 512));
        assert_eq!(
            (&window.content, &window.degradation),
            (&content, &degradation)
        );
        if window.kinds.iter().all(|&k| k == 0.0) {
            assert_eq!(window.degraded, window.clean);
        }
    }
}

#[test]
fn windows_never_exceed_the_photo() {
    let _torch = exclusive_torch();
    // Photos of 64×64 … 80×64: a 100-pixel window is clamped to the short side.
    let maker = window_maker(synthetic_photos(3, 64), window_settings(48, 100), 2);
    for index in 0..8 {
        let side = maker.make(index).unwrap().clean.width();
        assert!((48..=64).contains(&side), "side {side}");
    }
    let too_large = WindowMaker::new(
        synthetic_photos(1, 32),
        crate::test_support::cpu_priors(),
        DegradationEncoder::new(
            &tch::nn::VarStore::new(Device::Cpu).root(),
            &crate::test_support::small_encoder(),
        ),
        Device::Cpu,
        window_settings(40, 56),
        0,
    );
    assert!(too_large.is_err());
}

#[test]
fn pools_slide_with_the_steps() {
    let schedule = PoolSchedule {
        size: 8,
        per_step: 0.5,
    };
    assert_eq!(schedule.pool(0), 0..8);
    assert_eq!(schedule.pool(1), 0..8);
    assert_eq!(schedule.pool(2), 1..9);
    assert_eq!(schedule.pool(101), 50..58);
    assert!(
        PoolSchedule {
            size: 0,
            per_step: 1.0
        }
        .validate()
        .is_err()
    );
    assert!(
        PoolSchedule {
            size: 4,
            per_step: 0.0
        }
        .validate()
        .is_err()
    );
}

#[test]
fn the_cache_serves_what_the_maker_makes_and_releases_old_windows() {
    let _torch = exclusive_torch();
    let maker = maker(7);
    let schedule = PoolSchedule {
        size: 4,
        per_step: 1.0,
    };
    let cache = window_cache(&maker, schedule);
    cache.advance(10);
    for index in 10..14 {
        assert_eq!(*cache.get(index).unwrap(), maker.make(index).unwrap());
    }
    cache.advance(30);
    // Step 30's pool starts at window 30: the earlier ones are gone and never made again.
    let window = cache.get(31).unwrap();
    assert_eq!(*window, maker.make(31).unwrap());
    assert!(cache.get(12).is_err(), "a released window is an error");
    assert!(
        cache.held() <= (schedule.size + cache.lookahead) as usize,
        "held {}",
        cache.held()
    );
}

#[test]
fn dark_targets_keep_their_blacks_and_whites() {
    let _torch = exclusive_torch();
    let image = Rgb8Image::new(3, 1, vec![0, 0, 0, 128, 128, 128, 255, 255, 255]).unwrap();
    let dark = darken_midtones(&image, 2.0);
    assert_eq!(dark.as_bytes(), &[0, 0, 0, 64, 64, 64, 255, 255, 255]);
    let settings = WindowSettings {
        dark_share: 1.0,
        ..window_settings(40, 56)
    };
    let darkened = window_maker(synthetic_photos(3, 64), settings, 3);
    let plain = window_maker(synthetic_photos(3, 64), window_settings(40, 56), 3);
    let (a, b) = (darkened.make(2).unwrap(), plain.make(2).unwrap());
    assert_eq!(
        a.clean.width(),
        b.clean.width(),
        "same window, only its tones differ"
    );
    let mean = |i: &Rgb8Image| i.as_bytes().iter().map(|&v| f64::from(v)).sum::<f64>();
    assert!(mean(&a.clean) < 0.9 * mean(&b.clean));
}

#[test]
fn a_larger_dark_gamma_makes_night_dark_targets() {
    let _torch = exclusive_torch();
    // γ 6 leaves a mid-grey at about 1.6% and white at white: a night sky around its stars.
    let image = Rgb8Image::new(2, 1, vec![128, 128, 128, 255, 255, 255]).unwrap();
    assert_eq!(
        darken_midtones(&image, 6.0).as_bytes(),
        &[4, 4, 4, 255, 255, 255]
    );
    let maker = |dark_gamma_max| {
        let settings = WindowSettings {
            dark_share: 1.0,
            dark_gamma_max,
            ..window_settings(40, 56)
        };
        window_maker(synthetic_photos(3, 64), settings, 3)
    };
    let sum = |i: &Rgb8Image| i.as_bytes().iter().map(|&v| u64::from(v)).sum::<u64>();
    // Same window and the same draw of the tone stream: only γ's range differs.
    let (dim, night) = (maker(1.5).make(2).unwrap(), maker(20.0).make(2).unwrap());
    assert!(sum(&night.clean) < sum(&dim.clean) / 2);
}

#[test]
fn a_first_stage_restores_each_window_with_its_priors_or_the_neutral_ones() {
    use clearair_backends::Precision;
    use clearair_backends::restoration::{GlobalPriors, Tiling, forward_in, restore_in_tiles};
    use clearair_model::{ClearAirNet, RefinerPriors};

    let _torch = exclusive_torch();
    let config = crate::test_support::tiny_restorer(
        crate::test_support::cpu_priors().quality_width() as i64,
    );
    // Two networks with the same random weights (not the identity): one for the maker, one to
    // compute what it should have made.
    let network = || {
        tch::manual_seed(11);
        ClearAirNet::new(&tch::nn::VarStore::new(Device::Cpu).root(), &config)
    };
    let twin = network();
    let plain = maker(3);
    for share in [0.0, 1.0] {
        let staged = window_maker(synthetic_photos(3, 64), window_settings(40, 56), 3)
            .with_first_stage(FirstStage {
                network: network(),
                name: "first".into(),
                neutral_share: share,
                priors: RefinerPriors::Served,
                keeps_upload: share == 1.0,
                holds: Vec::new(),
            });
        assert_eq!(
            staged.first_stage(),
            Some(FirstStageSummary {
                name: "first".to_owned(),
                neutral_share: share,
                priors: RefinerPriors::Served,
                keeps_upload: share == 1.0,
                holds: Vec::new(),
            })
        );
        for index in 0..3 {
            let (before, window) = (plain.make(index).unwrap(), staged.make(index).unwrap());
            // The clean target is the degraded window's, as without a stage.
            assert_eq!(
                (&window.clean, window.kinds, window.target_mean),
                (&before.clean, before.kinds, before.target_mean)
            );
            let (masks, global) = if share == 0.0 {
                // So are the priors, served to the refiner as to the restorer (each maker has
                // an encoder of its own random weights, so F_c and F_d are not compared).
                assert_eq!(
                    (&window.quality, &window.masks),
                    (&before.quality, &before.masks)
                );
                let global = GlobalPriors::from_vectors(
                    &window.quality,
                    &window.content,
                    &window.degradation,
                    Device::Cpu,
                );
                (window.masks.clone(), global)
            } else {
                let side = before.degraded.width();
                let zeros = |width: i64| vec![0.0; width as usize];
                let global = GlobalPriors::from_vectors(
                    &zeros(config.quality_dim),
                    &zeros(config.content_dim),
                    &zeros(config.degradation_dim),
                    Device::Cpu,
                );
                let masks = crate::priors::neutral_masks(side, side);
                // Every prior service down: the refiner behind reads the neutral priors too.
                assert_eq!(
                    (
                        &window.quality,
                        &window.masks,
                        &window.content,
                        &window.degradation
                    ),
                    (
                        &vec![0.0; before.quality.len()],
                        &masks,
                        &vec![0.0; before.content.len()],
                        &vec![0.0; before.degradation.len()]
                    )
                );
                assert_ne!(window.quality, before.quality);
                (masks, global)
            };
            let (expected, _) = restore_in_tiles(
                &before.degraded,
                &masks,
                &global,
                Tiling::default(),
                Device::Cpu,
                |tile, priors| forward_in(Precision::Fp32, &twin, tile, priors),
            )
            .unwrap();
            assert_eq!(window.degraded, expected, "window {index}, share {share}");
            assert_ne!(window.degraded, before.degraded);
            // A stage that sees the upload gets the degraded window as it was sent.
            let upload = (share == 1.0).then(|| before.degraded.clone());
            assert_eq!(window.upload, upload, "window {index}, share {share}");
        }
    }
    // The checkpoint's settings name the stage, so a resume after another one is refused.
    let pool = PoolSchedule {
        size: 2,
        per_step: 1.0,
    };
    let describe = |priors: RefinerPriors, keeps_upload: bool, holds: Vec<DegradationKind>| {
        let staged = window_maker(synthetic_photos(3, 64), window_settings(40, 56), 3)
            .with_first_stage(FirstStage {
                network: network(),
                name: "first".into(),
                neutral_share: 0.25,
                priors,
                keeps_upload,
                holds,
            });
        window_cache(&Arc::new(staged), pool).describe()
    };
    let described = describe(RefinerPriors::Neutral, false, Vec::new());
    assert!(
        described.ends_with("after first (0.25 of windows on neutral priors)"),
        "{described}"
    );
    // Which priors the refiner reads is part of them too.
    let described = describe(RefinerPriors::Served, true, Vec::new());
    assert!(
        described.ends_with(
            "after first (0.25 of windows on neutral priors), the refiner on served priors, \
             seeing the upload"
        ),
        "{described}"
    );
    assert!(!window_cache(&plain, pool).describe().contains("after"));
    // So are the kinds held at the first network's output.
    let held = vec![DegradationKind::Rain, DegradationKind::Haze];
    let described = describe(RefinerPriors::Neutral, true, held);
    assert!(
        described.ends_with("seeing the upload, rain/haze held at its output"),
        "{described}"
    );
}

#[test]
fn a_held_window_has_the_first_networks_output_as_its_target() {
    use crate::windows::FirstStage;
    use clearair_model::{ClearAirNet, RefinerPriors};

    let _torch = exclusive_torch();
    let config = crate::test_support::tiny_restorer(
        crate::test_support::cpu_priors().quality_width() as i64,
    );
    let stage = |holds: Vec<DegradationKind>| {
        tch::manual_seed(11);
        FirstStage {
            network: ClearAirNet::new(&tch::nn::VarStore::new(Device::Cpu).root(), &config),
            name: "first".into(),
            neutral_share: 1.0,
            priors: RefinerPriors::Neutral,
            keeps_upload: true,
            holds,
        }
    };
    let rain_only = stage(vec![DegradationKind::Rain]);
    assert!(rain_only.holds_window(&[0.0, 0.0, 1.0, 0.0, 0.0]));
    assert!(
        !rain_only.holds_window(&[0.0, 0.0, 1.0, 1.0, 0.0]),
        "rain and blur: the blur is still to be restored"
    );
    assert!(
        !rain_only.holds_window(&[0.0; 5]),
        "a clean window keeps its photo"
    );
    assert!(!rain_only.holds_window(&[1.0, 0.0, 0.0, 0.0, 0.0]));
    // Every kind held: each degraded window's target is what the first network made of it,
    // a clean window's its photo; nothing else changes.
    let free = window_maker(synthetic_photos(3, 64), window_settings(40, 56), 3)
        .with_first_stage(stage(Vec::new()));
    let held = window_maker(synthetic_photos(3, 64), window_settings(40, 56), 3)
        .with_first_stage(stage(DegradationKind::ALL.to_vec()));
    let mut degraded_windows = 0;
    for index in 0..6 {
        let (before, window) = (free.make(index).unwrap(), held.make(index).unwrap());
        assert_eq!(
            (
                &window.degraded,
                &window.upload,
                window.kinds,
                window.target_mean
            ),
            (
                &before.degraded,
                &before.upload,
                before.kinds,
                before.target_mean
            ),
            "window {index}"
        );
        if before.kinds.iter().any(|&kind| kind > 0.0) {
            degraded_windows += 1;
            assert_eq!(window.clean, window.degraded, "window {index}");
            assert_ne!(window.clean, before.clean, "window {index}");
        } else {
            assert_eq!(window.clean, before.clean, "window {index}");
        }
    }
    assert!(degraded_windows > 0);
}
