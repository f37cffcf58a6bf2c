//! # tracelight
//!
//! One call in `main` gives an axum/tower service **correlated logs, OTLP traces and RED
//! metrics**:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! async fn get_order() -> &'static str {
//!     tracing::info!("loading order"); // this line carries trace_id and span_id
//!     "order"
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let telemetry = tracelight::init("orders")?; // logs + traces + metrics, from env
//!     let app = Router::new()
//!         .route("/orders/{id}", get(get_order))
//!         .merge(telemetry.routes()) // GET /metrics, GET /health
//!         .layer(telemetry.layer()); // spans, RED metrics, W3C propagation
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(tracelight::shutdown_signal())
//!         .await?;
//!     telemetry.shutdown().await; // bounded flush; Drop also flushes
//!     Ok(())
//! }
//! ```
//!
//! ## What you get
//!
//! - **Logs**: JSON lines (or `pretty`/`compact` text) where every
//!   event inside a span carries `trace_id` and `span_id`, the ids exported over OTLP, plus the
//!   service name. Span fields are not re-serialised on every line.
//! - **Traces**: `tracing` spans (including `#[instrument]`) exported over OTLP/gRPC or
//!   OTLP/HTTP with a batch processor; resource `service.name`, `service.version`,
//!   `service.instance.id`, `host.name`, `process.pid`, `telemetry.sdk.*` and
//!   `OTEL_RESOURCE_ATTRIBUTES`.
//! - **Metrics**: `http_server_request_duration_seconds`, `http_server_active_requests` and, for
//!   outgoing calls, `http_client_request_duration_seconds`, rendered by [`Telemetry::routes`] at
//!   `GET /metrics`. Names in [`metrics::names`].
//! - **Propagation**: W3C `traceparent`/`tracestate` (strictly per the spec) and `baggage`; B3
//!   single or multi-header on request. See [`propagation`].
//!
//! ## Configuration
//!
//! Precedence: **code** ([`Builder`]) > **environment** > **defaults**, resolved in one place,
//! [`config`]. An invalid value is an [`InitError`] naming the variable and the value.
//!
//! | Variable | Values | Default |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` | service name (code wins) | – |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `k=v,k2=v2` (percent-encoded) | – |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; `/v1/traces` appended for HTTP | `http://localhost:4318` (HTTP), `http://localhost:4317` (gRPC) |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | full URL, used as is | – |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` | `grpc`, `http/protobuf` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` | `k=v,...` (values redacted in logs) | – |
//! | `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` | milliseconds | `10000` |
//! | `OTEL_TRACES_SAMPLER` / `_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` / ratio | `parentbased_always_on` |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `b3`, `b3multi`, `none` | `tracecontext,baggage` |
//! | `OTEL_TRACES_EXPORTER` | `otlp`, `console`, `none` | `otlp` |
//! | `OTEL_SDK_DISABLED` | `true` turns span export off | `false` |
//! | `RUST_LOG` | log filter (log lines only; spans are recorded at INFO and above) | `info` |
//! | `TRACELIGHT_LOG_FORMAT` | `json`, `pretty`, `compact` | `json`, or `compact` on a terminal |
//!
//! ## Failure behaviour
//!
//! With the collector down or slow, requests are not slowed: spans wait in a bounded queue
//! (2048) and are dropped when it is full; failed exports are counted in
//! `tracelight_spans_export_failed_total` and logged once per outage. [`Telemetry::shutdown`]
//! returns within its deadline (5 s by default) whatever the collector does.
//!
//! ## Features
//!
//! | Feature | Default | |
//! |---|---|---|
//! | `axum` | yes | route templates from `MatchedPath`, [`Telemetry::routes`] |
//! | `reqwest` | yes | [`client::ClientMiddleware`], [`Telemetry::http_client`] |

#[cfg(feature = "reqwest")]
pub mod client;
pub mod config;
pub mod env;
mod error;
mod init;
mod logs;
pub mod metrics;
pub mod middleware;
pub mod propagation;
mod resource;
mod shutdown;
mod telemetry;
mod trace;

pub use config::{Config, LogFormat, Protocol, Sampler, TracesExporter};
pub use error::InitError;
pub use init::{Builder, builder, init};
pub use middleware::{InboundContext, TracelightLayer};
pub use propagation::{PropagatorKind, Propagators};
pub use shutdown::shutdown_signal;
pub use telemetry::Telemetry;
pub use trace::current_context;
