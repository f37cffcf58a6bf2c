//! End to end over real loopback sockets: two axum services instrumented with `tracelight`
//! ("frontend" calls "backend" through `Telemetry::http_client`) export their spans to an
//! in-process collector over OTLP/gRPC or OTLP/HTTP, and the trace is read back through the
//! Jaeger v1 API (`/api/traces/{id}`, `/api/services`, `/api/dependencies`) and api_v3
//! (`/api/v3/traces/{id}`) with the right tree.
//!
//! Both services live in one test process, each with its own `tracing` dispatcher: every request
//! is served under its service's dispatcher (see [`serve`]), as if they were two processes.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

#[path = "support/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::routing::get;
use harness::TestCollector;
use serde_json::Value;
use tracelight::{LogFormat, Protocol, Sampler, Telemetry};
use tracelight_testkit::{LogCapture, TestServer};
use tracing::instrument::WithSubscriber as _;

const FRONTEND: &str = "e2e-frontend";
const BACKEND: &str = "e2e-backend";
const FRONTEND_OP: &str = "GET /checkout/{id}";
const CLIENT_OP: &str = "GET";
const BACKEND_OP: &str = "GET /stock/{id}";
/// The caller's context sent to the frontend in the test that continues a trace.
const INBOUND_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const INBOUND_PARENT: &str = "b7ad6b7169203331";
/// Upper bound for spans to become queryable after the exporters flushed.
const QUERY_DEADLINE: Duration = Duration::from_secs(10);

/// Telemetry for `service`, exporting to `collector` over `protocol`, logging JSON into `logs`
/// and reading an empty environment (the machine's `OTEL_*` variables cannot leak in).
fn telemetry(
    service: &str,
    protocol: Protocol,
    collector: &TestCollector,
    logs: &LogCapture,
) -> Telemetry {
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_url(),
        _ => collector.otlp_http_url(),
    };
    tracelight::builder(service)
        .protocol(protocol)
        .endpoint(endpoint)
        .sampler(Sampler::ParentBasedAlwaysOn)
        .log_format(LogFormat::Json)
        .log_writer(logs.clone())
        .shutdown_timeout(Duration::from_secs(5))
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap()
}

/// Serves `router` behind `telemetry`'s layer, with every request handled under the service's
/// own `tracing` dispatcher.
async fn serve(router: Router, telemetry: &Telemetry) -> TestServer {
    let dispatch = telemetry.dispatch().clone();
    let router = router
        .layer(telemetry.layer())
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| next.run(req).with_subscriber(dispatch.clone()),
        ));
    TestServer::spawn(router).await
}

/// The backend: `GET /stock/{id}`.
fn backend() -> Router {
    Router::new().route(
        "/stock/{id}",
        get(|Path(id): Path<u32>| async move {
            tracing::info!(item = id, "stock lookup");
            format!("item {id}: 7 in stock")
        }),
    )
}

/// The frontend: `GET /checkout/{id}` calls the backend with the instrumented client.
fn frontend(telemetry: &Telemetry, backend_url: String) -> Router {
    let client = telemetry.http_client();
    Router::new().route(
        "/checkout/{id}",
        get(move |Path(id): Path<u32>| async move {
            let response = client
                .get(format!("{backend_url}/stock/{id}"))
                .send()
                .await
                .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?
                .error_for_status()
                .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
            let stock = response
                .text()
                .await
                .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
            Ok::<_, (StatusCode, String)>(format!("checkout {id}: {stock}"))
        }),
    )
}

/// What the frontend's caller saw.
struct Exchange {
    trace_id: String,
    /// The frontend server span, from the `traceparent` response header.
    frontend_span_id: String,
}

/// Runs both services exporting over `protocol`, makes one request to the frontend (with
/// `inbound` as its `traceparent`, if any), then stops the services and flushes their telemetry.
async fn exchange(
    collector: &TestCollector,
    protocol: Protocol,
    inbound: Option<&str>,
) -> Exchange {
    let logs = LogCapture::new();
    let backend_telemetry = telemetry(BACKEND, protocol, collector, &logs);
    let frontend_telemetry = telemetry(FRONTEND, protocol, collector, &logs);
    let backend_server = serve(backend(), &backend_telemetry).await;
    let frontend_server = serve(
        frontend(
            &frontend_telemetry,
            format!("http://{}", backend_server.addr()),
        ),
        &frontend_telemetry,
    )
    .await;

    let mut request = reqwest::Client::new().get(frontend_server.url("/checkout/42"));
    if let Some(traceparent) = inbound {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.text().await.unwrap(),
        "checkout 42: item 42: 7 in stock"
    );

    // Every span has ended once the servers have stopped; shutdown flushes the exporters.
    frontend_server.shutdown().await;
    backend_server.shutdown().await;
    frontend_telemetry.shutdown().await;
    backend_telemetry.shutdown().await;

    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    Exchange {
        trace_id: parts[1].to_owned(),
        frontend_span_id: parts[2].to_owned(),
    }
}

/// Polls `/api/traces/{id}` until the trace has `spans` spans (bounded by [`QUERY_DEADLINE`]).
async fn wait_for_trace(collector: &TestCollector, trace_id: &str, spans: usize) -> Value {
    let path = format!("/api/traces/{trace_id}");
    let deadline = tokio::time::Instant::now() + QUERY_DEADLINE;
    loop {
        let (status, body) = collector.query(&path).await;
        let found = body["data"][0]["spans"].as_array().map_or(0, Vec::len);
        if status == 200 && found >= spans {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trace {trace_id} did not reach {spans} spans within {QUERY_DEADLINE:?}: \
             {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of tag `key` in a v1 span or process.
fn tag<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// The v1 span of `service` with tag `span.kind` = `kind`.
fn v1_span<'a>(trace: &'a Value, service: &str, kind: &str) -> &'a Value {
    let processes = &trace["processes"];
    let matching: Vec<&Value> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let process = &processes[s["processID"].as_str().unwrap()];
            process["serviceName"] == service
                && tag(s, "span.kind").and_then(Value::as_str) == Some(kind)
        })
        .collect();
    assert_eq!(matching.len(), 1, "one {kind} span of {service} in {trace}");
    matching[0]
}

/// Asserts `span` has exactly one reference: CHILD_OF `parent` in `trace_id`.
fn assert_child_of(span: &Value, trace_id: &str, parent: &str) {
    assert_eq!(
        span["references"],
        serde_json::json!([{"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent}]),
        "{span}"
    );
}

/// Asserts the Jaeger v1 trace: frontend server span → frontend client span → backend server
/// span; the frontend's root is a child of `inbound_parent` if given, else a root.
fn assert_v1_tree(body: &Value, x: &Exchange, inbound_parent: Option<&str>) -> [String; 3] {
    assert_eq!(body["errors"], Value::Null, "{body}");
    let traces = body["data"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{body}");
    let trace = &traces[0];
    assert_eq!(trace["traceID"], x.trace_id.as_str());
    assert_eq!(trace["spans"].as_array().unwrap().len(), 3, "{trace}");

    let processes = trace["processes"].as_object().unwrap();
    let mut services: Vec<&str> = processes
        .values()
        .map(|p| p["serviceName"].as_str().unwrap())
        .collect();
    services.sort_unstable();
    assert_eq!(services, [BACKEND, FRONTEND], "{trace}");

    let server_a = v1_span(trace, FRONTEND, "server");
    let client_a = v1_span(trace, FRONTEND, "client");
    let server_b = v1_span(trace, BACKEND, "server");
    for span in [server_a, client_a, server_b] {
        assert_eq!(span["traceID"], x.trace_id.as_str(), "{span}");
    }
    assert_eq!(server_a["spanID"], x.frontend_span_id.as_str());
    assert_eq!(server_a["operationName"], FRONTEND_OP);
    assert_eq!(client_a["operationName"], CLIENT_OP);
    assert_eq!(server_b["operationName"], BACKEND_OP);

    match inbound_parent {
        Some(parent) => assert_child_of(server_a, &x.trace_id, parent),
        None => assert_eq!(server_a["references"], serde_json::json!([]), "{server_a}"),
    }
    let id = |s: &Value| s["spanID"].as_str().unwrap().to_owned();
    assert_child_of(client_a, &x.trace_id, &id(server_a));
    assert_child_of(server_b, &x.trace_id, &id(client_a));

    for span in [server_a, client_a, server_b] {
        assert_eq!(
            tag(span, "http.response.status_code"),
            Some(&serde_json::json!(200)),
            "{span}"
        );
        assert_eq!(tag(span, "error"), None, "{span}");
    }
    assert_eq!(tag(server_a, "http.route"), Some(&"/checkout/{id}".into()));
    assert_eq!(tag(server_b, "http.route"), Some(&"/stock/{id}".into()));
    // The handler's log line is an event of the backend span, hence a log of it.
    assert!(
        server_b["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["fields"][0]
                == serde_json::json!({"key": "event", "type": "string", "value": "stock lookup"})),
        "{server_b}"
    );
    let backend_url = tag(client_a, "url.full").and_then(Value::as_str).unwrap();
    assert!(backend_url.ends_with("/stock/42"), "{client_a}");
    [id(server_a), id(client_a), id(server_b)]
}

/// Asserts the api_v3 trace has the same three spans with the same links, in OTLP/JSON form.
async fn assert_v3_tree(
    collector: &TestCollector,
    x: &Exchange,
    inbound_parent: Option<&str>,
    [server_a, client_a, server_b]: &[String; 3],
) {
    let (status, body) = collector
        .query(&format!("/api/v3/traces/{}", x.trace_id))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut spans = HashMap::new();
    for rs in body["result"]["resourceSpans"].as_array().unwrap() {
        let service = rs["resource"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "service.name")
            .map(|a| a["value"]["stringValue"].as_str().unwrap().to_owned())
            .unwrap();
        for ss in rs["scopeSpans"].as_array().unwrap() {
            for span in ss["spans"].as_array().unwrap() {
                let id = span["spanId"].as_str().unwrap().to_owned();
                assert!(
                    spans.insert(id, (service.clone(), span)).is_none(),
                    "{body}"
                );
            }
        }
    }
    assert_eq!(spans.len(), 3, "{body}");
    // (span id, service, OTLP kind: 2 server / 3 client, parent)
    let expected = [
        (server_a, FRONTEND, 2, inbound_parent),
        (client_a, FRONTEND, 3, Some(server_a.as_str())),
        (server_b, BACKEND, 2, Some(client_a.as_str())),
    ];
    for (id, service, kind, parent) in expected {
        let (actual_service, span) = &spans[id];
        assert_eq!(actual_service, service, "{span}");
        assert_eq!(span["traceId"], x.trace_id.as_str(), "{span}");
        assert_eq!(span["kind"], kind, "{span}");
        assert_eq!(span["parentSpanId"].as_str(), parent, "{span}");
        assert!(span["startTimeUnixNano"].is_string(), "{span}");
    }
}

/// Asserts `/api/services` and `/api/dependencies` (as Jaeger UI asks: the last 7 days).
async fn assert_services_and_dependencies(collector: &TestCollector) {
    let (status, body) = collector.query("/api/services").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        serde_json::json!([BACKEND, FRONTEND]),
        "{body}"
    );
    assert_eq!(body["total"], 2, "{body}");

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (status, body) = collector
        .query(&format!(
            "/api/dependencies?endTs={now_ms}&lookback=604800000"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        serde_json::json!([{"parent": FRONTEND, "child": BACKEND, "callCount": 1}]),
        "{body}"
    );
}

/// Where the collector keeps the spans.
#[derive(Debug, Clone, Copy)]
enum Storage {
    /// `--storage memory`.
    Memory,
    /// The on-disk store in a fresh temporary data directory; the trace is read again after a
    /// restart on the same directory.
    Embedded,
}

/// A collector over `storage`; `data_dir` is used by [`Storage::Embedded`].
async fn start_collector(storage: Storage, data_dir: &FsPath) -> TestCollector {
    match storage {
        Storage::Memory => TestCollector::start(|_| {}).await,
        Storage::Embedded => {
            TestCollector::start(|c| {
                c.storage.backend = "embedded".to_owned();
                c.storage.data_dir = data_dir.to_owned();
            })
            .await
        }
    }
}

/// Everything the query API must answer about the exchange.
async fn assert_queryable(collector: &TestCollector, x: &Exchange, inbound_parent: Option<&str>) {
    let v1 = wait_for_trace(collector, &x.trace_id, 3).await;
    let ids = assert_v1_tree(&v1, x, inbound_parent);
    assert_v3_tree(collector, x, inbound_parent, &ids).await;
    assert_services_and_dependencies(collector).await;
}

async fn round_trip(protocol: Protocol, inbound_parent: Option<&str>, storage: Storage) {
    let data_dir = tempfile::tempdir().unwrap();
    let collector = start_collector(storage, data_dir.path()).await;
    let inbound = inbound_parent.map(|p| format!("00-{INBOUND_TRACE}-{p}-01"));
    let x = exchange(&collector, protocol, inbound.as_deref()).await;
    if inbound_parent.is_some() {
        assert_eq!(
            x.trace_id, INBOUND_TRACE,
            "the frontend continues the trace"
        );
    }
    assert_queryable(&collector, &x, inbound_parent).await;
    collector.stop().await;

    if let Storage::Embedded = storage {
        let restarted = start_collector(storage, data_dir.path()).await;
        assert_queryable(&restarted, &x, inbound_parent).await;
        restarted.stop().await;
    }
}

#[tokio::test]
async fn grpc_export_reads_back_as_one_tree() {
    round_trip(Protocol::Grpc, None, Storage::Memory).await;
}

#[tokio::test]
async fn http_protobuf_export_continues_the_inbound_trace() {
    round_trip(
        Protocol::HttpProtobuf,
        Some(INBOUND_PARENT),
        Storage::Memory,
    )
    .await;
}

#[tokio::test]
async fn embedded_store_serves_the_trace_again_after_a_restart() {
    round_trip(Protocol::Grpc, Some(INBOUND_PARENT), Storage::Embedded).await;
}
