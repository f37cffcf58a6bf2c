//! Process-wide installation, configuration errors, and behaviour with the collector down.
//!
//! This file is its own test binary (its own process), so it may call `tracelight::init`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tracelight::{InitError, Protocol, Sampler};
use tracelight_testkit::{LogCapture, OtlpReceiver, TestServer, closed_loopback_endpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_installs_globally_once_and_a_second_call_is_an_error() {
    let logs = LogCapture::new();
    let receiver = OtlpReceiver::start().await;
    let telemetry = tracelight::builder("payments")
        .endpoint(receiver.http_traces_url())
        .header("authorization", "Bearer s3cret")
        .log_format(tracelight::LogFormat::Json)
        .log_writer(logs.clone())
        .env(HashMap::<String, String>::new())
        .init()
        .expect("first init succeeds");

    // The global subscriber is ours: a span created anywhere is exported, logs carry its ids.
    let span = tracing::info_span!("global_work");
    span.in_scope(|| tracing::info!("inside global span"));
    drop(span);
    // The global metrics recorder is ours too.
    metrics::counter!("payments_charged_total").increment(3);
    assert!(
        telemetry
            .metrics()
            .render()
            .contains("payments_charged_total{service_name=\"payments\"} 3")
    );

    let second = tracelight::init("payments");
    assert!(
        matches!(second, Err(InitError::AlreadyInitialized)),
        "{second:?}"
    );
    assert!(
        second
            .unwrap_err()
            .to_string()
            .contains("already initialised")
    );

    // One start-up line with the effective configuration, header values redacted.
    let lines = logs.json_lines();
    let start = lines
        .iter()
        .find(|l| l["message"] == "telemetry initialised")
        .expect("start-up line");
    let config = start["config"].as_str().unwrap();
    assert!(config.contains("service.name=payments"), "{config}");
    assert!(
        config.contains("authorization=<redacted>") && !config.contains("s3cret"),
        "{config}"
    );

    telemetry.shutdown().await;
    let spans = receiver.wait_for_spans(1, Duration::from_secs(10)).await;
    assert_eq!(spans[0].name(), "global_work");
    let line = lines
        .iter()
        .find(|l| l["message"] == "inside global span")
        .unwrap();
    assert_eq!(line["span_id"], spans[0].span_id_hex());
}

#[test]
fn bad_environment_is_an_error_naming_the_variable() {
    let env: HashMap<String, String> =
        [("OTEL_TRACES_SAMPLER".to_owned(), "half".to_owned())].into();
    let err = tracelight::builder("svc").env(env).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value \"half\" for OTEL_TRACES_SAMPLER: expected always_on, always_off, traceidratio, \
         parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
    );
    let env: HashMap<String, String> = [("RUST_LOG".to_owned(), "info,[".to_owned())].into();
    let err = tracelight::builder("svc").env(env).build().unwrap_err();
    assert!(err.to_string().contains("RUST_LOG"), "{err}");
}

#[test]
fn grpc_without_a_runtime_is_an_error_not_a_panic() {
    let err = tracelight::builder("svc")
        .protocol(Protocol::Grpc)
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap_err();
    assert!(matches!(err, InitError::NoTokioRuntime), "{err}");
}

/// With the collector down the service keeps serving, failures are counted, and shutdown
/// returns within its deadline. (That the outage is logged once is checked in
/// `collector_down.rs`, which installs telemetry globally so the exporter thread's log reaches it.)
async fn collector_down(protocol: Protocol) {
    let endpoint = closed_loopback_endpoint().await;
    let endpoint = match protocol {
        Protocol::Grpc => endpoint,
        _ => format!("{endpoint}/v1/traces"),
    };
    let deadline = Duration::from_secs(2);
    let telemetry = tracelight::builder("orders")
        .protocol(protocol)
        .endpoint(endpoint)
        .sampler(Sampler::AlwaysOn)
        .export_timeout(Duration::from_millis(500))
        .shutdown_timeout(deadline)
        .log_writer(LogCapture::new())
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .layer(telemetry.layer());
    let server = TestServer::spawn(app).await;
    for _ in 0..50 {
        assert_eq!(reqwest::get(server.url("/ok")).await.unwrap().status(), 200);
    }
    let handle = telemetry.metrics().clone();

    // A liveness bound, not a speed claim: shutdown must come back (deadline + slack).
    tokio::time::timeout(deadline * 4, telemetry.shutdown())
        .await
        .expect("shutdown returns with the collector down");
    let metrics = handle.render();

    let failed: f64 = metrics
        .lines()
        .find(|l| l.starts_with("tracelight_spans_export_failed_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(failed > 0.0, "{metrics}");
}

// Current-thread runtime: the test's scoped dispatcher must reach the server's tasks.
#[tokio::test]
async fn collector_down_over_http() {
    collector_down(Protocol::HttpProtobuf).await;
}

#[tokio::test]
async fn collector_down_over_grpc() {
    collector_down(Protocol::Grpc).await;
}

/// Dropping `Telemetry` (no explicit shutdown) flushes within the deadline and returns, even on
/// the runtime's own thread with a gRPC exporter whose I/O that thread would have to drive.
async fn drop_returns(protocol: Protocol) {
    let endpoint = closed_loopback_endpoint().await;
    let endpoint = match protocol {
        Protocol::Grpc => endpoint,
        _ => format!("{endpoint}/v1/traces"),
    };
    let telemetry = tracelight::builder("orders")
        .protocol(protocol)
        .endpoint(endpoint)
        .shutdown_timeout(Duration::from_millis(500))
        .log_writer(LogCapture::new())
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("unflushed").in_scope(|| {});
    });
    // If drop hung, this test could not fail by itself: a watchdog ends the process instead.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            eprintln!("Telemetry::drop did not return within 20 s");
            std::process::exit(101);
        }
    });
    drop(telemetry);
    done_tx.send(()).unwrap();
    watchdog.join().unwrap();
}

#[tokio::test]
async fn drop_returns_with_grpc_on_the_runtime_thread() {
    drop_returns(Protocol::Grpc).await;
}

#[tokio::test]
async fn drop_returns_with_http() {
    drop_returns(Protocol::HttpProtobuf).await;
}
