//! Shared test support: an in-process collector on ephemeral loopback ports, fixed OTLP
//! fixtures and golden-file comparison. Included with `#[path]` by each test crate.
#![allow(
    dead_code,
    reason = "each test crate uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed unwrap is a failed test, with its location"
)]

use std::path::PathBuf;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use tokio_util::sync::CancellationToken;
use tracelight_collector::config::Config;
use tracelight_collector::store::SpanStore;
use tracelight_collector::{Running, start, start_with_store};

/// Fixture trace with a 128-bit id.
pub(crate) const TRACE_1: &str = "5b8efff798038103d269b633813fc60c";
/// Fixture trace whose high 64 bits are zero (Jaeger prints it with 16 digits).
pub(crate) const TRACE_2: &str = "00000000000000000000000000000abc";
/// Fixture span ids.
pub(crate) const SPAN_1: &str = "1111111111111111";
/// Child of [`SPAN_1`].
pub(crate) const SPAN_2: &str = "2222222222222222";
/// Child of [`SPAN_2`], in another service.
pub(crate) const SPAN_3: &str = "3333333333333333";
/// Root of [`TRACE_2`].
pub(crate) const SPAN_4: &str = "4444444444444444";
/// Fixture base time: 2023-11-14T22:13:20Z in ns.
pub(crate) const BASE_NS: u64 = 1_700_000_000_000_000_000;
/// One millisecond in ns.
pub(crate) const MS: u64 = 1_000_000;

/// A running collector and its shutdown token.
pub(crate) struct TestCollector {
    pub(crate) running: Running,
    pub(crate) shutdown: CancellationToken,
    pub(crate) http: reqwest::Client,
}

/// Config with every listener on an ephemeral loopback port.
pub(crate) fn test_config() -> Config {
    let mut c = Config::default();
    let any = "127.0.0.1:0".parse().unwrap();
    c.receiver.grpc_listen = any;
    c.receiver.http_listen = any;
    c.query.listen = any;
    c.admin.listen = any;
    // The memory store: tests run in parallel and must not share a data directory. Tests of the
    // embedded store give it a directory of their own.
    c.storage.backend = "memory".to_owned();
    c.storage.data_dir = std::env::temp_dir().join("tracelight-collector-tests");
    c
}

impl TestCollector {
    /// Starts a collector with `tweak` applied to the test config.
    pub(crate) async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let running = start(config.validate().unwrap(), shutdown.clone())
            .await
            .unwrap();
        Self::new(running, shutdown)
    }

    /// Starts a collector over a caller-provided store.
    pub(crate) async fn start_with_store(
        tweak: impl FnOnce(&mut Config),
        store: Arc<dyn SpanStore>,
    ) -> Self {
        let mut config = test_config();
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let running = start_with_store(config.validate().unwrap(), store, shutdown.clone())
            .await
            .unwrap();
        Self::new(running, shutdown)
    }

    fn new(running: Running, shutdown: CancellationToken) -> Self {
        Self {
            running,
            shutdown,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn otlp_http_url(&self) -> String {
        format!("http://{}/v1/traces", self.running.addrs().http)
    }

    pub(crate) fn grpc_url(&self) -> String {
        format!("http://{}", self.running.addrs().grpc)
    }

    pub(crate) fn query_url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.running.addrs().query)
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addrs().admin)
    }

    /// POSTs `request` as OTLP/HTTP protobuf; the response status.
    pub(crate) async fn post_otlp(&self, request: &ExportTraceServiceRequest) -> u16 {
        use prost::Message as _;
        self.http
            .post(self.otlp_http_url())
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// GET on the query API: (status, JSON body).
    pub(crate) async fn query(&self, path_and_query: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(self.query_url(path_and_query))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{path_and_query}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, json)
    }

    /// GET on the admin port: body text.
    pub(crate) async fn admin(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.admin_url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Cancels and waits for a clean stop.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.running.wait().await.unwrap();
    }
}

/// Reads one sample value from Prometheus text.
pub(crate) fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("series {series} not found in:\n{text}"))
}

pub(crate) fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn string(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

fn resource_spans(
    service: &str,
    host: &str,
    extra: Vec<KeyValue>,
    spans: Vec<Span>,
) -> ResourceSpans {
    let mut attributes = vec![
        kv("service.name", string(service)),
        kv("host.name", string(host)),
    ];
    attributes.extend(extra);
    ResourceSpans {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "tracelight-fixture".to_owned(),
                version: "0.1.0".to_owned(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A span with fixed ids and times (offsets in ms from [`BASE_NS`]).
pub(crate) fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    kind: SpanKind,
    start_ms: u64,
    end_ms: u64,
) -> Span {
    Span {
        trace_id: hex(trace),
        span_id: hex(id),
        parent_span_id: parent.map(hex).unwrap_or_default(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: BASE_NS + start_ms * MS,
        end_time_unix_nano: BASE_NS + end_ms * MS,
        ..Default::default()
    }
}

/// Two traces: frontend → frontend client → backend (error, event, link) and one backend span.
pub(crate) fn fixture_request() -> ExportTraceServiceRequest {
    let mut s1 = span(
        TRACE_1,
        SPAN_1,
        None,
        "GET /users/{id}",
        SpanKind::Server,
        0,
        10,
    );
    s1.flags = 1;
    s1.trace_state = "vendor=x".to_owned();
    s1.attributes = vec![
        kv("http.request.method", string("GET")),
        kv("http.response.status_code", Value::IntValue(200)),
    ];
    let mut s2 = span(
        TRACE_1,
        SPAN_2,
        Some(SPAN_1),
        "call backend",
        SpanKind::Client,
        1,
        9,
    );
    s2.attributes = vec![kv("peer.service", string("backend"))];
    let mut s3 = span(
        TRACE_1,
        SPAN_3,
        Some(SPAN_2),
        "SELECT users",
        SpanKind::Server,
        2,
        8,
    );
    s3.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "db timeout".to_owned(),
    });
    s3.attributes = vec![
        kv("big", Value::IntValue(1 << 60)),
        kv("raw", Value::BytesValue(vec![1, 2, 3])),
        kv(
            "list",
            Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(string("a")),
                    },
                    AnyValue {
                        value: Some(Value::IntValue(2)),
                    },
                ],
            }),
        ),
    ];
    s3.events = vec![Event {
        time_unix_nano: BASE_NS + 5 * MS,
        name: "exception".to_owned(),
        attributes: vec![
            kv("exception.message", string("timeout")),
            kv("retry", Value::BoolValue(true)),
            kv("ratio", Value::DoubleValue(0.5)),
        ],
        ..Default::default()
    }];
    s3.links = vec![Link {
        trace_id: hex(TRACE_2),
        span_id: hex(SPAN_4),
        attributes: vec![kv("link.kind", string("cleanup"))],
        ..Default::default()
    }];
    let mut s4 = span(TRACE_2, SPAN_4, None, "cleanup", SpanKind::Internal, 20, 21);
    s4.status = Some(Status {
        code: StatusCode::Ok as i32,
        message: String::new(),
    });
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", "web-1", vec![], vec![s1, s2]),
            resource_spans(
                "backend",
                "db-1",
                vec![kv("process.pid", Value::IntValue(42))],
                vec![s3, s4],
            ),
        ],
    }
}

/// Compares `actual` with `tests/data/<name>.json`; `UPDATE_GOLDEN=1` rewrites the file.
pub(crate) fn assert_golden(name: &str, actual: &serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.json"));
    let mut text = serde_json::to_string_pretty(actual).unwrap();
    text.push('\n');
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing golden file {} ({e}); run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != text {
        panic!(
            "golden mismatch for {}\n--- expected\n{expected}\n--- actual\n{text}\n\
             (run with UPDATE_GOLDEN=1 to accept)",
            path.display()
        );
    }
}

/// Polls `check` every 10 ms until it holds; panics after 2 s.
pub(crate) async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A request with one server span of `trace`.
pub(crate) fn one_span_request(trace: &str) -> ExportTraceServiceRequest {
    let mut request = fixture_request();
    request.resource_spans.truncate(1);
    request.resource_spans[0].scope_spans[0].spans = vec![span(
        trace,
        "0000000000000001",
        None,
        "op",
        SpanKind::Server,
        0,
        1,
    )];
    request
}

/// [`one_span_request`], its span carrying an attribute of `bytes` bytes, encoded.
pub(crate) fn large_request(trace: &str, bytes: usize) -> Vec<u8> {
    use prost::Message as _;
    let mut request = one_span_request(trace);
    request.resource_spans[0].scope_spans[0].spans[0].attributes =
        vec![kv("blob", string(&"x".repeat(bytes)))];
    request.encode_to_vec()
}
