//! [`Builder`]: assembles logs, traces and metrics; [`init`] installs them process-wide.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layer as _, SubscriberExt};

use crate::config::{CodeSettings, Config, LogFormat, Protocol, Sampler, TracesExporter};
use crate::env::{EnvLookup, SystemEnv};
use crate::error::InitError;
use crate::logs::LogLayer;
use crate::metrics::{MetricsHandle, SelfMetrics};
use crate::propagation::{PropagatorKind, Propagators};
use crate::telemetry::Telemetry;
use crate::trace::ContextSpanEvents;

/// Set once the first [`Builder::init`] succeeded.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Crates whose own logs would otherwise be turned into spans while spans are being exported
/// (an export feedback loop) or flood debug output. Capped at `warn` unless `RUST_LOG` names them.
const NOISY_TARGETS: [&str; 9] = [
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

/// Sets up logs, traces and metrics for a service, reading the environment: the one call in
/// `main`. Equivalent to `tracelight::builder(service_name).init()`.
///
/// # Errors
///
/// An [`InitError`] naming the setting that is invalid, or [`InitError::AlreadyInitialized`] when
/// called a second time.
pub fn init(service_name: &str) -> Result<Telemetry, InitError> {
    builder(service_name).init()
}

/// A [`Builder`] for `service_name`. An empty name falls back to `OTEL_SERVICE_NAME`.
pub fn builder(service_name: impl Into<String>) -> Builder {
    Builder {
        code: CodeSettings {
            service_name: Some(service_name.into()),
            ..CodeSettings::default()
        },
        env: Arc::new(SystemEnv),
        log_writer: None,
    }
}

/// Configures telemetry in code. Settings made here win over environment variables, which win
/// over defaults (see [`config`](crate::config)).
#[must_use]
pub struct Builder {
    code: CodeSettings,
    env: Arc<dyn EnvLookup>,
    log_writer: Option<BoxMakeWriter>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// `service.version`, typically `env!("CARGO_PKG_VERSION")`.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.code.service_version = Some(version.into());
        self
    }

    /// An extra resource attribute (e.g. `deployment.environment`).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.code
            .resource_attributes
            .push((key.into(), value.into()));
        self
    }

    /// Log line format (else `TRACELIGHT_LOG_FORMAT`, else JSON unless stdout is a terminal).
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.code.log_format = Some(format);
        self
    }

    /// Log filter directives in `RUST_LOG` syntax (else `RUST_LOG`, else `info`).
    pub fn log_filter(mut self, directives: impl Into<String>) -> Self {
        self.code.log_filter = Some(directives.into());
        self
    }

    /// Where log lines go (default: stdout).
    pub fn log_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.log_writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Span sampler (else `OTEL_TRACES_SAMPLER`, else parent-based always-on).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.code.sampler = Some(sampler);
        self
    }

    /// Span exporter (else `OTEL_TRACES_EXPORTER`, else OTLP).
    pub fn traces_exporter(mut self, exporter: TracesExporter) -> Self {
        self.code.traces_exporter = Some(exporter);
        self
    }

    /// OTLP transport (else `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`, else HTTP/protobuf).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.code.protocol = Some(protocol);
        self
    }

    /// Full OTLP traces endpoint, used as is (for HTTP include `/v1/traces`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.code.endpoint = Some(endpoint.into());
        self
    }

    /// A header sent with every export (e.g. an API key), added to `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.code.headers.push((name.into(), value.into()));
        self
    }

    /// Timeout of one export (else `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`, else 10 s).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.code.export_timeout = Some(timeout);
        self
    }

    /// Propagation formats, in extraction order (else `OTEL_PROPAGATORS`, else W3C tracecontext
    /// and baggage).
    pub fn propagators(mut self, kinds: &[PropagatorKind]) -> Self {
        self.code.propagators = Some(kinds.to_vec());
        self
    }

    /// Bound on [`Telemetry::shutdown`] and on drop (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.code.shutdown_timeout = Some(timeout);
        self
    }

    /// Reads environment variables from `env` instead of the process environment.
    pub fn env(mut self, env: impl EnvLookup + 'static) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// Resolves the configuration without building anything.
    ///
    /// # Errors
    ///
    /// An [`InitError`] naming the invalid setting.
    pub fn config(&self) -> Result<Config, InitError> {
        Config::resolve(self.code.clone(), &*self.env)
    }

    /// Builds everything **without** installing it globally: the returned [`Telemetry`] holds a
    /// [`tracing::Dispatch`] to use with [`tracing::dispatcher::with_default`]. For tests and for
    /// embedding; services call [`Builder::init`].
    ///
    /// # Errors
    ///
    /// An [`InitError`] naming the invalid setting.
    pub fn build(self) -> Result<Telemetry, InitError> {
        let cfg = Config::resolve(self.code, &*self.env)?;
        let filter = log_filter(&cfg.log_filter)?;
        let metrics = MetricsHandle::new(&cfg.service_name);
        let self_metrics = SelfMetrics::new(&metrics);
        let shut_down = Arc::new(AtomicBool::new(false));
        let (provider, sink) =
            crate::trace::provider(&cfg, crate::resource::build(&cfg), &self_metrics, shut_down)?;
        let tracer = provider.tracer(crate::trace::TRACER_NAME);
        let otel_layer = tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            // Entering a span does not also attach its OTel context to the thread: that costs
            // on every poll of every request future, and tracing's own span stack already
            // gives children their parent. `Span::current().context()` works; code that reads
            // `opentelemetry::Context::current()` directly does not see tracing spans (use
            // `tracelight::current_context()`). A span created outside any tracing span takes
            // `opentelemetry::Context::current()` as its parent: the middleware's server span.
            .with_context_activation(false);
        let default_writer = self.log_writer.is_none();
        let writer = self
            .log_writer
            .unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout));
        let ansi = default_writer
            && cfg.log_format != LogFormat::Json
            && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let log_layer = LogLayer::new(writer, cfg.log_format, &cfg.service_name, ansi);
        // The log filter (RUST_LOG) applies to log lines only: `RUST_LOG=warn` must not switch
        // tracing off. Spans are recorded at INFO and above, minus the noisy crates.
        let span_filter = Targets::new()
            .with_default(Level::INFO)
            .with_targets(NOISY_TARGETS.map(|t| (t, Level::WARN)));
        // The server middleware's spans are not `tracing` spans: events in a handler, outside
        // any `tracing` span, reach the server span through the current OTel context.
        let context_events = ContextSpanEvents.with_filter(span_filter.clone());
        let subscriber = tracing_subscriber::registry()
            .with(otel_layer.with_filter(span_filter))
            .with(context_events)
            .with(log_layer.with_filter(filter));
        let propagators = Propagators::new(&cfg.propagators);
        Ok(Telemetry::new(
            cfg,
            provider,
            tracer,
            metrics,
            propagators,
            tracing::Dispatch::new(subscriber),
            Arc::new(sink),
        ))
    }

    /// Builds everything and installs it process-wide: the global `tracing` subscriber (with
    /// `log` records bridged), the global `metrics` recorder and the global OpenTelemetry tracer
    /// provider. Logs the effective configuration once.
    ///
    /// # Errors
    ///
    /// An [`InitError`] naming the invalid setting; [`InitError::AlreadyInitialized`] on a
    /// second call; [`InitError::GlobalSubscriber`] / [`InitError::GlobalRecorder`] when another
    /// library installed its own first.
    pub fn init(self) -> Result<Telemetry, InitError> {
        if INITIALIZED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(InitError::AlreadyInitialized);
        }
        let result = self.build().and_then(|telemetry| {
            tracing::dispatcher::set_global_default(telemetry.dispatch().clone())?;
            metrics::set_global_recorder(telemetry.metrics().global_recorder())
                .map_err(|_| InitError::GlobalRecorder)?;
            // `log` records become tracing events; fails only if a logger is already set.
            let _ = tracing_log::LogTracer::init();
            opentelemetry::global::set_tracer_provider(telemetry.provider().clone());
            tracing::info!(target: "tracelight", config = %telemetry.config(), "telemetry initialised");
            Ok(telemetry)
        });
        if result.is_err() {
            INITIALIZED.store(false, Ordering::Release);
        }
        result
    }
}

/// Parses the directives, capping [`NOISY_TARGETS`] at `warn` unless the directives name them.
fn log_filter(directives: &str) -> Result<EnvFilter, InitError> {
    let err = |source| InitError::LogFilter {
        value: directives.to_owned(),
        source,
    };
    let mut filter = EnvFilter::builder().parse(directives).map_err(err)?;
    for target in NOISY_TARGETS {
        let named = directives
            .split(',')
            .any(|d| d.trim().split(['=', '[']).next() == Some(target));
        if !named {
            filter = filter.add_directive(format!("{target}=warn").parse().map_err(err)?);
        }
    }
    Ok(filter)
}
