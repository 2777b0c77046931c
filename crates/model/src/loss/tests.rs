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

fn setup(config: &ClearAirConfig) -> (nn::VarStore, ClearAir, Tensor, Tensor, Priors) {
    tch::manual_seed(0);
    let store = nn::VarStore::new(Device::Cpu);
    let model = ClearAir::new(&store.root(), config);
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
    assert!(loss.total.equal(&loss.l1));
    assert!(loss.l1.equal(&l1_loss(&loss.restored, &clean)));
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
    let expected = loss.l1.double_value(&[]) + 0.5 * consistency;
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
