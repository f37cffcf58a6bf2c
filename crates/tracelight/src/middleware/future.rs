//! [`ResponseFuture`]: records the outcome when the inner service answers.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Response, StatusCode};
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context as OtelContext, ContextGuard, KeyValue};
use pin_project_lite::pin_project;

use super::classify;
use super::layer::Shared;
use super::route::{InternedRoute, Route, route_str};
use crate::metrics::http::RouteLabel;
use crate::propagation::{TRACEPARENT, format_traceparent};
use crate::trace::{RequestSpanName, name_request_span};

/// Makes the server span current on this thread (OTel context, and its name for log lines)
/// until dropped: around each poll of the inner future, and around the inner `call` unless that
/// only stores the request (axum's `Route`, see `service.rs`).
pub(crate) struct ServerScope {
    _name: Option<RequestSpanName>,
    _cx: ContextGuard,
}

impl ServerScope {
    pub(crate) fn enter(cx: &OtelContext, name: Option<&'static str>) -> Self {
        let name = name.map(|n| name_request_span(cx.span().span_context().span_id(), n));
        Self {
            _name: name,
            _cx: cx.clone().attach(),
        }
    }
}

/// Per-request bookkeeping, finished exactly once: on response, on error, on panic, or (if the
/// request is abandoned) on drop.
pub(crate) struct State {
    /// The server span's context; `None` when the layer records no spans.
    pub(crate) span_cx: Option<OtelContext>,
    /// The server span's name, when interned (for log lines).
    pub(crate) name: Option<&'static str>,
    pub(crate) start: Instant,
    /// The span's start time, when it records: its end time is derived from it and the
    /// monotonic `start`, so the end reads one clock instead of two.
    pub(crate) start_time: Option<SystemTime>,
    /// The route template, when interned.
    pub(crate) interned: Option<&'static InternedRoute>,
    /// The route, when matched but not interned (past the interning cap).
    pub(crate) route: Option<Route>,
    pub(crate) method: u8,
    pub(crate) scheme: u8,
    pub(crate) shared: Arc<Shared>,
    pub(crate) finished: bool,
}

impl State {
    /// Records the status on the span, ends it, and records the duration histogram.
    /// `status == None` means the inner service failed without a response; `panic` is the
    /// message of a handler panic.
    fn finish(&mut self, status: Option<StatusCode>, panic: Option<String>) {
        self.finished = true;
        let elapsed = self.start.elapsed();
        let error = status.is_none_or(classify::server_error);
        if let Some(cx) = &self.span_cx {
            let span = cx.span();
            // Recording spans are the ones with a start time (no lock to ask the span).
            if self.start_time.is_some() {
                if let Some(status) = status {
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status.as_u16()),
                    ));
                }
                if error {
                    let error_type = match status {
                        Some(s) => s.as_u16().to_string(),
                        None => "_OTHER".to_owned(),
                    };
                    span.set_attribute(KeyValue::new("error.type", error_type));
                    span.set_status(Status::error(panic.unwrap_or_default()));
                }
            }
            // A span without a start time records nothing: ending it would only take its lock.
            if let Some(t) = self.start_time {
                span.end_with_timestamp(t + elapsed);
            }
        }
        if let Some(m) = &self.shared.metrics {
            m.active(self.method, self.scheme).decrement(1.0);
            let route = match (self.interned, &self.route) {
                (Some(r), _) => RouteLabel::Interned(r),
                (None, Some(r)) => RouteLabel::Text(route_str(r)),
                (None, None) => RouteLabel::Unmatched,
            };
            m.record_duration(
                route,
                self.method,
                self.scheme,
                status.map_or(0, |s| s.as_u16()),
                error,
                elapsed.as_secs_f64(),
            );
        }
    }

    fn traceparent(&self) -> Option<HeaderValue> {
        if !self.shared.response_traceparent {
            return None;
        }
        let cx = self.span_cx.as_ref()?;
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| format_traceparent(sc))
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The client went away before a response: end the span now (not when the last clone
        // of its context goes) and keep the in-flight gauge honest.
        if let Some(cx) = &self.span_cx
            && self.start_time.is_some()
        {
            cx.span().end();
        }
        if let Some(m) = &self.shared.metrics {
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
            let _scope = state
                .span_cx
                .as_ref()
                .map(|span_cx| ServerScope::enter(span_cx, state.name));
            catch_unwind(AssertUnwindSafe(|| this.inner.poll(cx)))
        };
        let output = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(mut response))) => {
                state.finish(Some(response.status()), None);
                if let Some(tp) = state.traceparent() {
                    response.headers_mut().insert(TRACEPARENT, tp);
                }
                Ok(response)
            }
            Ok(Poll::Ready(Err(e))) => {
                state.finish(None, None);
                Err(e)
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                {
                    let _scope = state
                        .span_cx
                        .as_ref()
                        .map(|span_cx| ServerScope::enter(span_cx, state.name));
                    tracing::error!(target: "tracelight::http", panic = %message, "request handler panicked");
                }
                state.finish(Some(StatusCode::INTERNAL_SERVER_ERROR), Some(message));
                let mut response = Response::new(B::default());
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                if let Some(tp) = state.traceparent() {
                    response.headers_mut().insert(TRACEPARENT, tp);
                }
                Ok(response)
            }
        };
        // The server span has ended; release its context now.
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
