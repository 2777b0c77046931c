use std::sync::Mutex;

use super::*;

/// The size of every batch a test batcher ran.
type Sizes = Arc<Mutex<Vec<usize>>>;

/// A batcher that doubles each item and records the size of every batch it ran.
fn doubling(config: BatchingConfig) -> (Batcher<u32, u32, String>, Sizes) {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let batcher = Batcher::spawn("test-batcher", config, None, move |items: Vec<u32>| {
        seen.lock().unwrap().push(items.len());
        Ok(items.into_iter().map(|i| i * 2).collect())
    })
    .unwrap();
    (batcher, sizes)
}

#[test]
fn concurrent_items_share_a_batch_and_each_gets_its_own_result() {
    // A long delay: the batch must close because it is full, not because time ran out.
    let (batcher, sizes) = doubling(BatchingConfig {
        max_batch_size: 4,
        max_queue_delay_ms: 1_000,
    });
    let started = Instant::now();
    let handles: Vec<_> = (0..4u32)
        .map(|i| {
            let batcher = batcher.clone();
            std::thread::spawn(move || (i, batcher.submit_blocking(i)))
        })
        .collect();
    for handle in handles {
        let (i, result) = handle.join().unwrap();
        assert_eq!(result.unwrap(), i * 2);
    }
    assert_eq!(*sizes.lock().unwrap(), vec![4]);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "a full batch runs at once, without waiting out the delay"
    );
}

#[test]
fn a_lone_item_runs_when_the_delay_is_up() {
    let (batcher, sizes) = doubling(BatchingConfig {
        max_batch_size: 8,
        max_queue_delay_ms: 10,
    });
    let started = Instant::now();
    assert_eq!(batcher.submit_blocking(21).unwrap(), 42);
    assert!(started.elapsed() >= Duration::from_millis(10));
    assert_eq!(*sizes.lock().unwrap(), vec![1]);
}

#[test]
fn a_model_error_reaches_every_item_of_its_batch() {
    let batcher: Batcher<u32, u32, String> = Batcher::spawn(
        "failing",
        BatchingConfig {
            max_batch_size: 2,
            max_queue_delay_ms: 500,
        },
        None,
        |_items| Err("out of memory".to_owned()),
    )
    .unwrap();
    let other = batcher.clone();
    let second = std::thread::spawn(move || other.submit_blocking(2));
    let first = batcher.submit_blocking(1).unwrap_err().to_string();
    assert_eq!(first, "out of memory");
    assert_eq!(
        second.join().unwrap().unwrap_err().to_string(),
        "out of memory"
    );
}

#[test]
fn a_wrong_result_count_and_a_panic_are_errors_and_the_thread_survives() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let batcher: Batcher<u32, u32, String> = Batcher::spawn(
        "unreliable",
        BatchingConfig {
            max_batch_size: 1,
            max_queue_delay_ms: 0,
        },
        None,
        move |items| match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 {
            1 => Ok(vec![]),
            2 => panic!("model bug"),
            _ => Ok(items),
        },
    )
    .unwrap();
    let count = batcher.submit_blocking(1).unwrap_err().to_string();
    assert_eq!(count, "the model returned 0 results for a batch of 1");
    let panic = batcher.submit_blocking(2).unwrap_err().to_string();
    assert!(panic.contains("panicked"), "{panic}");
    assert_eq!(batcher.submit_blocking(3).unwrap(), 3);
}

#[tokio::test]
async fn callers_that_gave_up_are_left_out_of_the_batch() {
    let (batcher, sizes) = doubling(BatchingConfig {
        max_batch_size: 8,
        max_queue_delay_ms: 200,
    });
    // This caller's deadline passes long before the batch closes.
    let abandoned = tokio::time::timeout(Duration::from_millis(1), batcher.submit(1)).await;
    assert!(abandoned.is_err());
    assert_eq!(batcher.submit(5).await.unwrap(), 10);
    assert_eq!(*sizes.lock().unwrap(), vec![1], "only the live caller ran");
}

/// Everything a test batcher reported: per-item waits and `(elapsed, size)` per batch.
#[derive(Default)]
struct Recorder {
    waits: Mutex<Vec<Duration>>,
    batches: Mutex<Vec<(Duration, usize)>>,
}

impl BatchObserver for Recorder {
    fn queue_waited(&self, waited: Duration) {
        self.waits.lock().unwrap().push(waited);
    }

    fn batch_ran(&self, elapsed: Duration, size: usize) {
        self.batches.lock().unwrap().push((elapsed, size));
    }
}

#[test]
fn batches_and_waits_are_reported_to_the_observer() {
    let recorder = Arc::new(Recorder::default());
    let batcher: Batcher<u32, u32, String> = Batcher::spawn(
        "measured",
        BatchingConfig {
            max_batch_size: 2,
            max_queue_delay_ms: 20,
        },
        Some(recorder.clone()),
        |items| {
            std::thread::sleep(Duration::from_millis(5));
            Ok(items)
        },
    )
    .unwrap();
    batcher.submit_blocking(7).unwrap();
    let waits = recorder.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "one item waited");
    assert!(
        waits[0] >= Duration::from_millis(20),
        "{waits:?}: the delay ran out"
    );
    let batches = recorder.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "one batch ran");
    assert_eq!(batches[0].1, 1);
    assert!(batches[0].0 >= Duration::from_millis(5), "{batches:?}");
}

#[test]
fn invalid_settings_are_named() {
    let zero = BatchingConfig {
        max_batch_size: 0,
        ..BatchingConfig::default()
    };
    assert!(
        zero.validate("batching")
            .unwrap_err()
            .contains("batching.max_batch_size")
    );
    let slow = BatchingConfig {
        max_queue_delay_ms: 5_000,
        ..BatchingConfig::default()
    };
    assert!(
        slow.validate("batching")
            .unwrap_err()
            .contains("max_queue_delay_ms is 5000")
    );
    BatchingConfig::default().validate("batching").unwrap();
}

#[test]
fn fewer_admission_slots_than_a_batch_are_refused_by_name() {
    let config = BatchingConfig {
        max_batch_size: 8,
        max_queue_delay_ms: 5,
    };
    assert_eq!(config.check_admission("batching", 8), Ok(()));
    assert_eq!(config.check_admission("batching", 16), Ok(()));
    let refused = config.check_admission("batching", 4).unwrap_err();
    for needle in ["server.max_concurrency is 4", "batching.max_batch_size 8"] {
        assert!(refused.contains(needle), "{refused}");
    }
}
