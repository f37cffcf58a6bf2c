//! The OpenTelemetry context of a request, where no `tracing` span stands for it.
//!
//! The server middleware opens the server span with the SDK tracer, not as a `tracing` span (a
//! span through the `tracing` bridge costs several µs per request), and makes it the current
//! [`opentelemetry::Context`] while the request future is polled. Three things then read that
//! context:
//!
//! * `tracing-opentelemetry` itself: a `tracing` span created with no current `tracing` span
//!   takes `opentelemetry::Context::current()` as its parent (`OpenTelemetryLayer::parent_context`
//!   with context activation off), so `#[instrument]` spans and `.instrument()`-ed tasks in a
//!   handler are children of the server span;
//! * [`ContextSpanEvents`], which turns events outside any `tracing` span into span events of the
//!   current context's span (what `tracing-opentelemetry` does for events inside its spans);
//! * the log layer and the client middleware, through [`current_context`] / the request span name
//!   kept here.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use opentelemetry::trace::{SpanId, Status, TraceContextExt as _};
use opentelemetry::{Context as OtelContext, KeyValue, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::event_names::event_name;

/// The OpenTelemetry context of the code calling it: that of the current `tracing` span when it
/// has one (a span exported through `tracing-opentelemetry`), else
/// [`opentelemetry::Context::current()`], which inside a request handled by
/// [`TracelightLayer`](crate::TracelightLayer) holds the server span.
///
/// Use it instead of `tracing::Span::current().context()` to reach the server span from a
/// handler: the server span is not a `tracing` span, so `Span::current()` does not see it.
///
/// ```
/// use opentelemetry::trace::TraceContextExt as _;
///
/// async fn handler() -> String {
///     let cx = tracelight::current_context();
///     cx.span().set_attribute(opentelemetry::KeyValue::new("order.id", 42));
///     cx.span().span_context().trace_id().to_string()
/// }
/// ```
pub fn current_context() -> OtelContext {
    let traced = tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        let id = current.id()?;
        tracing_opentelemetry::get_otel_context(id, dispatch)
    });
    match traced {
        Some(cx) if cx.span().span_context().is_valid() => cx,
        _ => OtelContext::current(),
    }
}

thread_local! {
    /// The server span being polled on this thread and its name, for log lines.
    static REQUEST_SPAN: Cell<Option<(SpanId, &'static str)>> = const { Cell::new(None) };
}

/// Restores the previous request span name of the thread on drop.
#[derive(Debug)]
pub(crate) struct RequestSpanName(Option<(SpanId, &'static str)>);

impl Drop for RequestSpanName {
    fn drop(&mut self) {
        REQUEST_SPAN.with(|c| c.set(self.0));
    }
}

/// Names the server span `id` as `name` on this thread until the guard drops.
pub(crate) fn name_request_span(id: SpanId, name: &'static str) -> RequestSpanName {
    RequestSpanName(REQUEST_SPAN.with(|c| c.replace(Some((id, name)))))
}

/// The name of span `id`, if it is the server span being polled on this thread.
pub(crate) fn request_span_name(id: SpanId) -> Option<&'static str> {
    REQUEST_SPAN
        .with(Cell::get)
        .and_then(|(current, name)| (current == id).then_some(name))
}

/// Adds events that are outside any `tracing` span to the span of the current OpenTelemetry
/// context, when that span is recording: a log line in a handler becomes an event of the server
/// span. Events inside a `tracing` span are left to `tracing-opentelemetry`. Filter it like the
/// `tracing-opentelemetry` layer, so both agree on which spans exist.
///
/// The event is built like `tracing-opentelemetry`'s: named after its message, attributes
/// `level`, `target` and its fields; an `error` field without a message makes it an `exception`
/// event with `exception.message` and sets the span status to error; an ERROR event sets the
/// span status to error.
#[derive(Debug, Default)]
pub(crate) struct ContextSpanEvents;

impl<S> Layer<S> for ContextSpanEvents
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Inside a span (explicit or contextual): `tracing-opentelemetry`'s event. Explicit root
        // events (`parent: None`) belong to no span at all.
        if !event.is_contextual() || ctx.lookup_current().is_some() {
            return;
        }
        OtelContext::map_current(|cx| {
            let span = cx.span();
            if !span.is_recording() {
                return;
            }
            let normalized = event.normalized_metadata();
            let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
            let target: Value = match &normalized {
                Some(n) => n.target().to_owned().into(),
                None => event.metadata().target().into(),
            };
            let mut visitor = EventVisitor {
                callsite: std::ptr::from_ref(event.metadata()).addr(),
                name: None,
                attributes: Vec::with_capacity(4),
                error: None,
            };
            visitor
                .attributes
                .push(KeyValue::new("level", meta.level().as_str()));
            visitor.attributes.push(KeyValue::new("target", target));
            event.record(&mut visitor);
            let EventVisitor {
                name,
                attributes,
                error,
                ..
            } = visitor;
            let name = name.unwrap_or(Cow::Borrowed(event.metadata().name()));
            span.add_event(name, attributes);
            if let Some(description) = error {
                span.set_status(Status::error(description));
            } else if *meta.level() == Level::ERROR {
                span.set_status(Status::error(""));
            }
        });
    }
}

struct EventVisitor {
    /// Identifies the event's callsite, for [`event_name`].
    callsite: usize,
    name: Option<Cow<'static, str>>,
    attributes: Vec<KeyValue>,
    error: Option<String>,
}

impl EventVisitor {
    fn push(&mut self, field: &Field, value: impl Into<Value>) {
        // `log.*` fields are the `log` record's metadata, already in `target`.
        if !field.name().starts_with("log.") {
            self.attributes.push(KeyValue::new(field.name(), value));
        }
    }
}

impl Visit for EventVisitor {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.push(field, v),
            Err(_) => self.push(field, value.to_string()),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.name = Some(value.to_owned().into()),
            "error" if self.name.is_none() => self.record_error(format!("{value:?}")),
            _ => self.push(field, value.to_owned()),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.name = Some(event_name(self.callsite, value)),
            "error" if self.name.is_none() => self.record_error(format!("{value:?}")),
            _ => self.push(field, format!("{value:?}")),
        }
    }
}

impl EventVisitor {
    /// An `error` field with no message: an `exception` event (semconv), status error.
    fn record_error(&mut self, message: String) {
        self.name = Some(Cow::Borrowed("exception"));
        self.attributes
            .push(KeyValue::new("exception.message", message.clone()));
        self.error = Some(message);
    }
}
