//! Where the time of a forward pass goes: named, nested spans timed on the calling thread.
//!
//! The networks wrap their stages in [`span`]; nothing is recorded (one thread-local flag read
//! per span) unless the pass runs inside [`collect`]. On the CPU libtorch ops are synchronous,
//! so a span's wall time is the time of its ops (intra-op threads included); on CUDA a span
//! would time only the launches, so [`collect`] is for CPU passes.

use std::{
    cell::RefCell,
    time::{Duration, Instant},
};

/// One span's totals over the collected passes.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanTotal {
    /// Its path: the names of the enclosing spans and its own, joined by `/`.
    pub path: String,
    /// Nesting depth (0: a top-level span).
    pub depth: usize,
    /// Wall time in all calls.
    pub total: Duration,
    /// Time not spent in nested spans.
    pub own: Duration,
    /// Calls.
    pub calls: u64,
}

#[derive(Default)]
struct Recorder {
    stack: Vec<(&'static str, Instant, Duration)>,
    totals: Vec<SpanTotal>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Runs `f` as the span `name` (nested in the span that is running, if any).
pub fn span<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let recording = RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        match r.as_mut() {
            Some(recorder) => {
                recorder.stack.push((name, Instant::now(), Duration::ZERO));
                true
            }
            None => false,
        }
    });
    if !recording {
        return f();
    }
    let out = f();
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let recorder = r.as_mut().expect("recording started above");
        let (_, started, nested) = recorder.stack.pop().expect("span pushed above");
        let elapsed = started.elapsed();
        if let Some(parent) = recorder.stack.last_mut() {
            parent.2 += elapsed;
        }
        let depth = recorder.stack.len();
        let path = recorder
            .stack
            .iter()
            .map(|(n, _, _)| *n)
            .chain(std::iter::once(name))
            .collect::<Vec<_>>()
            .join("/");
        match recorder.totals.iter_mut().find(|t| t.path == path) {
            Some(total) => {
                total.total += elapsed;
                total.own += elapsed.saturating_sub(nested);
                total.calls += 1;
            }
            None => recorder.totals.push(SpanTotal {
                path,
                depth,
                total: elapsed,
                own: elapsed.saturating_sub(nested),
                calls: 1,
            }),
        }
    });
    out
}

/// Runs `f` with recording on and returns its result with the spans' totals, parents before
/// their children, in the order they first ran.
pub fn collect<T>(f: impl FnOnce() -> T) -> (T, Vec<SpanTotal>) {
    RECORDER.with(|r| *r.borrow_mut() = Some(Recorder::default()));
    let out = f();
    let recorder = RECORDER
        .with(|r| r.borrow_mut().take())
        .expect("recording set above");
    // Spans are recorded when they end, so children come before parents: order by first start
    // instead, which is a parent's position before its first child.
    let mut totals = recorder.totals;
    let order: Vec<String> = totals.iter().map(|t| t.path.clone()).collect();
    totals.sort_by_key(|t| {
        let mut key = Vec::new();
        let parts: Vec<&str> = t.path.split('/').collect();
        for depth in 1..=parts.len() {
            let prefix = parts[..depth].join("/");
            // A parent ends after its children, so its index is larger; rank each prefix by its
            // first descendant-or-self's index.
            let first = order
                .iter()
                .position(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
                .unwrap_or(usize::MAX);
            key.push(first);
        }
        key
    });
    (out, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    #[test]
    fn nested_spans_add_up_and_come_parent_first() {
        let ((), totals) = collect(|| {
            span("a", || {
                busy(5);
                span("x", || busy(10));
                span("x", || busy(10));
            });
            span("b", || span("y", || busy(5)));
        });
        let paths: Vec<_> = totals.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/x", "b", "b/y"]);
        let a = &totals[0];
        let x = &totals[1];
        assert_eq!((a.depth, x.depth, x.calls), (0, 1, 2));
        assert!(x.total >= Duration::from_millis(20));
        assert!(a.total >= x.total + Duration::from_millis(5));
        assert!(a.own < a.total - x.total + Duration::from_millis(3));
    }

    #[test]
    fn nothing_is_recorded_outside_collect() {
        assert_eq!(span("a", || 7), 7);
        let (value, totals) = collect(|| 3);
        assert_eq!(value, 3);
        assert!(totals.is_empty(), "the span above left nothing behind");
    }
}
