//! [`ResponseFuture`]: records the outcome when the inner service answers.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Response, StatusCode};
use opentelemetry::trace::TraceContextExt;
use pin_project_lite::pin_project;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::classify;
use super::layer::Shared;
use super::route::{Route, route_str};
use crate::metrics::names::UNMATCHED_ROUTE;
use crate::propagation::{TRACEPARENT, format_traceparent};

/// Per-request bookkeeping, finished exactly once: on response, on error, on panic, or (if the
/// request is abandoned) on drop.
pub(crate) struct State {
    pub(crate) span: Span,
    pub(crate) start: Instant,
    pub(crate) route: Option<Route>,
    pub(crate) method: u8,
    pub(crate) scheme: u8,
    pub(crate) shared: Arc<Shared>,
    pub(crate) finished: bool,
}

impl State {
    /// Records the status on the span and the duration histogram. `status == None` means the
    /// inner service failed without a response.
    fn finish(&mut self, status: Option<StatusCode>) {
        self.finished = true;
        let error = status.is_none_or(classify::server_error);
        if !self.span.is_disabled() {
            if let Some(status) = status {
                self.span
                    .record("http.response.status_code", i64::from(status.as_u16()));
            }
            if error {
                match status {
                    Some(s) => self
                        .span
                        .record("error.type", tracing::field::display(s.as_u16())),
                    None => self.span.record("error.type", "_OTHER"),
                };
                self.span.record("otel.status_code", "error");
            }
        }
        if let Some(m) = &self.shared.metrics {
            m.active(self.method, self.scheme).decrement(1.0);
            let route = self.route.as_ref().map_or(UNMATCHED_ROUTE, route_str);
            m.duration(
                route,
                self.method,
                self.scheme,
                status.map_or(0, |s| s.as_u16()),
                error,
            )
            .record(self.start.elapsed().as_secs_f64());
        }
    }

    fn traceparent(&self) -> Option<HeaderValue> {
        if !self.shared.response_traceparent || self.span.is_disabled() {
            return None;
        }
        let cx = self.span.context();
        let otel = cx.span();
        let sc = otel.span_context();
        sc.is_valid().then(|| format_traceparent(sc))
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // The client went away before a response: keep the in-flight gauge honest.
        if !self.finished
            && let Some(m) = &self.shared.metrics
        {
            m.active(self.method, self.scheme).decrement(1.0);
        }
    }
}

pin_project! {
    /// Response future of [`Tracelight`](super::Tracelight).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<State>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, state: State) -> Self {
        Self {
            inner,
            state: Some(state),
        }
    }

    pub(crate) fn passthrough(inner: F) -> Self {
        Self { inner, state: None }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(state) = this.state.as_mut() else {
            return this.inner.poll(cx);
        };
        let polled = {
            let _entered = state.span.enter();
            catch_unwind(AssertUnwindSafe(|| this.inner.poll(cx)))
        };
        let output = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(mut response))) => {
                state.finish(Some(response.status()));
                if let Some(tp) = state.traceparent() {
                    response.headers_mut().insert(TRACEPARENT, tp);
                }
                Ok(response)
            }
            Ok(Poll::Ready(Err(e))) => {
                state.finish(None);
                Err(e)
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                {
                    let _entered = state.span.enter();
                    tracing::error!(target: "tracelight::http", panic = %message, "request handler panicked");
                }
                state
                    .span
                    .record("otel.status_description", message.as_str());
                state.finish(Some(StatusCode::INTERNAL_SERVER_ERROR));
                let mut response = Response::new(B::default());
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                if let Some(tp) = state.traceparent() {
                    response.headers_mut().insert(TRACEPARENT, tp);
                }
                Ok(response)
            }
        };
        // Drop the span now: the server span ends when the response is ready.
        *this.state = None;
        Poll::Ready(output)
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
