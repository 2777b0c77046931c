use super::*;
use crate::priors::neutral_quality;
use crate::test_support::{cpu_priors, small_encoder, synthetic_photos};
use tch::nn;

fn sampling(prior_dropout: f64) -> RestorerSampling {
    RestorerSampling {
        crop: 24,
        context: 40,
        mix: DegradationMix::default(),
        prior_dropout,
    }
}

#[test]
fn same_seed_and_iteration_give_the_same_batch() {
    let photos = synthetic_photos(3, 48);
    let sampler = RestorerSampler::new(photos.clone(), cpu_priors(), sampling(0.1), 11).unwrap();
    let first = sampler.batch(5, 3).unwrap();
    assert_eq!(first, sampler.batch(5, 3).unwrap());
    // A separately built sampler with the same seed agrees; another seed or iteration does not.
    let twin = RestorerSampler::new(photos.clone(), cpu_priors(), sampling(0.1), 11).unwrap();
    assert_eq!(first, twin.batch(5, 3).unwrap());
    assert_ne!(first, sampler.batch(6, 3).unwrap());
    let other = RestorerSampler::new(photos, cpu_priors(), sampling(0.1), 12).unwrap();
    assert_ne!(first, other.batch(5, 3).unwrap());
    // Samples within a batch differ from each other.
    assert_ne!(first[0].clean, first[1].clean);
}

#[test]
fn samples_have_the_documented_shapes() {
    let sampler =
        RestorerSampler::new(synthetic_photos(2, 48), cpu_priors(), sampling(0.0), 3).unwrap();
    for index in 0..6 {
        let sample = sampler.sample(0, index).unwrap();
        assert_eq!(sample.clean.len(), 3 * 24 * 24);
        assert_eq!(sample.degraded.len(), 3 * 24 * 24);
        assert_eq!(sample.encoder_side, 40);
        assert_eq!(sample.encoder_input.len(), 3 * 40 * 40);
        assert_eq!(sample.quality.len(), 36);
        assert!(sample.mask_count >= 1 && sample.mask_count <= 16);
        assert_eq!(sample.masks.len(), sample.mask_count as usize * 24 * 24);
        // The graph segmenter's regions cover every pixel of the window exactly once.
        for pixel in 0..24 * 24 {
            let covering: f32 = (0..sample.mask_count as usize)
                .map(|m| sample.masks[m * 24 * 24 + pixel])
                .sum();
            assert_eq!(covering, 1.0);
        }
        // Pixels are 8-bit values (what the services receive).
        assert!(
            sample
                .degraded
                .iter()
                .all(|v| ((v * 255.0).round() - v * 255.0).abs() < 1e-3)
        );
        if sample.kinds.iter().all(|&k| k == 0.0) {
            assert_eq!(sample.degraded, sample.clean, "clean samples are untouched");
        } else {
            assert_ne!(sample.degraded, sample.clean);
        }
    }
}

#[test]
fn prior_dropout_gives_exactly_the_neutral_priors() {
    let sampler =
        RestorerSampler::new(synthetic_photos(2, 48), cpu_priors(), sampling(1.0), 9).unwrap();
    let samples = sampler.batch(0, 2).unwrap();
    for sample in &samples {
        assert_eq!(
            sample.dropout,
            crate::priors::PriorDropout {
                quality: true,
                masks: true,
                embeddings: true
            }
        );
        assert_eq!(sample.quality, neutral_quality(36));
        assert_eq!(sample.mask_count, 1);
        assert!(sample.masks.iter().all(|&v| v == 1.0));
    }
    let store = nn::VarStore::new(Device::Cpu);
    let encoder = clearair_model::DegradationEncoder::new(&store.root(), &small_encoder());
    let batch = RestorerBatch::assemble(&samples, &encoder, Device::Cpu).unwrap();
    assert_eq!(batch.priors.content.size(), [2, 512]);
    assert_eq!(
        batch
            .priors
            .content
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
    assert_eq!(
        batch
            .priors
            .degradation
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
    assert_eq!(
        batch
            .priors
            .quality
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
    assert_eq!(batch.priors.masks.size(), [2, 1, 24, 24]);
    assert_eq!(batch.priors.masks.min().double_value(&[]), 1.0);

    // Without dropout the embeddings are the encoder's (unit norm).
    let kept =
        RestorerSampler::new(synthetic_photos(2, 48), cpu_priors(), sampling(0.0), 9).unwrap();
    let batch = RestorerBatch::assemble(&kept.batch(0, 2).unwrap(), &encoder, Device::Cpu).unwrap();
    let norms = batch.priors.degradation.norm_scalaropt_dim(2.0, [1], false);
    assert!((norms.min().double_value(&[]) - 1.0).abs() < 1e-4);
}

#[test]
fn the_context_is_what_the_priors_see() {
    // With dropout off, F_q must be BRISQUE of the whole degraded window, not of the crop.
    let priors = cpu_priors();
    let sampler =
        RestorerSampler::new(synthetic_photos(1, 48), priors.clone(), sampling(0.0), 4).unwrap();
    let sample = sampler.sample(2, 0).unwrap();
    let window = Rgb8Image::from_planar_f32(40, 40, &sample.encoder_input).unwrap();
    assert_eq!(priors.compute(&window).unwrap().quality, sample.quality);
}

#[test]
fn sampler_rejects_crops_that_do_not_fit() {
    let photos = synthetic_photos(1, 48);
    let bad = RestorerSampling {
        crop: 48,
        context: 40,
        ..sampling(0.0)
    };
    assert!(RestorerSampler::new(photos.clone(), cpu_priors(), bad, 0).is_err());
    let too_big = RestorerSampling {
        crop: 24,
        context: 64,
        ..sampling(0.0)
    };
    assert!(RestorerSampler::new(photos, cpu_priors(), too_big, 0).is_err());
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
