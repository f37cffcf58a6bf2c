//! [`TracelightLayer`]: the tower layer and its options.

use std::fmt;
use std::sync::Arc;

use opentelemetry::Context as OtelContext;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_sdk::trace::SdkTracer;
use tower_layer::Layer;

use super::service::Tracelight;
use crate::config::Sampler;
use crate::metrics::MetricsHandle;
use crate::metrics::http::ServerMetrics;
use crate::propagation::Propagators;
use crate::trace::SpanSink;

/// What to do with trace context that arrives on a request.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboundContext {
    /// The server span continues the caller's trace (internal services). The default.
    #[default]
    Continue,
    /// The server span starts a new trace, **linked** to the caller's span, and inbound baggage
    /// is dropped. For public endpoints, where callers are not trusted to choose trace ids or
    /// sampling decisions.
    NewRootWithLink,
}

/// Decides which request paths are left alone (no span, no metrics).
pub type ExcludePredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Paths excluded by default: the telemetry and probe endpoints themselves.
pub const DEFAULT_EXCLUDED_PATHS: [&str; 3] = ["/metrics", "/health", "/ready"];

pub(crate) struct Shared {
    pub(crate) propagators: Propagators,
    pub(crate) tracer: SdkTracer,
    pub(crate) sampler: Sampler,
    pub(crate) metrics: Option<ServerMetrics>,
    pub(crate) spans: bool,
    pub(crate) response_traceparent: bool,
    pub(crate) inbound: InboundContext,
    pub(crate) exclude: ExcludePredicate,
    /// Where server spans end: the provider's processors, sampler and shutdown flag.
    pub(crate) sink: Arc<SpanSink>,
}

impl Shared {
    /// Whether the SDK would certainly build a dropped (non-recording) span under `parent`: the
    /// configured sampler's decision does not depend on the trace id (or the ratio is 0). Then
    /// the middleware skips the SDK and makes the ids itself. Not after shutdown or under
    /// suppressed telemetry, where the SDK returns an invalid span instead.
    pub(crate) fn certainly_dropped(&self, parent: &OtelContext) -> bool {
        let root = |s: Sampler| match s {
            Sampler::AlwaysOff | Sampler::ParentBasedAlwaysOff => true,
            Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r) => r <= 0.0,
            Sampler::AlwaysOn | Sampler::ParentBasedAlwaysOn => false,
        };
        let dropped = match self.sampler {
            // The SDK's `ParentBased` follows any active parent span, valid or not.
            Sampler::ParentBasedAlwaysOn
            | Sampler::ParentBasedAlwaysOff
            | Sampler::ParentBasedTraceIdRatio(_)
                if parent.has_active_span() =>
            {
                !parent.span().span_context().is_sampled()
            }
            s => root(s),
        };
        dropped && !parent.is_telemetry_suppressed() && !self.sink.is_shut_down()
    }

    /// Whether the sampler will probably record a span with this parent: decides whether the
    /// attributes are built before the span (so the sampler sees them, as semconv asks) or only
    /// after, once the span is known to record. A wrong guess costs time, never correctness.
    pub(crate) fn likely_recorded(&self, parent: &SpanContext) -> bool {
        let root = |s: Sampler| match s {
            Sampler::AlwaysOn | Sampler::ParentBasedAlwaysOn => true,
            Sampler::AlwaysOff | Sampler::ParentBasedAlwaysOff => false,
            Sampler::TraceIdRatio(r) | Sampler::ParentBasedTraceIdRatio(r) => r >= 0.5,
        };
        match self.sampler {
            Sampler::ParentBasedAlwaysOn
            | Sampler::ParentBasedAlwaysOff
            | Sampler::ParentBasedTraceIdRatio(_)
                if parent.is_valid() =>
            {
                parent.is_sampled()
            }
            s => root(s),
        }
    }
}

/// A tower [`Layer`] that traces and measures every request of the service it wraps.
///
/// For each request it extracts the caller's trace context, opens a server span named
/// `{METHOD} {route}` with OpenTelemetry HTTP attributes, records
/// `http_server_request_duration_seconds` and `http_server_active_requests`, and adds a
/// `traceparent` header for the server span to the response. Obtain it from
/// [`Telemetry::layer`](crate::Telemetry::layer) or, with options, from
/// [`Telemetry::layer_builder`](crate::Telemetry::layer_builder).
#[derive(Clone)]
pub struct TracelightLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for TracelightLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracelightLayer")
            .field("spans", &self.shared.spans)
            .field("metrics", &self.shared.metrics.is_some())
            .field("inbound", &self.shared.inbound)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for TracelightLayer {
    type Service = Tracelight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracelight::new(inner, self.shared.clone())
    }
}

/// Options of a [`TracelightLayer`].
#[must_use]
pub struct LayerBuilder {
    propagators: Propagators,
    tracer: SdkTracer,
    sampler: Sampler,
    metrics: Option<MetricsHandle>,
    spans: bool,
    response_traceparent: bool,
    inbound: InboundContext,
    exclude: ExcludePredicate,
    sink: Arc<SpanSink>,
}

impl fmt::Debug for LayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerBuilder")
            .field("spans", &self.spans)
            .field("metrics", &self.metrics.is_some())
            .field("response_traceparent", &self.response_traceparent)
            .field("inbound", &self.inbound)
            .finish_non_exhaustive()
    }
}

impl LayerBuilder {
    pub(crate) fn new(
        propagators: Propagators,
        metrics: MetricsHandle,
        tracer: SdkTracer,
        sampler: Sampler,
        sink: Arc<SpanSink>,
    ) -> Self {
        Self {
            sink,
            propagators,
            tracer,
            sampler,
            metrics: Some(metrics),
            spans: true,
            response_traceparent: true,
            inbound: InboundContext::Continue,
            exclude: Arc::new(|path| DEFAULT_EXCLUDED_PATHS.contains(&path)),
        }
    }

    /// Open a server span per request (default `true`). With `false` the layer only records
    /// metrics, and no trace context is extracted or returned.
    pub fn spans(mut self, enabled: bool) -> Self {
        self.spans = enabled;
        self
    }

    /// Record RED metrics (default `true`).
    pub fn metrics(mut self, enabled: bool) -> Self {
        if !enabled {
            self.metrics = None;
        }
        self
    }

    /// Add a `traceparent` header for the server span to every response (default `true`), so
    /// callers and browser tools can find the trace.
    pub fn response_traceparent(mut self, enabled: bool) -> Self {
        self.response_traceparent = enabled;
        self
    }

    /// How to treat inbound trace context (default [`InboundContext::Continue`]).
    pub fn inbound_context(mut self, inbound: InboundContext) -> Self {
        self.inbound = inbound;
        self
    }

    /// Which paths get no span and no metrics. Replaces the default, which excludes
    /// [`DEFAULT_EXCLUDED_PATHS`].
    pub fn exclude(mut self, predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.exclude = Arc::new(predicate);
        self
    }

    /// Builds the layer.
    pub fn build(self) -> TracelightLayer {
        TracelightLayer {
            shared: Arc::new(Shared {
                propagators: self.propagators,
                tracer: self.tracer,
                sampler: self.sampler,
                metrics: self.metrics.map(ServerMetrics::new),
                spans: self.spans,
                response_traceparent: self.response_traceparent,
                inbound: self.inbound,
                exclude: self.exclude,
                sink: self.sink,
            }),
        }
    }
}
