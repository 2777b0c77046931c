//! Dynamic batching for GPU-backed models, as Triton's dynamic batcher does it: requests
//! wait at most `max_queue_delay_ms` after the first one of a batch arrives, and a batch
//! runs as soon as it holds `max_batch_size` items or the delay is up.
//!
//! Requests prepare their inputs (decode, resize, normalise) on their own threads, then hand
//! one item to the batcher's single thread, which owns the model's forward passes. A caller
//! that gave up (deadline, cancelled RPC) is dropped from its batch before the model runs.
//! Per batch the batcher tells its [`BatchObserver`], if it has one, the model time and batch
//! size, and per item the time spent waiting; a service passes its metrics (the runtime's
//! `ServiceMetrics` records them as `clearair_model_duration_seconds`, `clearair_batch_size`
//! and `clearair_batch_queue_seconds`), training passes none.
//!
//! Admission control in front of a service bounds how many items can wait here; set the
//! service's `max_concurrency` to at least `max_batch_size` or batches never fill.
//!
//! The crate is apart from both the prior backends (which batch) and the server runtime
//! (which measures) so that neither depends on the other: the runtime serves the
//! orchestrator too, which must build and run without libtorch.
//!
//! # Layout
//! - [`BatchingConfig`]: the two knobs and their validation.
//! - [`BatchObserver`]: what a batch reports, and to whom.
//! - [`Batcher`]: the handle callers submit to; the batching thread behind it.
//! - [`BatchError`]: why a batched call failed.

use std::{
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// How a service batches concurrent requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingConfig {
    /// Most items in one forward pass (1 turns batching off).
    pub max_batch_size: usize,
    /// Longest an item waits for others after the first of its batch arrived.
    pub max_queue_delay_ms: u64,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 8,
            max_queue_delay_ms: 5,
        }
    }
}

impl BatchingConfig {
    /// Checks the values make sense, naming the field otherwise.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.max_batch_size == 0 {
            return Err(format!("{section}.max_batch_size must be at least 1"));
        }
        if self.max_queue_delay_ms > 1_000 {
            return Err(format!(
                "{section}.max_queue_delay_ms is {}; more than a second of waiting defeats \
                 the point (Triton's delays are microseconds to milliseconds)",
                self.max_queue_delay_ms
            ));
        }
        Ok(())
    }
}

impl BatchingConfig {
    /// Checks that a service admitting `max_concurrency` calls at once can fill a batch: a
    /// batch only ever holds calls that were admitted together, so with fewer slots than
    /// `max_batch_size` the model never sees a full batch and the GPU runs part-empty.
    pub fn check_admission(&self, section: &str, max_concurrency: usize) -> Result<(), String> {
        if max_concurrency < self.max_batch_size {
            return Err(format!(
                "server.max_concurrency is {max_concurrency}, below {section}.max_batch_size \
                 {}: a batch holds only calls admitted at once, so it would never fill; raise \
                 server.max_concurrency to at least {} or lower {section}.max_batch_size",
                self.max_batch_size, self.max_batch_size
            ));
        }
        Ok(())
    }
}

/// Where a batcher reports what it did (a service's metrics). Called on the batching
/// thread, so implementations must be quick.
pub trait BatchObserver: Send + Sync {
    /// One item waited `waited` from being queued until its batch started.
    fn queue_waited(&self, waited: Duration);
    /// The model ran one batch of `size` items in `elapsed`.
    fn batch_ran(&self, elapsed: Duration, size: usize);
}

/// Why a batched call failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E> {
    /// The model failed on the batch this item was in (shared by the whole batch).
    #[error(transparent)]
    Model(Arc<E>),
    /// The model returned a different number of results than it was given items.
    #[error("the model returned {got} results for a batch of {expected}")]
    Count {
        /// Items in the batch.
        expected: usize,
        /// Results returned.
        got: usize,
    },
    /// The model panicked, or the batcher has shut down.
    #[error("the batching thread {0}")]
    Stopped(&'static str),
}

struct Job<I, O, E> {
    item: I,
    enqueued: Instant,
    reply: oneshot::Sender<Result<O, BatchError<E>>>,
}

/// A handle to a batching thread; cloning shares the thread.
pub struct Batcher<I, O, E> {
    sender: mpsc::Sender<Job<I, O, E>>,
    config: BatchingConfig,
}

impl<I, O, E> Clone for Batcher<I, O, E> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            config: self.config.clone(),
        }
    }
}

impl<I, O, E> std::fmt::Debug for Batcher<I, O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<I, O, E> Batcher<I, O, E>
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Starts the thread `name` that runs `process` on batches, reporting to `observer`.
    /// `process` gets the items in arrival order and must return one result per item, in
    /// that order. The thread ends when every handle is dropped.
    pub fn spawn<F>(
        name: &str,
        config: BatchingConfig,
        observer: Option<Arc<dyn BatchObserver>>,
        process: F,
    ) -> std::io::Result<Self>
    where
        F: FnMut(Vec<I>) -> Result<Vec<O>, E> + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel();
        let worker_config = config.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(receiver, worker_config, observer, process))?;
        Ok(Self { sender, config })
    }

    /// The configuration it batches by.
    pub fn config(&self) -> &BatchingConfig {
        &self.config
    }

    /// Queues `item` and waits, without blocking the async runtime, for its result.
    pub async fn submit(&self, item: I) -> Result<O, BatchError<E>> {
        let receiver = self.enqueue(item)?;
        receiver
            .await
            .map_err(|_| BatchError::Stopped("stopped before answering"))?
    }

    /// Queues `item` and blocks this thread until its result is ready (for callers already
    /// on a blocking thread).
    pub fn submit_blocking(&self, item: I) -> Result<O, BatchError<E>> {
        let receiver = self.enqueue(item)?;
        receiver
            .blocking_recv()
            .map_err(|_| BatchError::Stopped("stopped before answering"))?
    }

    fn enqueue(
        &self,
        item: I,
    ) -> Result<oneshot::Receiver<Result<O, BatchError<E>>>, BatchError<E>> {
        let (reply, receiver) = oneshot::channel();
        self.sender
            .send(Job {
                item,
                enqueued: Instant::now(),
                reply,
            })
            .map_err(|_| BatchError::Stopped("has stopped"))?;
        Ok(receiver)
    }
}

fn run<I, O, E, F>(
    receiver: mpsc::Receiver<Job<I, O, E>>,
    config: BatchingConfig,
    observer: Option<Arc<dyn BatchObserver>>,
    mut process: F,
) where
    F: FnMut(Vec<I>) -> Result<Vec<O>, E>,
{
    let delay = Duration::from_millis(config.max_queue_delay_ms);
    let max = config.max_batch_size.max(1);
    while let Ok(first) = receiver.recv() {
        let close = first.enqueued + delay;
        let mut jobs = vec![first];
        while jobs.len() < max {
            let wait = close.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(wait) {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Callers that gave up while waiting cost no model time.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let started = Instant::now();
        let (items, replies): (Vec<I>, Vec<_>) = jobs
            .into_iter()
            .map(|job| {
                if let Some(observer) = &observer {
                    observer.queue_waited(started - job.enqueued);
                }
                (job.item, job.reply)
            })
            .unzip();
        let count = items.len();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process(items)));
        if let Some(observer) = &observer {
            observer.batch_ran(started.elapsed(), count);
        }
        match outcome {
            Ok(Ok(outputs)) if outputs.len() == count => {
                for (reply, output) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(Ok(output));
                }
            }
            Ok(Ok(outputs)) => {
                for reply in replies {
                    let _ = reply.send(Err(BatchError::Count {
                        expected: count,
                        got: outputs.len(),
                    }));
                }
            }
            Ok(Err(error)) => {
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(BatchError::Model(error.clone())));
                }
            }
            Err(_) => {
                tracing::error!("the model panicked on a batch of {count}");
                for reply in replies {
                    let _ = reply.send(Err(BatchError::Stopped("panicked running the model")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
