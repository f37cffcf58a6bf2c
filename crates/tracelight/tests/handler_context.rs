//! The server span is not a `tracing` span: what a handler does *directly* (outside any span of
//! its own) must still be attributed to it. Log lines carry its ids and name, events become its
//! span events, `tracelight::current_context()` returns it, spans created in the handler (also
//! spawned ones) are its children, and an abandoned request still ends and exports it.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/app.rs"]
mod app;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use http::Request;
use opentelemetry::trace::TraceContextExt as _;
use tower::ServiceExt as _;
use tracelight::{Protocol, Sampler, Telemetry};
use tracelight_testkit::proto::tonic::common::v1::any_value;
use tracelight_testkit::{LogCapture, OtlpReceiver, RecordedSpan, find_span, line_with_message};
use tracing::Instrument as _;

/// `GET /direct/{id}`: logs in the handler itself, spawns an instrumented task whose span is
/// created in the handler, answers with the ids `current_context()` gives it.
async fn direct(Path(id): Path<u32>) -> String {
    tracing::info!(id, "handling directly");
    let task = tokio::spawn(
        async { tracing::info!("in the spawned task") }.instrument(tracing::info_span!("spawned")),
    );
    let _ = task.await;
    let cx = tracelight::current_context();
    let span = cx.span();
    let sc = span.span_context();
    format!("{}-{}", sc.trace_id(), sc.span_id())
}

async fn fails() -> &'static str {
    tracing::error!("could not reserve stock");
    "partial"
}

async fn hangs() -> &'static str {
    std::future::pending().await
}

fn app(telemetry: &Telemetry) -> Router {
    Router::new()
        .route("/direct/{id}", get(direct))
        .route("/fails", get(fails))
        .route("/hangs", get(hangs))
        .layer(telemetry.layer())
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "127.0.0.1:3000")
        .body(Body::empty())
        .unwrap()
}

fn event_attr(span: &RecordedSpan, event: &str, key: &str) -> Option<any_value::Value> {
    let event = span.span.events.iter().find(|e| e.name == event)?;
    event
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone())
}

fn str_value(s: &str) -> Option<any_value::Value> {
    Some(any_value::Value::StringValue(s.to_owned()))
}

#[tokio::test]
async fn what_a_handler_does_directly_belongs_to_the_server_span() {
    let receiver = OtlpReceiver::start().await;
    let logs = LogCapture::new();
    let telemetry = app::telemetry(&receiver, Protocol::HttpProtobuf, Sampler::AlwaysOn, &logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());

    let response = app(&telemetry).oneshot(get_req("/direct/7")).await.unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let status = app(&telemetry)
        .oneshot(get_req("/fails"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    telemetry.shutdown().await;

    let spans = receiver.wait_for_spans(3, Duration::from_secs(10)).await;
    let srv = find_span(&spans, "GET /direct/{id}");
    let (trace_id, span_id) = (srv.trace_id_hex(), srv.span_id_hex());
    assert_eq!(traceparent, format!("00-{trace_id}-{span_id}-01"));
    // `current_context()` in the handler is the server span.
    assert_eq!(body, format!("{trace_id}-{span_id}"));

    // A span created in the handler (and run on another task) is a child of the server span.
    let spawned = find_span(&spans, "spawned");
    assert_eq!(spawned.trace_id_hex(), trace_id);
    assert_eq!(spawned.parent_span_id_hex(), Some(span_id.clone()));

    // The handler's own log line is an event of the server span, like tracing-opentelemetry's.
    assert_eq!(
        event_attr(srv, "handling directly", "id"),
        Some(any_value::Value::IntValue(7))
    );
    assert_eq!(
        event_attr(srv, "handling directly", "level"),
        str_value("INFO")
    );
    assert_eq!(
        event_attr(srv, "handling directly", "target"),
        str_value("handler_context")
    );
    // ... and only of the server span: the spawned task's line belongs to its own span.
    assert!(
        srv.span
            .events
            .iter()
            .all(|e| e.name != "in the spawned task")
    );
    assert!(
        spawned
            .span
            .events
            .iter()
            .any(|e| e.name == "in the spawned task")
    );

    // An ERROR event in the handler marks the server span as failed.
    let failed = find_span(&spans, "GET /fails");
    assert_eq!(failed.span.status.as_ref().map(|s| s.code), Some(2));

    // Log lines: the server span's ids and name; the spawned task's line its own span's.
    let lines = logs.json_lines();
    let line = |msg: &str| line_with_message(&lines, msg);
    let direct = line("handling directly");
    assert_eq!(direct["trace_id"], trace_id.as_str());
    assert_eq!(direct["span_id"], span_id.as_str());
    assert_eq!(direct["span"], "GET /direct/{id}");
    let in_task = line("in the spawned task");
    assert_eq!(in_task["trace_id"], trace_id.as_str());
    assert_eq!(in_task["span_id"], spawned.span_id_hex().as_str());
    assert_eq!(in_task["span"], "spawned");
    let error = line("could not reserve stock");
    assert_eq!(error["trace_id"], failed.trace_id_hex().as_str());
    assert_eq!(error["span"], "GET /fails");
}

#[tokio::test]
async fn unsampled_handler_lines_carry_the_returned_ids() {
    let receiver = OtlpReceiver::start().await;
    let logs = LogCapture::new();
    let telemetry = app::telemetry(&receiver, Protocol::HttpProtobuf, Sampler::AlwaysOff, &logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());

    let response = app(&telemetry).oneshot(get_req("/direct/8")).await.unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(traceparent.ends_with("-00"), "not sampled: {traceparent}");
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    telemetry.shutdown().await;

    let lines = logs.json_lines();
    let direct = lines
        .iter()
        .find(|l| l["message"] == "handling directly")
        .unwrap();
    assert_eq!(direct["trace_id"], traceparent[3..35]);
    assert_eq!(direct["span_id"], traceparent[36..52]);
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap(),
        traceparent[3..52]
    );
    assert!(receiver.spans().is_empty(), "nothing exported");
}

#[tokio::test]
async fn an_abandoned_request_still_ends_its_span() {
    let receiver = OtlpReceiver::start().await;
    let logs = LogCapture::new();
    let telemetry = app::telemetry(&receiver, Protocol::HttpProtobuf, Sampler::AlwaysOn, &logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());

    // The client goes away: the response future is dropped before the handler answers.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        app(&telemetry).oneshot(get_req("/hangs")),
    )
    .await;
    assert!(abandoned.is_err());
    let metrics = telemetry.metrics().render();
    telemetry.shutdown().await;

    let spans = receiver.wait_for_spans(1, Duration::from_secs(10)).await;
    let srv = find_span(&spans, "GET /hangs");
    assert!(srv.attr("http.response.status_code").is_none());
    assert!(
        metrics.contains(r#"http_server_active_requests{service_name="orders",http_request_method="GET",url_scheme="http"} 0"#),
        "{metrics}"
    );
}

/// A tower service that notes the span id of `current_context()` when it is *called* (not
/// polled), then calls `inner`.
#[derive(Clone)]
struct NoteContextOnCall<S> {
    inner: S,
    seen: std::sync::Arc<parking_lot::Mutex<Option<String>>>,
}

impl<S, B> tower::Service<Request<B>> for NoteContextOnCall<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span_id = tracelight::current_context()
            .span()
            .span_context()
            .span_id()
            .to_string();
        *self.seen.lock() = Some(span_id);
        self.inner.call(req)
    }
}

fn traceparent_span_id(response: &http::Response<Body>) -> String {
    response.headers()["traceparent"].to_str().unwrap()[36..52].to_owned()
}

/// The server span is current when the services inside the layer are called, whether axum
/// calls them from its route's future (`Router::layer`, the layer then skips the scope around
/// its inner `call`) or the layer wraps a plain tower service (scope around `call`).
#[tokio::test]
async fn inner_services_are_called_inside_the_server_span() {
    let logs = LogCapture::new();
    let telemetry = app::telemetry_without_export(&logs);
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(None));
    let note = {
        let seen = seen.clone();
        tower::layer::layer_fn(move |inner| NoteContextOnCall {
            inner,
            seen: seen.clone(),
        })
    };

    // axum: a layer added before tracelight's, around the handler.
    let router = Router::new()
        .route("/direct/{id}", get(direct))
        .layer(note)
        .layer(telemetry.layer());
    let response = router.oneshot(get_req("/direct/9")).await.unwrap();
    let expected = traceparent_span_id(&response);
    assert_eq!(seen.lock().take(), Some(expected));

    // A plain tower service under the layer.
    let handler = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    });
    let noted = NoteContextOnCall {
        inner: handler,
        seen: seen.clone(),
    };
    let service = tower::Layer::layer(&telemetry.layer(), noted);
    let response = service.oneshot(get_req("/plain")).await.unwrap();
    let expected = traceparent_span_id(&response);
    assert_eq!(seen.lock().take(), Some(expected));
}
