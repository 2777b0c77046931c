//! The prior cache: priors of an image keyed by its content hash, least recently used evicted
//! first, bounded in bytes. The same photo restored twice (retries, A/B of output formats)
//! skips all three prior services the second time.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use crate::priors::PriorSet;

/// Content hash of an image plus the mask budget it was segmented with.
pub(crate) type CacheKey = ([u8; 32], u32);

#[derive(Default)]
struct CacheState {
    entries: HashMap<CacheKey, (Arc<PriorSet>, u64)>,
    recency: BTreeMap<u64, CacheKey>,
    tick: u64,
    bytes: usize,
}

/// A byte-bounded LRU map from image hashes to their priors.
pub(crate) struct PriorCache {
    capacity: usize,
    state: Mutex<CacheState>,
}

impl PriorCache {
    /// A cache holding at most `capacity` bytes of priors (0 disables caching).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The cached priors for `key`, marking them recently used.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<Arc<PriorSet>> {
        let mut state = self.state.lock().expect("cache lock poisoned");
        state.tick += 1;
        let tick = state.tick;
        let (priors, old_tick) = state.entries.get_mut(key)?;
        let priors = priors.clone();
        let old = std::mem::replace(old_tick, tick);
        state.recency.remove(&old);
        state.recency.insert(tick, *key);
        Some(priors)
    }

    /// Stores `priors` under `key`, evicting the least recently used entries to stay within
    /// the byte budget. Entries larger than the whole budget are not stored.
    pub(crate) fn insert(&self, key: CacheKey, priors: Arc<PriorSet>) {
        let size = priors.size_bytes();
        if size > self.capacity {
            return;
        }
        let mut state = self.state.lock().expect("cache lock poisoned");
        if let Some((old, old_tick)) = state.entries.remove(&key) {
            state.bytes -= old.size_bytes();
            state.recency.remove(&old_tick);
        }
        while state.bytes + size > self.capacity {
            let Some((_, oldest)) = state.recency.pop_first() else {
                break;
            };
            if let Some((evicted, _)) = state.entries.remove(&oldest) {
                state.bytes -= evicted.size_bytes();
            }
        }
        state.tick += 1;
        let tick = state.tick;
        state.entries.insert(key, (priors, tick));
        state.recency.insert(tick, key);
        state.bytes += size;
    }

    /// Bytes currently held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.state.lock().expect("cache lock poisoned").bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::priors::PriorSet;

    fn priors(feature_count: usize) -> Arc<PriorSet> {
        Arc::new(PriorSet {
            quality: Some(clearair_proto::v1::QualityPrior {
                features: vec![0.5; feature_count],
                ..Default::default()
            }),
            ..PriorSet::default()
        })
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_budget() {
        let one = priors(1000).size_bytes();
        let cache = PriorCache::new(one * 2 + one / 2);
        cache.insert(([1; 32], 16), priors(1000));
        cache.insert(([2; 32], 16), priors(1000));
        assert!(
            cache.get(&([1; 32], 16)).is_some(),
            "touch 1 so 2 is the oldest"
        );
        cache.insert(([3; 32], 16), priors(1000));
        assert!(cache.get(&([2; 32], 16)).is_none(), "2 was evicted");
        assert!(cache.get(&([1; 32], 16)).is_some());
        assert!(cache.get(&([3; 32], 16)).is_some());
        assert!(cache.bytes() <= one * 2 + one / 2);
    }

    #[test]
    fn keys_include_the_mask_budget_and_oversize_entries_are_skipped() {
        let cache = PriorCache::new(1 << 20);
        cache.insert(([7; 32], 16), priors(10));
        assert!(cache.get(&([7; 32], 8)).is_none());
        let tiny = PriorCache::new(16);
        tiny.insert(([7; 32], 16), priors(10));
        assert!(tiny.get(&([7; 32], 16)).is_none());
        assert_eq!(tiny.bytes(), 0);
    }
}
