//! Log lines that carry the ids of the span they were emitted in.
//!
//! [`LogLayer`] is a `tracing-subscriber` layer that formats **events only**. Unlike
//! `tracing_subscriber::fmt`, it never formats or stores span fields, so creating a span costs
//! the log layer nothing; each line instead carries the OpenTelemetry `trace_id` and `span_id`
//! of the innermost span, which lead to everything else in the trace backend. The ids are read
//! from `tracing-opentelemetry` once per span and cached in the span's extensions. Outside any
//! `tracing` span (directly in a request handler), they are those of the current
//! OpenTelemetry context's span: the middleware's server span, named in `span` too.
//!
//! A JSON line looks like this (one line in reality):
//!
//! ```text
//! {"timestamp":"2026-11-30T19:40:00.123456Z","level":"INFO","service":"orders",
//!  "target":"orders::api","message":"order created","order_id":42,
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","span":"get_order"}
//! ```

mod format;
mod timestamp;

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::config::LogFormat;
use crate::trace::request_span_name;

/// The OpenTelemetry ids of a span, cached in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanIds {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
}

/// Formats events as [`LogFormat`] lines into `W`.
#[derive(Debug)]
pub(crate) struct LogLayer<W> {
    writer: W,
    format: LogFormat,
    service: Box<str>,
    ansi: bool,
    /// The dispatcher this layer belongs to, to ask `tracing-opentelemetry` for span contexts.
    /// (`dispatcher::get_default` cannot be used inside a subscriber callback: tracing's
    /// re-entrancy guard makes it return the no-op dispatcher there.)
    dispatch: OnceLock<WeakDispatch>,
}

impl<W> LogLayer<W> {
    pub(crate) fn new(writer: W, format: LogFormat, service: &str, ansi: bool) -> Self {
        Self {
            writer,
            format,
            service: service.into(),
            ansi,
            dispatch: OnceLock::new(),
        }
    }
}

thread_local! {
    static BUF: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if superseded(event.metadata()) {
            return;
        }
        let span = ctx.event_span(event);
        let (ids, span_name) = match span.as_ref().and_then(|s| self.ids_of(s)) {
            Some(ids) => (Some(ids), span.as_ref().map(SpanRef::name)),
            // No `tracing` span with OpenTelemetry ids: the current OTel context's span, which
            // in a request handler is the middleware's server span.
            None => match current_otel_ids() {
                Some(ids) => (Some(ids), request_span_name(ids.span_id)),
                None => (None, span.as_ref().map(SpanRef::name)),
            },
        };
        let line = format::Line {
            event,
            service: &self.service,
            ids,
            span_name,
            ansi: self.ansi,
        };
        let write = |buf: &mut String| {
            buf.clear();
            match self.format {
                LogFormat::Json => line.json(buf),
                LogFormat::Compact => line.compact(buf),
                LogFormat::Pretty => line.pretty(buf),
            }
            // A log line that cannot be written is dropped: there is nowhere to report it.
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(buf.as_bytes());
        };
        BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => write(&mut buf),
            // Re-entered while writing (a writer that logs): use a fresh buffer.
            Err(_) => write(&mut String::new()),
        });
    }
}

/// OpenTelemetry SDK events logged once per failed batch. The exporter wrapper in `trace.rs`
/// reports an outage once when it starts and once when it ends, and counts the lost spans, so
/// these per-batch repeats are dropped rather than flooding the log during an outage.
const SUPERSEDED_SDK_EVENTS: [&str; 2] =
    ["BatchSpanProcessor.ExportError", "Export.Failed.Exhausted"];

fn superseded(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("opentelemetry") && SUPERSEDED_SDK_EVENTS.contains(&meta.name())
}

/// The ids of the span of the current OpenTelemetry context, if valid.
fn current_otel_ids() -> Option<SpanIds> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| SpanIds {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
        })
    })
}

impl<W> LogLayer<W> {
    /// The ids of `span`, from the cache or from `tracing-opentelemetry`. `None` when no
    /// OpenTelemetry layer is installed (then lines carry no ids).
    fn ids_of<S>(&self, span: &SpanRef<'_, S>) -> Option<SpanIds>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if let Some(ids) = span.extensions().get::<SpanIds>() {
            return Some(*ids);
        }
        let dispatch = self.dispatch.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
        let otel_span = cx.span();
        let sc = otel_span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let ids = SpanIds {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
        };
        span.extensions_mut().insert(ids);
        Some(ids)
    }
}
