//! Batches prepared ahead of the training loop by worker threads, so the device never waits
//! for BRISQUE, segmentation or degradation synthesis.
//!
//! Workers claim iterations from a shared counter and send finished batches through a
//! bounded channel (a full queue blocks them: memory stays bounded); the consumer reorders
//! by iteration, so the sequence of batches is the same whatever the thread count.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, TrainError};

/// Makes the batch of one iteration; called from several threads at once.
pub type BatchMaker<T> = Arc<dyn Fn(u64) -> Result<T> + Send + Sync>;

/// Iterations `start..` produced by worker threads, yielded in order.
pub struct Prefetcher<T: Send + 'static> {
    receiver: Receiver<(u64, Result<T>)>,
    pending: BTreeMap<u64, Result<T>>,
    next: u64,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> std::fmt::Debug for Prefetcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher")
            .field("next", &self.next)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Prefetcher<T> {
    /// Starts `workers` threads (at least one) producing iterations from `start` on, with at
    /// most `capacity` finished batches queued.
    pub fn start(workers: usize, capacity: usize, start: u64, make: BatchMaker<T>) -> Self {
        let (sender, receiver) = sync_channel(capacity.max(1));
        let counter = Arc::new(AtomicU64::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers.max(1))
            .map(|index| {
                let (sender, counter, stop, make) =
                    (sender.clone(), counter.clone(), stop.clone(), make.clone());
                std::thread::Builder::new()
                    .name(format!("clearair-data-{index}"))
                    .spawn(move || work(&sender, &counter, &stop, &*make))
                    .expect("spawn a data worker")
            })
            .collect();
        Self {
            receiver,
            pending: BTreeMap::new(),
            next: start,
            stop,
            workers,
        }
    }

    /// The batch of the next iteration, and that iteration.
    pub fn next_batch(&mut self) -> Result<(u64, T)> {
        loop {
            if let Some(batch) = self.pending.remove(&self.next) {
                let iteration = self.next;
                self.next += 1;
                return batch.map(|batch| (iteration, batch));
            }
            let (iteration, batch) = self
                .receiver
                .recv()
                .map_err(|_| TrainError::Worker("every data worker has stopped".into()))?;
            self.pending.insert(iteration, batch);
        }
    }
}

fn work<T>(
    sender: &SyncSender<(u64, Result<T>)>,
    counter: &AtomicU64,
    stop: &AtomicBool,
    make: &(dyn Fn(u64) -> Result<T> + Send + Sync),
) {
    while !stop.load(Ordering::Relaxed) {
        let iteration = counter.fetch_add(1, Ordering::Relaxed);
        let mut message = (iteration, make(iteration));
        // Retry a full queue with a timeout so a stopped consumer is noticed.
        loop {
            match sender.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(returned)) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    message = returned;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

impl<T: Send + 'static> Drop for Prefetcher<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_arrive_in_order_whatever_the_thread_timing() {
        // Later iterations finish first: a worker sleeps longer on even iterations.
        let make: BatchMaker<u64> = Arc::new(|iteration| {
            std::thread::sleep(Duration::from_millis(if iteration % 2 == 0 {
                6
            } else {
                0
            }));
            Ok(iteration * 10)
        });
        let mut prefetcher = Prefetcher::start(3, 2, 5, make);
        for expected in 5..25 {
            assert_eq!(prefetcher.next_batch().unwrap(), (expected, expected * 10));
        }
    }

    #[test]
    fn a_failing_batch_is_reported_for_its_iteration() {
        let make: BatchMaker<u64> = Arc::new(|iteration| {
            if iteration == 2 {
                Err(TrainError::Setting("bad sample".into()))
            } else {
                Ok(iteration)
            }
        });
        let mut prefetcher = Prefetcher::start(2, 4, 0, make);
        assert_eq!(prefetcher.next_batch().unwrap().0, 0);
        assert_eq!(prefetcher.next_batch().unwrap().0, 1);
        let error = prefetcher.next_batch().unwrap_err().to_string();
        assert!(error.contains("bad sample"), "{error}");
    }
}
