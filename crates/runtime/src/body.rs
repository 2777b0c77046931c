//! A response-body wrapper that runs a callback once the body is finished, so a concurrency
//! permit is held, and a status code recorded, for the whole of a streaming response.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How a response body ended.
#[derive(Debug)]
pub(crate) enum BodyOutcome<'a> {
    /// The body ended with trailers (where gRPC puts `grpc-status`).
    Trailers(&'a http::HeaderMap),
    /// The body ended without trailers.
    Finished,
    /// The body errored or was dropped before its end (e.g. the client went away).
    Abandoned,
}

pin_project! {
    /// Runs `callback` exactly once, when `inner` ends or is dropped.
    pub(crate) struct OnBodyEnd<B, F>
    where
        F: FnOnce(BodyOutcome<'_>),
    {
        #[pin]
        inner: B,
        callback: Option<F>,
    }

    impl<B, F> PinnedDrop for OnBodyEnd<B, F>
    where
        F: FnOnce(BodyOutcome<'_>),
    {
        fn drop(this: Pin<&mut Self>) {
            if let Some(callback) = this.project().callback.take() {
                callback(BodyOutcome::Abandoned);
            }
        }
    }
}

impl<B, F> OnBodyEnd<B, F>
where
    F: FnOnce(BodyOutcome<'_>),
{
    pub(crate) fn new(inner: B, callback: F) -> Self {
        Self {
            inner,
            callback: Some(callback),
        }
    }
}

impl<B, F> Body for OnBodyEnd<B, F>
where
    B: Body,
    F: FnOnce(BodyOutcome<'_>),
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = ready!(this.inner.poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(callback) = this.callback.take()
                {
                    callback(BodyOutcome::Trailers(trailers));
                }
            }
            Some(Err(_)) => {
                if let Some(callback) = this.callback.take() {
                    callback(BodyOutcome::Abandoned);
                }
            }
            None => {
                if let Some(callback) = this.callback.take() {
                    callback(BodyOutcome::Finished);
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
