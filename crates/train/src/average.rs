//! An exponential moving average of the weights (Polyak averaging), kept beside the trained
//! weights and evaluated, checkpointed and shipped instead of them.
//!
//! With a batch of four crops on two cores, consecutive checkpoints of the same run differ by
//! 2–3 dB on some evaluation rows: the last step's weights are one noisy draw. The average
//! over the last ~1/(1−decay) steps removes that noise without changing what is trained (the
//! optimiser never sees it). The decay warms up as `min(decay, (1+n)/(10+n))` after `n`
//! updates, so an average started mid-run (or on a short run) is not dominated by its first
//! weights.

use std::collections::HashMap;
use std::path::Path;

use clearair_model::{ClearAirConfig, ClearAirNet};
use tch::{Tensor, nn};

use crate::error::Result;

/// The averaged weights and the network that reads them.
pub struct WeightAverage {
    decay: f64,
    updates: u64,
    store: nn::VarStore,
    network: ClearAirNet,
}

impl std::fmt::Debug for WeightAverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightAverage")
            .field("decay", &self.decay)
            .field("updates", &self.updates)
            .finish_non_exhaustive()
    }
}

impl WeightAverage {
    /// An average with `decay` (0 < decay < 1) starting at `source`'s current weights, after
    /// `updates` earlier updates (0 for a new average).
    pub fn start(
        decay: f64,
        updates: u64,
        source: &nn::VarStore,
        config: &ClearAirConfig,
    ) -> Result<Self> {
        if !(decay > 0.0 && decay < 1.0) {
            return Err(crate::TrainError::Setting(format!(
                "the weight average's decay must lie strictly between 0 and 1, not {decay}"
            )));
        }
        let mut store = nn::VarStore::new(source.device());
        let network = ClearAirNet::new(&store.root(), config);
        store.copy(source)?;
        store.freeze();
        Ok(Self {
            decay,
            updates,
            store,
            network,
        })
    }

    /// The decay the next update uses.
    pub fn effective_decay(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Moves the average towards `source`'s weights: `avg += (1 − d)(w − avg)`.
    pub fn update(&mut self, source: &nn::VarStore) {
        let weight = 1.0 - self.effective_decay();
        let current: HashMap<String, Tensor> = source.variables();
        tch::no_grad(|| {
            for (name, mut average) in self.store.variables() {
                let _ = average.lerp_(&current[&name], weight);
            }
        });
        self.updates += 1;
    }

    /// Updates so far (stored in checkpoints, for the decay's warm-up).
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The configured decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// The averaged weights.
    pub fn store(&self) -> &nn::VarStore {
        &self.store
    }

    /// The network reading the averaged weights.
    pub fn network(&self) -> &ClearAirNet {
        &self.network
    }

    /// Replaces the average with the weights in `path` (a checkpoint's).
    pub fn load(&mut self, path: &Path, updates: u64) -> Result<()> {
        clearair_model::load_weights(&mut self.store, path)?;
        self.updates = updates;
        Ok(())
    }

    /// The store and network, for whoever uses the average from here on.
    pub fn into_parts(self) -> (nn::VarStore, ClearAirNet) {
        (self.store, self.network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{exclusive_torch, tiny_restorer};
    use tch::Device;

    fn filled(store: &nn::VarStore, value: f64) {
        tch::no_grad(|| {
            for (_, mut tensor) in store.variables() {
                let _ = tensor.fill_(value);
            }
        });
    }

    #[test]
    fn the_average_follows_the_weights_with_a_warmed_up_decay() {
        let _torch = exclusive_torch();
        let store = nn::VarStore::new(Device::Cpu);
        let _net = ClearAirNet::new(&store.root(), &tiny_restorer(36));
        filled(&store, 0.0);
        let mut average = WeightAverage::start(0.5, 0, &store, &tiny_restorer(36)).unwrap();
        // First update: decay min(0.5, 1/10) = 0.1, so the average moves 90% of the way.
        filled(&store, 1.0);
        assert!((average.effective_decay() - 0.1).abs() < 1e-12);
        average.update(&store);
        // Then min(0.5, 2/11) = 0.1818…; later the configured 0.5 caps it.
        average.update(&store);
        let expected = 1.0 - 0.1 * (2.0 / 11.0);
        for (name, tensor) in average.store().variables() {
            let values = Vec::<f32>::try_from(tensor.flatten(0, -1)).unwrap();
            assert!(
                values
                    .iter()
                    .all(|v| (f64::from(*v) - expected).abs() < 1e-6),
                "{name}: {:?} vs {expected}",
                &values[..values.len().min(3)]
            );
        }
        for _ in 0..20 {
            average.update(&store);
        }
        assert_eq!(average.updates(), 22);
        assert!((average.effective_decay() - 0.5).abs() < 1e-12);
        // The average's own weights never take gradients.
        assert!(
            average
                .store()
                .trainable_variables()
                .iter()
                .all(|t| !t.requires_grad())
        );
    }

    #[test]
    fn a_decay_outside_the_open_unit_interval_is_refused() {
        let _torch = exclusive_torch();
        let store = nn::VarStore::new(Device::Cpu);
        let _net = ClearAirNet::new(&store.root(), &tiny_restorer(36));
        for decay in [0.0, 1.0, -0.5, f64::NAN] {
            let error = WeightAverage::start(decay, 0, &store, &tiny_restorer(36)).unwrap_err();
            assert!(error.to_string().contains("decay"), "{error}");
        }
    }
}
