//! Spans exported over OTLP (gRPC and HTTP) to a loopback receiver, and the log lines that
//! refer to them.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/app.rs"]
mod app;

use std::time::Duration;

use tracelight::{Protocol, Sampler};
use tracelight_testkit::proto::tonic::trace::v1::span::SpanKind;
use tracelight_testkit::{LogCapture, OtlpReceiver, TestServer, find_span, line_with_message};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

async fn exports_the_request_tree(protocol: Protocol) {
    let receiver = OtlpReceiver::start().await;
    let logs = LogCapture::new();
    let telemetry = app::telemetry(&receiver, protocol, Sampler::ParentBasedAlwaysOn, &logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let server = TestServer::spawn(app::app(&telemetry)).await;

    tracing::info!("outside any span");
    let response = reqwest::Client::new()
        .get(server.url("/orders/42"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("user-agent", "export-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let returned = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.text().await.unwrap(), "order 42");

    telemetry.shutdown().await;
    let spans = receiver.wait_for_spans(3, Duration::from_secs(10)).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");

    // The server span continues the caller's trace and carries the semconv attributes.
    let srv = find_span(&spans, "GET /orders/{id}");
    assert_eq!(srv.kind(), SpanKind::Server);
    assert_eq!(srv.trace_id_hex(), TRACE_ID);
    assert_eq!(srv.parent_span_id_hex().as_deref(), Some(PARENT_ID));
    let port = i64::from(server.addr().port());
    for (key, value) in [
        ("http.request.method", "GET"),
        ("http.route", "/orders/{id}"),
        ("url.path", "/orders/42"),
        ("url.scheme", "http"),
        ("network.protocol.version", "1.1"),
        ("user_agent.original", "export-test/1.0"),
        ("client.address", "127.0.0.1"),
        ("server.address", "127.0.0.1"),
    ] {
        assert_eq!(
            srv.attr(key)
                .and_then(|v| v.as_str().map(str::to_owned))
                .as_deref(),
            Some(value),
            "{key}"
        );
    }
    assert_eq!(srv.attr("server.port").and_then(|v| v.as_int()), Some(port));
    assert_eq!(
        srv.attr("http.response.status_code")
            .and_then(|v| v.as_int()),
        Some(200)
    );
    assert_eq!(returned, format!("00-{TRACE_ID}-{}-01", srv.span_id_hex()));

    // #[instrument] child and the spawned task's span hang below it.
    let child = find_span(&spans, "load_order");
    assert_eq!(child.kind(), SpanKind::Internal);
    assert_eq!(child.trace_id_hex(), TRACE_ID);
    assert_eq!(child.parent_span_id_hex(), Some(srv.span_id_hex()));
    let bg = find_span(&spans, "background_index");
    assert_eq!(bg.trace_id_hex(), TRACE_ID);
    assert_eq!(bg.parent_span_id_hex(), Some(child.span_id_hex()));

    // Resource.
    for key in [
        "service.name",
        "service.version",
        "service.instance.id",
        "host.name",
        "process.pid",
        "telemetry.sdk.name",
        "telemetry.sdk.language",
        "telemetry.sdk.version",
        "deployment.environment",
    ] {
        assert!(srv.resource_attr(key).is_some(), "resource lacks {key}");
    }
    assert_eq!(
        srv.resource_attr("service.name").unwrap().as_str(),
        Some("orders")
    );
    assert_eq!(
        srv.resource_attr("service.version").unwrap().as_str(),
        Some("1.2.3")
    );

    // Logs: the ids of the span each line was emitted in, the service on every line, no ids
    // outside spans.
    let lines = logs.json_lines();
    let line = |msg: &str| line_with_message(&lines, msg);
    let loading = line("loading order");
    assert_eq!(loading["trace_id"], TRACE_ID);
    assert_eq!(loading["span_id"], child.span_id_hex());
    assert_eq!(loading["order_id"], 42);
    let indexing = line("indexing in the background");
    assert_eq!(indexing["trace_id"], TRACE_ID);
    assert_eq!(indexing["span_id"], bg.span_id_hex());
    let outside = line("outside any span");
    assert!(
        outside.get("trace_id").is_none() && outside.get("span_id").is_none(),
        "{outside}"
    );
    assert!(lines.iter().all(|l| l["service"] == "orders"), "{lines:#?}");
}

#[tokio::test]
async fn exports_the_request_tree_over_grpc() {
    exports_the_request_tree(Protocol::Grpc).await;
}

#[tokio::test]
async fn exports_the_request_tree_over_http_protobuf() {
    exports_the_request_tree(Protocol::HttpProtobuf).await;
}

#[tokio::test]
async fn unsampled_spans_still_give_logs_their_ids() {
    let receiver = OtlpReceiver::start().await;
    let logs = LogCapture::new();
    let telemetry = app::telemetry(&receiver, Protocol::HttpProtobuf, Sampler::AlwaysOff, &logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let server = TestServer::spawn(app::app(&telemetry)).await;

    let response = reqwest::get(server.url("/orders/7")).await.unwrap();
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(traceparent.ends_with("-00"), "not sampled: {traceparent}");
    telemetry.shutdown().await;

    let lines = logs.json_lines();
    let loading = lines
        .iter()
        .find(|l| l["message"] == "loading order")
        .unwrap();
    let trace_id = loading["trace_id"].as_str().unwrap();
    assert!(app::is_trace_id(trace_id), "{loading}");
    assert!(
        app::is_span_id(loading["span_id"].as_str().unwrap()),
        "{loading}"
    );
    assert_eq!(&traceparent[3..35], trace_id);
    assert!(
        receiver.spans().is_empty(),
        "nothing is exported when not sampled"
    );
}

#[tokio::test]
async fn a_handler_panic_is_a_500_with_an_error_span() {
    let receiver = OtlpReceiver::start().await;
    let logs = LogCapture::new();
    let telemetry = app::telemetry(&receiver, Protocol::HttpProtobuf, Sampler::AlwaysOn, &logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let server = TestServer::spawn(app::app(&telemetry)).await;

    let response = reqwest::get(server.url("/panic")).await.unwrap();
    assert_eq!(response.status(), 500);
    // The service keeps serving.
    assert_eq!(
        reqwest::get(server.url("/orders/1"))
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = telemetry.metrics().render();
    telemetry.shutdown().await;

    let spans = receiver.wait_for_spans(1, Duration::from_secs(10)).await;
    let srv = find_span(&spans, "GET /panic");
    let status = srv.span.status.as_ref().expect("status set");
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert!(status.message.contains("handler exploded"), "{status:?}");
    assert_eq!(
        srv.attr("http.response.status_code")
            .and_then(|v| v.as_int()),
        Some(500)
    );
    assert!(
        metrics.contains(r#"http_route="/panic",http_response_status_code="500",url_scheme="http",error_type="500""#),
        "{metrics}"
    );
    let lines = logs.json_lines();
    let panic_line = lines
        .iter()
        .find(|l| l["message"] == "request handler panicked")
        .unwrap();
    assert_eq!(panic_line["level"], "ERROR");
    assert_eq!(panic_line["trace_id"], srv.trace_id_hex());
}

#[tokio::test]
async fn five_hundreds_set_error_status() {
    let receiver = OtlpReceiver::start().await;
    let logs = LogCapture::new();
    let telemetry = app::telemetry(&receiver, Protocol::Grpc, Sampler::AlwaysOn, &logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let server = TestServer::spawn(app::app(&telemetry)).await;
    assert_eq!(
        reqwest::get(server.url("/boom")).await.unwrap().status(),
        500
    );
    assert_eq!(
        reqwest::get(server.url("/health")).await.unwrap().status(),
        200
    );
    let status = reqwest::get(server.url("/no/such/page"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    telemetry.shutdown().await;

    let spans = receiver.wait_for_spans(2, Duration::from_secs(10)).await;
    assert_eq!(spans.len(), 2, "/health is not traced: {spans:#?}");
    // No route matched: the span is named after the method alone and has no http.route.
    let unmatched = find_span(&spans, "GET");
    assert!(unmatched.attr("http.route").is_none());
    assert_eq!(
        unmatched.attr("url.path").unwrap().as_str(),
        Some("/no/such/page")
    );
    assert_eq!(
        unmatched.span.status.as_ref().map_or(0, |s| s.code),
        0,
        "4xx is no server error"
    );
    let srv = find_span(&spans, "GET /boom");
    assert_eq!(srv.span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(
        srv.attr("error.type")
            .and_then(|v| v.as_str().map(str::to_owned))
            .as_deref(),
        Some("500")
    );
}
