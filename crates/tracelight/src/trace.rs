//! The tracer provider: sampler, batch processor and span exporter.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SimpleSpanProcessor, SpanData,
    SpanExporter, SpanLimits, SpanProcessor,
};

use crate::config::{Config, Protocol, Sampler, TracesExporter};
use crate::error::InitError;
use crate::metrics::SelfMetrics;

use self::server_span::SharedProcessor;

mod context;
mod event_names;
pub(crate) mod ids;
mod server_span;

pub use self::context::current_context;
pub(crate) use self::context::{
    ContextSpanEvents, RequestSpanName, name_request_span, request_span_name,
};
pub(crate) use self::server_span::{ServerSpan, SpanSink};

/// Spans buffered between the application and the exporter. When the exporter is down or slow
/// the queue fills and further spans are dropped (and counted): memory stays bounded and request
/// latency is unaffected.
pub(crate) const MAX_QUEUE_SIZE: usize = 2048;
/// Spans per export request.
pub(crate) const MAX_EXPORT_BATCH_SIZE: usize = 512;
/// How long the batch processor waits before exporting a partial batch.
pub(crate) const SCHEDULED_DELAY: Duration = Duration::from_millis(1000);

/// Builds the tracer provider for `cfg`, and the sink the server middleware ends its spans into
/// (the same processors, sampler and instrumentation scope). A provider always exists, even with
/// no exporter, so spans get ids for log correlation and propagation.
pub(crate) fn provider(
    cfg: &Config,
    resource: opentelemetry_sdk::Resource,
    self_metrics: &SelfMetrics,
    shut_down: Arc<AtomicBool>,
) -> Result<(SdkTracerProvider, SpanSink), InitError> {
    let mut processor: Box<dyn SpanProcessor> = match cfg.traces_exporter {
        TracesExporter::None => {
            return Ok((
                SdkTracerProvider::builder()
                    .with_resource(resource)
                    .with_sampler(sampler(cfg.sampler))
                    .build(),
                sink(cfg, Box::new([]), shut_down),
            ));
        }
        TracesExporter::Console => Box::new(SimpleSpanProcessor::new(
            opentelemetry_stdout::SpanExporter::default(),
        )),
        TracesExporter::Otlp => {
            let exporter = CountingExporter::new(otlp_exporter(cfg)?, self_metrics);
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUE_SIZE)
                .with_max_export_batch_size(MAX_EXPORT_BATCH_SIZE)
                .with_scheduled_delay(SCHEDULED_DELAY)
                .build();
            Box::new(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(batch)
                    .build(),
            )
        }
    };
    // What the provider does to its processors when built; done here because the processor is
    // shared with the middleware (behind an `Arc`) from then on.
    processor.set_resource(&resource);
    let processor: Arc<dyn SpanProcessor> = Arc::from(processor);
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(cfg.sampler))
        .with_span_processor(SharedProcessor(Arc::clone(&processor)))
        .build();
    Ok((provider, sink(cfg, Box::new([processor]), shut_down)))
}

fn sink(
    cfg: &Config,
    processors: Box<[Arc<dyn SpanProcessor>]>,
    shut_down: Arc<AtomicBool>,
) -> SpanSink {
    SpanSink {
        processors,
        sampler: sampler(cfg.sampler),
        // The scope of `provider.tracer(TRACER_NAME)`.
        scope: opentelemetry::InstrumentationScope::builder(TRACER_NAME).build(),
        limits: SpanLimits::default(),
        shut_down,
    }
}

/// Name of the tracer (instrumentation scope) of tracelight's spans.
pub(crate) const TRACER_NAME: &str = "tracelight";

fn sampler(s: Sampler) -> opentelemetry_sdk::trace::Sampler {
    use opentelemetry_sdk::trace::Sampler as S;
    match s {
        Sampler::AlwaysOn => S::AlwaysOn,
        Sampler::AlwaysOff => S::AlwaysOff,
        Sampler::TraceIdRatio(r) => S::TraceIdRatioBased(r),
        Sampler::ParentBasedAlwaysOn => S::ParentBased(Box::new(S::AlwaysOn)),
        Sampler::ParentBasedAlwaysOff => S::ParentBased(Box::new(S::AlwaysOff)),
        Sampler::ParentBasedTraceIdRatio(r) => S::ParentBased(Box::new(S::TraceIdRatioBased(r))),
    }
}

fn otlp_exporter(cfg: &Config) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    let err = |source| InitError::Exporter {
        endpoint: cfg.endpoint.clone(),
        source,
    };
    match cfg.protocol {
        Protocol::Grpc => {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(InitError::NoTokioRuntime);
            }
            let mut headers = http::HeaderMap::new();
            for (k, v) in &cfg.headers {
                // Validated in Config::resolve.
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::try_from(k.as_str()),
                    http::HeaderValue::try_from(v.as_str()),
                ) {
                    headers.insert(k, v);
                }
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(cfg.endpoint.clone())
                .with_timeout(cfg.export_timeout)
                .with_metadata(tonic::metadata::MetadataMap::from_headers(headers))
                .build()
                .map_err(err)
        }
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(cfg.endpoint.clone())
            .with_timeout(cfg.export_timeout)
            .with_headers(cfg.headers.iter().cloned().collect::<HashMap<_, _>>())
            .build()
            .map_err(err),
    }
}

/// Wraps an exporter to count exported and failed spans, and to log an outage once when it
/// starts and once when it ends (not once per batch).
pub(crate) struct CountingExporter<E> {
    inner: E,
    exported: metrics::Counter,
    failed: metrics::Counter,
    failing: AtomicBool,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, m: &SelfMetrics) -> Self {
        Self {
            inner,
            exported: m.spans_exported.clone(),
            failed: m.spans_export_failed.clone(),
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for CountingExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingExporter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let n = batch.len() as u64;
        let fut = self.inner.export(batch);
        async move {
            let result = fut.await;
            match &result {
                Ok(()) => {
                    self.exported.increment(n);
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(target: "tracelight", "span export recovered");
                    }
                }
                Err(error) => {
                    self.failed.increment(n);
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            target: "tracelight",
                            %error,
                            spans = n,
                            "span export failing; spans are dropped and counted in \
                             tracelight_spans_export_failed_total until it recovers"
                        );
                    }
                }
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}
