//! One training step's forward and backward passes, with the batch split across threads.
//!
//! On a CPU with few cores, libtorch's intra-op parallelism pays poorly for a network of many
//! small operations: every operation forks and joins its OpenMP team, and the waiting threads
//! spin (measured with `clearair train benchmark`: two intra-op threads are only about 1.3×
//! one). Splitting the *batch* instead — each thread runs the forward and backward pass of
//! its own rows with one intra-op thread, and autograd adds every thread's gradient into the
//! shared parameters — keeps both cores busy with whole passes.

use clearair_model::{ClearAirNet, IcrmConfig, LossDraws, PixelObjective, restoration_loss_with};

use crate::data::RestorerBatch;
use crate::error::{Result, TrainError};

/// The loss of one step, as plain numbers (weighted means over the whole batch).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepLosses {
    /// What was backpropagated.
    pub total: f64,
    /// The pixel loss.
    pub pixel: f64,
    /// The ICRM term (before α), when it was on.
    pub consistency: Option<f64>,
}

/// What every shard reads.
struct StepInputs<'a> {
    network: &'a ClearAirNet,
    batch: &'a RestorerBatch,
    draws: &'a LossDraws,
    icrm: &'a IcrmConfig,
    pixel: PixelObjective,
}

// SAFETY: the shards only read these tensors (narrowing a tensor makes a new view whose
// storage reference count is atomic) and run forward passes over the shared parameters, which
// libtorch allows from several threads; the backward passes add into the parameters'
// gradients through autograd's AccumulateGrad nodes, which hold a lock while they do. Nothing
// here is written by more than one thread outside those locks.
unsafe impl Sync for StepInputs<'_> {}

impl StepInputs<'_> {
    /// Forward and backward of rows `start..start + length`, the loss weighted by their
    /// share of the batch so the shards' gradients add up to the whole batch's.
    fn run(&self, start: i64, length: i64) -> StepLosses {
        let rows = self.batch.rows(start, length);
        let loss = restoration_loss_with(
            self.network,
            &rows.degraded,
            &rows.clean,
            &rows.priors,
            &self.draws.rows(start, length),
            self.icrm,
            self.pixel,
        );
        let weight = length as f64 / self.batch.len() as f64;
        (&loss.total * weight).backward();
        StepLosses {
            total: loss.total.double_value(&[]) * weight,
            pixel: loss.pixel.double_value(&[]) * weight,
            consistency: loss
                .consistency
                .as_ref()
                .map(|c| c.double_value(&[]) * weight),
        }
    }
}

/// Row ranges `(start, length)` splitting `rows` into `shards` nearly equal parts.
pub fn shard_ranges(rows: i64, shards: usize) -> Vec<(i64, i64)> {
    let shards = (shards.max(1) as i64).min(rows.max(1));
    let (base, extra) = (rows / shards, rows % shards);
    let mut start = 0;
    (0..shards)
        .map(|index| {
            let length = base + i64::from(index < extra);
            let range = (start, length);
            start += length;
            range
        })
        .filter(|(_, length)| *length > 0)
        .collect()
}

/// Computes the loss of `batch` under `draws` and adds its gradient to the network's
/// parameters (zero them first), the batch split into `shards` row ranges that run on their
/// own threads. With one shard everything runs on the calling thread.
///
/// Shards sum their gradients in whichever order they finish, so two runs may differ in the
/// last bits of a float; everything random is in `draws`, drawn once beforehand.
pub fn accumulate_gradients(
    network: &ClearAirNet,
    batch: &RestorerBatch,
    draws: &LossDraws,
    icrm: &IcrmConfig,
    pixel: PixelObjective,
    shards: usize,
) -> Result<StepLosses> {
    let inputs = StepInputs {
        network,
        batch,
        draws,
        icrm,
        pixel,
    };
    let ranges = shard_ranges(batch.len(), shards);
    let results: Vec<StepLosses> = if ranges.len() <= 1 {
        vec![inputs.run(0, batch.len())]
    } else {
        std::thread::scope(|scope| {
            let inputs = &inputs;
            let others: Vec<_> = ranges[1..]
                .iter()
                .map(|&(start, length)| scope.spawn(move || inputs.run(start, length)))
                .collect();
            let mut results = vec![inputs.run(ranges[0].0, ranges[0].1)];
            for handle in others {
                results.push(
                    handle
                        .join()
                        .map_err(|_| TrainError::Worker("a training shard panicked".into()))?,
                );
            }
            Ok::<_, TrainError>(results)
        })?
    };
    Ok(results
        .into_iter()
        .fold(StepLosses::default(), |sum, part| StepLosses {
            total: sum.total + part.total,
            pixel: sum.pixel + part.pixel,
            consistency: match (sum.consistency, part.consistency) {
                (None, c) | (c, None) => c,
                (Some(a), Some(b)) => Some(a + b),
            },
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_row_once() {
        assert_eq!(shard_ranges(8, 2), [(0, 4), (4, 4)]);
        assert_eq!(shard_ranges(5, 2), [(0, 3), (3, 2)]);
        assert_eq!(shard_ranges(3, 8), [(0, 1), (1, 1), (2, 1)]);
        assert_eq!(shard_ranges(4, 1), [(0, 4)]);
        assert_eq!(shard_ranges(4, 0), [(0, 4)]);
    }
}
