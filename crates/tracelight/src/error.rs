//! Errors returned by [`init`](crate::init) and [`Builder::init`](crate::Builder::init).

use crate::env::EnvError;

/// Why telemetry could not be initialised. Every variant names the failing setting or step.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An environment variable held a value that could not be used.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// No service name: neither given in code nor in `OTEL_SERVICE_NAME`.
    #[error("no service name: pass one to tracelight::init or set OTEL_SERVICE_NAME")]
    MissingServiceName,
    /// The log filter (`RUST_LOG` or [`Builder::log_filter`](crate::Builder::log_filter)) did not parse.
    #[error("invalid log filter {value:?} (RUST_LOG): {source}")]
    LogFilter {
        /// The directive string.
        value: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The OTLP span exporter could not be built.
    #[error("cannot build the OTLP span exporter for {endpoint}: {source}")]
    Exporter {
        /// The endpoint being configured.
        endpoint: String,
        /// The exporter's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The gRPC exporter needs a Tokio runtime to be running when telemetry is initialised.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs a Tokio runtime: call tracelight::init inside #[tokio::main]"
    )]
    NoTokioRuntime,
    /// `init` was called before in this process.
    #[error("tracelight is already initialised in this process")]
    AlreadyInitialized,
    /// Another global `tracing` subscriber was installed first.
    #[error("another global tracing subscriber is already installed: {0}")]
    GlobalSubscriber(#[from] tracing::subscriber::SetGlobalDefaultError),
    /// Another global `metrics` recorder was installed first.
    #[error("another global metrics recorder is already installed")]
    GlobalRecorder,
}
