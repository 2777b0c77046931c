use super::*;
use tch::{Device, nn::OptimizerConfig};

fn small_config() -> EncoderConfig {
    EncoderConfig {
        channels: [4, 8, 8, 16],
        hidden_dim: 32,
        content_dim: 16,
        degradation_dim: 16,
    }
}

#[test]
fn embeddings_have_unit_norm_for_any_size() {
    let store = nn::VarStore::new(Device::Cpu);
    let encoder = DegradationEncoder::new(&store.root(), &EncoderConfig::default());
    for (height, width) in [(1, 1), (37, 53), (64, 48)] {
        let image = Tensor::rand([2, 3, height, width], (Kind::Float, Device::Cpu));
        let output = tch::no_grad(|| encoder.forward(&image));
        assert_eq!(output.content.size(), [2, 512]);
        assert_eq!(output.degradation.size(), [2, 512]);
        assert_eq!(output.logits.size(), [2, 5]);
        let norms = output.degradation.norm_scalaropt_dim(2.0, [1], false);
        assert!(norms.allclose(
            &Tensor::ones([2], (Kind::Float, Device::Cpu)),
            1e-5,
            1e-5,
            false
        ));
        let probabilities = output.probabilities();
        assert!(
            bool::try_from(
                probabilities
                    .gt(0.0)
                    .logical_and(&probabilities.lt(1.0))
                    .all()
            )
            .unwrap()
        );
    }
}

#[test]
fn classification_term_is_the_mean_binary_cross_entropy() {
    let logits = Tensor::from_slice(&[2.0f32, -1.0, 0.0, 0.5, 3.0]).view([1, 5]);
    let kinds = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 0.0]).view([1, 5]);
    let unit = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
    let output = EncoderOutput {
        content: unit.copy(),
        degradation: unit,
        logits,
    };
    let loss = encoder_loss(
        &output,
        &kinds,
        &Tensor::from_slice(&[0i64]),
        &EncoderLossWeights::default(),
    );
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let expected = -[(2.0, 1.0), (-1.0, 0.0), (0.0, 1.0), (0.5, 0.0), (3.0, 0.0)]
        .iter()
        .map(|&(x, y): &(f64, f64)| y * sigmoid(x).ln() + (1.0 - y) * (1.0 - sigmoid(x)).ln())
        .sum::<f64>()
        / 5.0;
    assert!((loss.classification.double_value(&[]) - expected).abs() < 1e-5);
    // One sample has no positive partner: both contrastive terms are zero.
    assert_eq!(loss.degradation_contrast.double_value(&[]), 0.0);
    assert_eq!(loss.content_consistency.double_value(&[]), 0.0);
}

#[test]
fn contrastive_term_rewards_grouping_by_label() {
    let axis = |i: usize| {
        let mut v = [0.0f32; 3];
        v[i] = 1.0;
        v
    };
    let labels = Tensor::from_slice(&[0i64, 0, 1, 1]);
    let positives = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
    let grouped = Tensor::from_slice(&[axis(0), axis(0), axis(1), axis(1)].concat()).view([4, 3]);
    let mixed = Tensor::from_slice(&[axis(0), axis(1), axis(0), axis(1)].concat()).view([4, 3]);
    let good = supervised_contrastive(&grouped, &positives, 0.1).double_value(&[]);
    let bad = supervised_contrastive(&mixed, &positives, 0.1).double_value(&[]);
    // Grouped: the positive has logit 10 against two negatives at 0.
    let expected = -(10f64.exp() / (10f64.exp() + 2.0)).ln();
    assert!((good - expected).abs() < 1e-5, "{good} vs {expected}");
    assert!(bad > good + 5.0, "{bad} should be far above {good}");
}

#[test]
fn a_few_optimiser_steps_reduce_the_loss() {
    tch::manual_seed(5);
    let store = nn::VarStore::new(Device::Cpu);
    let encoder = DegradationEncoder::new(&store.root(), &small_config());
    let mut optimiser = nn::Adam::default().build(&store, 3e-3).unwrap();
    let clean = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let noisy =
        (&clean + Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu)) * 0.2).clamp(0.0, 1.0);
    let images = Tensor::cat(&[&clean, &noisy], 0);
    let kinds = Tensor::from_slice(&[
        0.0f32, 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0.,
    ])
    .view([4, 5]);
    let sources = Tensor::from_slice(&[0i64, 1, 0, 1]);
    let weights = EncoderLossWeights::default();
    let loss_now = || {
        encoder_loss(
            &encoder.forward_t(&images, true),
            &kinds,
            &sources,
            &weights,
        )
        .total
    };
    let first = loss_now().double_value(&[]);
    for _ in 0..30 {
        optimiser.backward_step(&loss_now());
    }
    let last = loss_now().double_value(&[]);
    assert!(
        last.is_finite() && last < 0.5 * first,
        "loss went from {first} to {last}"
    );
}

#[test]
fn drift_counts_content_always_and_degradation_only_on_degraded_samples() {
    let unit = |rows: &[[f32; 2]]| {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 2])
    };
    let output = |content: &[[f32; 2]], degradation: &[[f32; 2]]| EncoderOutput {
        content: unit(content),
        degradation: unit(degradation),
        logits: Tensor::zeros([content.len() as i64, 5], (Kind::Float, Device::Cpu)),
    };
    // Sample 0 is clean, sample 1 degraded (rain).
    let kinds = Tensor::from_slice(&[0f32, 0., 0., 0., 0., 0., 0., 1., 0., 0.]).view([2, 5]);
    let anchor = output(&[[1., 0.], [1., 0.]], &[[1., 0.], [1., 0.]]);
    let drift = |moved: &EncoderOutput| embedding_drift(moved, &anchor, &kinds).double_value(&[]);
    let same = output(&[[1., 0.], [1., 0.]], &[[1., 0.], [1., 0.]]);
    assert!(drift(&same).abs() < 1e-7);
    // The clean sample's F_d turned away: free, no drift.
    let clean_moved = output(&[[1., 0.], [1., 0.]], &[[0., 1.], [1., 0.]]);
    assert!(drift(&clean_moved).abs() < 1e-7);
    // The degraded sample's F_d turned away: 1 − cos = 1 over one degraded sample.
    let degraded_moved = output(&[[1., 0.], [1., 0.]], &[[1., 0.], [0., 1.]]);
    let value = drift(&degraded_moved);
    assert!((value - 1.0).abs() < 1e-6, "{value}");
    // F_c counts on every sample: the clean one's F_c reversed gives 2 / 2 samples.
    let content_moved = output(&[[-1., 0.], [1., 0.]], &[[1., 0.], [1., 0.]]);
    let value = drift(&content_moved);
    assert!((value - 1.0).abs() < 1e-6, "{value}");
}
