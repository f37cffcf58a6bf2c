//! The middleware's server span, recorded without the SDK's per-span machinery.
//!
//! An `opentelemetry_sdk` span costs, per request, a tracer clone, a dynamic sampler call, a
//! scan of the provider's processors at start and end, and a copy of its data into the exported
//! [`SpanData`] when it ends. [`ServerSpan`] holds the exported [`SpanData`] itself from the
//! start and hands it to the provider's processors directly when it ends. It implements
//! [`opentelemetry::trace::Span`], so it is the span of the request's
//! [`opentelemetry::Context`] like any other: handlers reach it through
//! [`current_context`](crate::current_context), `tracing` events become its span events,
//! `tracing` spans its children.
//!
//! What the SDK would do is kept: the configured sampler decides (and may add attributes or
//! change the trace state), the default span limits apply, nothing is exported once telemetry is
//! shut down. The processors are the ones registered with the provider (shared through
//! [`SharedProcessor`]); their `on_start` is not called, which is a no-op for the batch and
//! simple processors tracelight registers.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Event, Link, SpanContext, Status};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanLimits, SpanProcessor};

/// A span processor registered with the provider and also called directly by [`ServerSpan`].
#[derive(Debug)]
pub(crate) struct SharedProcessor(pub(crate) Arc<dyn SpanProcessor>);

impl SpanProcessor for SharedProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    // `set_resource` needs `&mut`: the processor is given its resource before it is shared
    // (see `trace::provider`).
}

/// Where server spans go: the provider's processors, with what the SDK would apply.
pub(crate) struct SpanSink {
    pub(crate) processors: Box<[Arc<dyn SpanProcessor>]>,
    pub(crate) sampler: opentelemetry_sdk::trace::Sampler,
    pub(crate) scope: InstrumentationScope,
    pub(crate) limits: SpanLimits,
    /// Set once [`Telemetry`](crate::Telemetry) shuts the provider down.
    pub(crate) shut_down: Arc<AtomicBool>,
}

impl fmt::Debug for SpanSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanSink")
            .field("processors", &self.processors.len())
            .finish_non_exhaustive()
    }
}

impl SpanSink {
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Relaxed)
    }
}

/// A recording server span. Ends (and is handed to the processors) on
/// [`end_with_timestamp`](opentelemetry::trace::Span::end_with_timestamp) or, failing that,
/// when dropped.
pub(crate) struct ServerSpan {
    span_context: SpanContext,
    data: Option<SpanData>,
    sink: Arc<SpanSink>,
}

impl fmt::Debug for ServerSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSpan")
            .field("span_context", &self.span_context)
            .field("recording", &self.data.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerSpan {
    /// A started span; `data.span_context` is `span_context`, `data.end_time` its start time.
    /// Attributes past the limit are dropped and counted.
    pub(crate) fn new(mut data: SpanData, sink: Arc<SpanSink>) -> Self {
        let max = sink.limits.max_attributes_per_span as usize;
        if data.attributes.len() > max {
            data.dropped_attributes_count += (data.attributes.len() - max) as u32;
            data.attributes.truncate(max);
        }
        let max_links = sink.limits.max_links_per_span as usize;
        if data.links.links.len() > max_links {
            data.links.dropped_count += (data.links.links.len() - max_links) as u32;
            data.links.links.truncate(max_links);
        }
        Self {
            span_context: data.span_context.clone(),
            data: Some(data),
            sink,
        }
    }

    fn end_at(&mut self, timestamp: Option<SystemTime>) {
        // The end time is set in place and the data moved out only into the processor call:
        // `SpanData` is several hundred bytes, and each move of it is a `memcpy`.
        if self.sink.is_shut_down() {
            self.data = None;
            return;
        }
        let Some(data) = &mut self.data else {
            return;
        };
        data.end_time = match timestamp {
            Some(t) => t,
            None => opentelemetry::time::now(),
        };
        match &*self.sink.processors {
            [] => self.data = None,
            [one] => {
                if let Some(data) = self.data.take() {
                    one.on_end(data);
                }
            }
            many => {
                if let Some(data) = self.data.take() {
                    for p in many {
                        p.on_end(data.clone());
                    }
                }
            }
        }
    }
}

impl opentelemetry::trace::Span for ServerSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        mut attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let limits = self.sink.limits;
        let Some(data) = &mut self.data else {
            return;
        };
        if data.events.events.len() < limits.max_events_per_span as usize {
            let dropped = truncate(&mut attributes, limits.max_attributes_per_event);
            data.events
                .events
                .push(Event::new(name, timestamp, attributes, dropped));
        } else {
            data.events.dropped_count += 1;
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    fn is_recording(&self) -> bool {
        self.data.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        let max = self.sink.limits.max_attributes_per_span as usize;
        if let Some(data) = &mut self.data {
            if data.attributes.len() < max {
                data.attributes.push(attribute);
            } else {
                data.dropped_attributes_count += 1;
            }
        }
    }

    fn set_status(&mut self, status: Status) {
        if let Some(data) = &mut self.data
            && status > data.status
        {
            data.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(data) = &mut self.data {
            data.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, mut attributes: Vec<KeyValue>) {
        let limits = self.sink.limits;
        let Some(data) = &mut self.data else {
            return;
        };
        if data.links.links.len() < limits.max_links_per_span as usize {
            let dropped = truncate(&mut attributes, limits.max_attributes_per_link);
            data.links
                .links
                .push(Link::new(span_context, attributes, dropped));
        } else {
            data.links.dropped_count += 1;
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.end_at(Some(timestamp));
    }
}

/// Keeps at most `max` attributes (the span limit of an event or link); returns how many were
/// dropped.
fn truncate(attributes: &mut Vec<KeyValue>, max: u32) -> u32 {
    let max = max as usize;
    let dropped = attributes.len().saturating_sub(max);
    attributes.truncate(max);
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        self.end_at(None);
    }
}
