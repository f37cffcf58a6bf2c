//! Shared by the integration tests: a small instrumented app and telemetry built for a test.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use tracelight::{LogFormat, Protocol, Sampler, Telemetry, TracesExporter};
use tracelight_testkit::{LogCapture, OtlpReceiver};
use tracing::Instrument;

/// Telemetry exporting to `receiver` over `protocol`, logging JSON into `logs`, reading an empty
/// environment (so the machine's OTEL_* variables cannot leak in).
pub(crate) fn telemetry(
    receiver: &OtlpReceiver,
    protocol: Protocol,
    sampler: Sampler,
    logs: &LogCapture,
) -> Telemetry {
    let endpoint = match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_traces_url(),
    };
    tracelight::builder("orders")
        .service_version("1.2.3")
        .resource_attribute("deployment.environment", "test")
        .protocol(protocol)
        .endpoint(endpoint)
        .sampler(sampler)
        .log_format(LogFormat::Json)
        .log_writer(logs.clone())
        .shutdown_timeout(Duration::from_secs(5))
        .env(HashMap::<String, String>::new())
        .build()
        .expect("telemetry builds")
}

/// Telemetry that exports nothing, for metric and propagation tests.
pub(crate) fn telemetry_without_export(logs: &LogCapture) -> Telemetry {
    tracelight::builder("orders")
        .traces_exporter(TracesExporter::None)
        .log_format(LogFormat::Json)
        .log_writer(logs.clone())
        .env(HashMap::<String, String>::new())
        .build()
        .expect("telemetry builds")
}

async fn get_order(Path(id): Path<u64>) -> String {
    load_order(id).await
}

#[tracing::instrument]
async fn load_order(id: u64) -> String {
    tracing::info!(order_id = id, "loading order");
    let background = tokio::spawn(
        async move {
            tracing::info!("indexing in the background");
        }
        .instrument(tracing::info_span!("background_index")),
    );
    let _ = background.await;
    format!("order {id}")
}

async fn boom() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn panics() -> &'static str {
    panic!("handler exploded")
}

/// `/orders/{id}` (with an instrumented child span and a spawned, instrumented task), `/boom`
/// (500), `/panic`, `/metrics` and `/health`, all behind the layer.
pub(crate) fn app(telemetry: &Telemetry) -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/boom", get(boom))
        .route("/panic", get(panics))
        .merge(telemetry.routes())
        .layer(telemetry.layer())
}

/// A 32-hex trace id and 16-hex span id in lowercase.
pub(crate) fn is_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s != "0".repeat(32)
}

pub(crate) fn is_span_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s != "0".repeat(16)
}
