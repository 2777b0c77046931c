//! Admission control: at most `max_concurrency` requests run at once, at most `max_queue` wait
//! for a slot, and anything beyond is refused at once with RESOURCE_EXHAUSTED. A waiting
//! request leaves the queue when its deadline passes (the deadline layer drops it).
//!
//! Admission is also deadline-aware: the layer keeps a moving average of how long admitted
//! requests hold their slot, and a request that would have to queue is refused at once with
//! RESOURCE_EXHAUSTED when its expected wait plus one service time exceeds what is left of
//! its deadline. Under overload a client then hears "retry elsewhere or later" in
//! microseconds instead of DEADLINE_EXCEEDED after waiting its whole budget in a queue it could
//! never leave in time, and the queue holds only work that can still finish.
//!
//! Applied per model service, not to health or reflection, so probes are answered even when
//! the model is saturated.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{sync::Semaphore, time::Instant};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use crate::{body::OnBodyEnd, deadline::Deadline, metrics::ServiceMetrics};

/// Weight of the newest sample in the moving average of the service time.
const SERVICE_TIME_WEIGHT: f64 = 0.2;

#[derive(Debug)]
struct AdmissionState {
    permits: Arc<Semaphore>,
    max_concurrency: usize,
    max_queue: usize,
    waiting: AtomicUsize,
    metrics: ServiceMetrics,
    /// Moving average of the time a request holds its slot, in seconds (`None` before the
    /// first request has finished).
    service_time: Mutex<Option<f64>>,
}

impl AdmissionState {
    fn publish_in_flight(&self) {
        let in_flight = self.max_concurrency - self.permits.available_permits();
        self.metrics.set_in_flight(in_flight);
    }

    fn record_service_time(&self, held: Duration) {
        let mut average = self.service_time.lock().expect("service time lock");
        let sample = held.as_secs_f64();
        *average = Some(match *average {
            Some(previous) => previous + SERVICE_TIME_WEIGHT * (sample - previous),
            None => sample,
        });
    }

    /// The average service time, and when a request with `ahead` others already queued
    /// would be answered, measured from now: the queue drains `max_concurrency` at a time,
    /// the slot it waits for frees half a service time from now on average, then it runs for
    /// one service time. `None` until a service time has been measured.
    fn expected_completion(&self, ahead: usize) -> Option<(Duration, Duration)> {
        let average = (*self.service_time.lock().expect("service time lock"))?;
        let waves = (ahead / self.max_concurrency) as f64 + 0.5;
        Some((
            Duration::from_secs_f64(average),
            Duration::from_secs_f64(average * (waves + 1.0)),
        ))
    }
}

/// Leaves the wait queue when dropped, whether the request got a slot or gave up.
struct QueueSlot<'a>(&'a AdmissionState);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        let now = self.0.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        self.0.metrics.set_queue_depth(now);
    }
}

/// Tower layer applying admission control to one gRPC service.
#[derive(Clone, Debug)]
pub struct AdmissionLayer {
    state: Arc<AdmissionState>,
}

impl AdmissionLayer {
    /// Admits `max_concurrency` requests at once with `max_queue` waiting.
    pub fn new(max_concurrency: usize, max_queue: usize, metrics: ServiceMetrics) -> Self {
        // Publish zeros at once so dashboards and autoscalers see the series before any load.
        metrics.set_capacity(max_concurrency.max(1));
        metrics.set_in_flight(0);
        metrics.set_queue_depth(0);
        Self {
            state: Arc::new(AdmissionState {
                permits: Arc::new(Semaphore::new(max_concurrency.max(1))),
                max_concurrency: max_concurrency.max(1),
                max_queue,
                waiting: AtomicUsize::new(0),
                metrics,
                service_time: Mutex::new(None),
            }),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A gRPC service behind admission control.
#[derive(Clone, Debug)]
pub struct Admission<S> {
    inner: S,
    state: Arc<AdmissionState>,
}

impl<S: NamedService> NamedService for Admission<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Admission<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone is the one that was not polled ready; swap so the ready one is used.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let permit = match state.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    let ahead = state.waiting.fetch_add(1, Ordering::SeqCst);
                    let slot = QueueSlot(&state);
                    if ahead >= state.max_queue {
                        drop(slot);
                        return Ok(Status::resource_exhausted(format!(
                            "{} is overloaded: {} requests in progress and {} waiting; retry with backoff",
                            state.metrics.service(),
                            state.max_concurrency,
                            state.max_queue
                        ))
                        .into_http());
                    }
                    let deadline = request.extensions().get::<Deadline>().copied();
                    if let (Some(deadline), Some((average, expected))) =
                        (deadline, state.expected_completion(ahead))
                    {
                        let remaining = deadline.remaining();
                        if expected > remaining {
                            drop(slot);
                            return Ok(Status::resource_exhausted(format!(
                                "{} is overloaded: {ahead} requests queued ahead of this one \
                                 and each takes about {} ms, so it would finish in about {} \
                                 ms, after its deadline ({} ms left); retry with backoff or \
                                 a longer deadline",
                                state.metrics.service(),
                                average.as_millis(),
                                expected.as_millis(),
                                remaining.as_millis()
                            ))
                            .into_http());
                        }
                    }
                    state.metrics.set_queue_depth(ahead + 1);
                    let permit = state
                        .permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    drop(slot);
                    permit
                }
            };
            state.publish_in_flight();
            let admitted = Instant::now();
            let response = inner.call(request).await?;
            let state_at_end = state.clone();
            Ok(response.map(|body| {
                Body::new(OnBodyEnd::new(body, move |_| {
                    drop(permit);
                    state_at_end.record_service_time(admitted.elapsed());
                    state_at_end.publish_in_flight();
                }))
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn slow_service() -> impl Service<
        http::Request<()>,
        Response = http::Response<Body>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(|_request: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        })
    }

    fn code(response: &http::Response<Body>) -> tonic::Code {
        Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code())
    }

    #[tokio::test(start_paused = true)]
    async fn sheds_beyond_concurrency_plus_queue() {
        let metrics = crate::metrics::global().service("admission-test");
        let service = AdmissionLayer::new(2, 1, metrics).layer(slow_service());
        let mut calls = Vec::new();
        for _ in 0..5 {
            let mut service = service.clone();
            calls.push(tokio::spawn(async move {
                let response = service.call(http::Request::new(())).await.unwrap();
                let status = Status::from_header_map(response.headers());
                (code(&response), status.map(|s| s.message().to_owned()))
            }));
            // Let each call reach the semaphore before the next one starts.
            tokio::task::yield_now().await;
        }
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(call.await.unwrap());
        }
        let shed: Vec<_> = outcomes
            .iter()
            .filter(|(c, _)| *c == tonic::Code::ResourceExhausted)
            .collect();
        assert_eq!(
            shed.len(),
            2,
            "2 run + 1 waits, the other 2 are shed: {outcomes:?}"
        );
        assert!(shed[0].1.as_deref().unwrap().contains("overloaded"));
        let ok = outcomes
            .iter()
            .filter(|(c, _)| *c == tonic::Code::Ok)
            .count();
        assert_eq!(ok, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn queued_requests_run_when_a_slot_frees() {
        let metrics = crate::metrics::global().service("admission-queue-test");
        let layer = AdmissionLayer::new(1, 4, metrics);
        let service = layer.layer(slow_service());
        let mut handles = Vec::new();
        for _ in 0..3 {
            let mut service = service.clone();
            handles.push(tokio::spawn(async move {
                let response = service.call(http::Request::new(())).await.unwrap();
                let c = code(&response);
                drop(response);
                c
            }));
        }
        for handle in handles {
            assert_eq!(handle.await.unwrap(), tonic::Code::Ok);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_cannot_finish_before_its_deadline_is_shed_at_once() {
        let metrics = crate::metrics::global().service("admission-deadline-test");
        let service = AdmissionLayer::new(1, 8, metrics).layer(slow_service());
        let with_deadline = |budget: Option<Duration>| {
            let mut request = http::Request::new(());
            if let Some(budget) = budget {
                request.extensions_mut().insert(Deadline::after(budget));
            }
            request
        };
        // No service time measured yet: nothing is shed on a guess.
        let mut first = service.clone();
        let response = first.call(with_deadline(None)).await.unwrap();
        assert_eq!(code(&response), tonic::Code::Ok);
        drop(response); // the slot is held for 1 s of (paused) time per call

        let mut busy = service.clone();
        let running = tokio::spawn(async move {
            let response = busy.call(with_deadline(None)).await.unwrap();
            let c = code(&response);
            drop(response);
            c
        });
        tokio::task::yield_now().await;

        // Queued behind a 1 s call and taking 1 s itself: 0.5 s is hopeless…
        let mut hopeless = service.clone();
        let started = Instant::now();
        let response = hopeless
            .call(with_deadline(Some(Duration::from_millis(500))))
            .await
            .unwrap();
        assert_eq!(code(&response), tonic::Code::ResourceExhausted);
        assert!(
            started.elapsed() < Duration::from_millis(10),
            "shed at once"
        );
        let message = Status::from_header_map(response.headers()).unwrap();
        assert!(
            message.message().contains("after its deadline"),
            "{message:?}"
        );

        // …while 5 s is plenty: it waits for the slot and runs.
        let mut patient = service.clone();
        let response = patient
            .call(with_deadline(Some(Duration::from_secs(5))))
            .await
            .unwrap();
        assert_eq!(code(&response), tonic::Code::Ok);
        drop(response);
        assert_eq!(running.await.unwrap(), tonic::Code::Ok);
    }
}
