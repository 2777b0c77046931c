//! Reproducible randomness: every random choice of a run comes from a ChaCha8 generator keyed
//! by (run seed, purpose, iteration, index), so a sample is the same whichever worker thread
//! draws it, in whatever order, and a resumed run draws exactly what an uninterrupted one
//! would have.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a generator is for; keeps the streams of different uses apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Crops, degradations and prior dropout of restorer training samples.
    RestorerSample = 1,
    /// Crops and degradations of encoder training samples.
    EncoderSample = 2,
    /// The ICRM augmentation of a restorer training step.
    RestorerStep = 3,
    /// The fixed degradations of the evaluation.
    Evaluation = 4,
    /// The `degrade` command.
    Degrade = 5,
    /// Photo, window, symmetry and degradation of a cached training window.
    Window = 6,
}

/// The generator for (`seed`, `purpose`, `iteration`, `index`).
pub fn keyed_rng(seed: u64, purpose: Purpose, iteration: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key
        .chunks_exact_mut(8)
        .zip([seed, purpose as u64, iteration, index])
    {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// A libtorch seed for (`seed`, `purpose`, `iteration`): libtorch's own generator drives mask
/// dropout and the ICRM noise, so it is re-seeded at every step.
pub fn torch_seed(seed: u64, purpose: Purpose, iteration: u64) -> i64 {
    use rand::Rng;
    // libtorch takes an i64; keep it non-negative.
    (keyed_rng(seed, purpose, iteration, u64::MAX).r#gen::<u64>() >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_by_every_key_part_and_repeat_exactly() {
        let draw = |rng: &mut ChaCha8Rng| (0..4).map(|_| rng.r#gen::<u64>()).collect::<Vec<_>>();
        let base = draw(&mut keyed_rng(7, Purpose::RestorerSample, 3, 1));
        assert_eq!(base, draw(&mut keyed_rng(7, Purpose::RestorerSample, 3, 1)));
        for other in [
            keyed_rng(8, Purpose::RestorerSample, 3, 1),
            keyed_rng(7, Purpose::EncoderSample, 3, 1),
            keyed_rng(7, Purpose::RestorerSample, 4, 1),
            keyed_rng(7, Purpose::RestorerSample, 3, 2),
        ] {
            assert_ne!(base, draw(&mut other.clone()));
        }
        assert!(torch_seed(7, Purpose::RestorerStep, 0) >= 0);
        assert_ne!(
            torch_seed(7, Purpose::RestorerStep, 0),
            torch_seed(7, Purpose::RestorerStep, 1)
        );
    }
}
