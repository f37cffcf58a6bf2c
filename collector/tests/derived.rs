//! Span metrics, the service graph and the Monitor-tab API, through real sockets: scripted
//! spans go in over OTLP/HTTP, the admin `/metrics` exposition is compared with a golden file
//! and `/api/metrics/*` is read back.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/harness.rs"]
mod harness;

use std::path::PathBuf;

use harness::{TestCollector, kv, span, string};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value as Json;

const T1: &str = "0af7651916cd43dd8448eb211c80319c";
const T2: &str = "1bf7651916cd43dd8448eb211c80319d";

fn resource(service: Option<&str>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: service
                .map(|s| vec![kv("service.name", string(s))])
                .unwrap_or_default(),
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn error(mut s: Span) -> Span {
    s.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "failed".to_owned(),
    });
    s
}

fn with(mut s: Span, attrs: &[(&str, &str)]) -> Span {
    s.attributes = attrs.iter().map(|(k, v)| kv(k, string(v))).collect();
    s
}

/// The server and consumer halves: sent first, so pairing must wait for the second batch.
fn servers() -> ExportTraceServiceRequest {
    let g_server = with(
        span(
            T1,
            "a000000000000001",
            None,
            "GET /checkout",
            SpanKind::Server,
            0,
            120,
        ),
        &[("http.request.method", "GET")],
    );
    let o_server = with(
        span(
            T1,
            "b000000000000001",
            Some("a000000000000002"),
            "POST /orders",
            SpanKind::Server,
            6,
            100,
        ),
        &[("http.request.method", "POST")],
    );
    let p_server = error(span(
        T1,
        "c000000000000001",
        Some("b000000000000002"),
        "POST /charge",
        SpanKind::Server,
        12,
        95,
    ));
    let p_internal = span(
        T1,
        "c000000000000002",
        Some("c000000000000001"),
        "score risk",
        SpanKind::Internal,
        13,
        16,
    );
    let consumer = span(
        T2,
        "d000000000000001",
        Some("b000000000000004"),
        "orders receive",
        SpanKind::Consumer,
        300,
        305,
    );
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource(Some("gateway"), vec![g_server]),
            resource(Some("orders"), vec![o_server]),
            resource(Some("payments"), vec![p_server, p_internal]),
            resource(Some("shipping"), vec![consumer]),
            resource(
                None,
                vec![span(
                    T2,
                    "e000000000000001",
                    None,
                    "anonymous",
                    SpanKind::Server,
                    0,
                    1,
                )],
            ),
        ],
    }
}

/// The client and producer halves, and a database call.
fn clients() -> ExportTraceServiceRequest {
    let g_client = span(
        T1,
        "a000000000000002",
        Some("a000000000000001"),
        "POST",
        SpanKind::Client,
        5,
        101,
    );
    let o_client = span(
        T1,
        "b000000000000002",
        Some("b000000000000001"),
        "POST",
        SpanKind::Client,
        10,
        96,
    );
    let o_db = with(
        span(
            T1,
            "b000000000000003",
            Some("b000000000000001"),
            "INSERT orders",
            SpanKind::Client,
            7,
            9,
        ),
        &[("db.system", "postgresql"), ("db.name", "shop")],
    );
    let producer = span(
        T2,
        "b000000000000004",
        None,
        "orders publish",
        SpanKind::Producer,
        200,
        201,
    );
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource(Some("gateway"), vec![g_client]),
            resource(Some("orders"), vec![o_client, o_db, producer]),
        ],
    }
}

async fn send(c: &TestCollector, request: &ExportTraceServiceRequest) {
    assert_eq!(c.post_otlp(request).await, 200);
}

/// The derived families of an exposition (span metrics, service graph, their self-metrics).
fn derived_lines(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let name = line
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ");
        if name.starts_with("traces_")
            || name.starts_with("tracelight_collector_derived_")
            || name.starts_with("tracelight_collector_spanmetrics_")
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn assert_golden_text(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        panic!(
            "{} differs (UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}

async fn scripted_collector() -> TestCollector {
    let c = TestCollector::start(|config| {
        config.spanmetrics.dimensions = vec!["http.request.method".to_owned()];
    })
    .await;
    send(&c, &servers()).await;
    send(&c, &clients()).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_metrics_and_service_graph_exposition() {
    let c = scripted_collector().await;
    let (status, text) = c.admin("/metrics").await;
    assert_eq!(status, 200);
    assert_golden_text("derived_metrics.prom", &derived_lines(&text));
    c.stop().await;
}

/// Label pairs of one SPM series.
type Labels = Vec<(String, String)>;

fn series(body: &Json) -> Vec<(Labels, Vec<f64>)> {
    body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let labels = m["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["name"].as_str().unwrap().to_owned(),
                        l["value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let values = m["metricPoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    assert!(p["timestamp"].as_str().unwrap().ends_with('Z'), "{p}");
                    p["gaugeValue"]["doubleValue"].as_f64().unwrap()
                })
                .collect();
            (labels, values)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_tab_api_answers_from_the_collector() {
    let c = scripted_collector().await;
    // One point at "now" over a 60 s rate window.
    let window = "lookback=0&step=60000&ratePer=60000";

    let (status, calls) = c
        .query(&format!(
            "/api/metrics/calls?service=gateway,orders&service=payments&{window}"
        ))
        .await;
    assert_eq!(status, 200, "{calls}");
    assert_eq!(calls["name"], "service_call_rate");
    assert_eq!(calls["type"], "GAUGE");
    assert_eq!(calls["help"], "calls/sec, grouped by service");
    let one_per_minute = 1.0 / 60.0;
    assert_eq!(
        series(&calls),
        vec![
            (labels(&[("service_name", "gateway")]), vec![one_per_minute]),
            (labels(&[("service_name", "orders")]), vec![one_per_minute]),
            (
                labels(&[("service_name", "payments")]),
                vec![one_per_minute]
            ),
        ]
    );

    let (_, errors) = c
        .query(&format!(
            "/api/metrics/errors?service=payments&service=orders&groupByOperation=true&{window}"
        ))
        .await;
    assert_eq!(errors["name"], "service_operation_error_rate");
    assert_eq!(
        series(&errors),
        vec![
            (
                labels(&[("service_name", "orders"), ("operation", "POST /orders")]),
                vec![0.0]
            ),
            (
                labels(&[("service_name", "payments"), ("operation", "POST /charge")]),
                vec![1.0]
            ),
        ]
    );

    let (_, latencies) = c
        .query(&format!(
            "/api/metrics/latencies?service=orders&quantile=0.5&spanKind=client&{window}"
        ))
        .await;
    assert_eq!(latencies["name"], "service_latencies");
    // Client spans of orders: 86 ms (bucket 50–100) and 2 ms (bucket 0–2): the median is the
    // upper bound of the first bucket, as histogram_quantile interpolates.
    assert_eq!(
        series(&latencies),
        vec![(labels(&[("service_name", "orders")]), vec![2.0])]
    );

    let (status, missing) = c.query("/api/metrics/latencies?service=orders").await;
    assert_eq!(status, 400);
    assert_eq!(
        missing["errors"][0]["msg"],
        "parameter 'quantile' is required"
    );
    let (status, _) = c.query("/api/metrics/calls").await;
    assert_eq!(status, 400);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_tab_api_is_501_without_span_metrics() {
    let c = TestCollector::start(|config| config.spanmetrics.enabled = false).await;
    send(&c, &clients()).await;
    let (status, body) = c.query("/api/metrics/calls?service=orders").await;
    assert_eq!(status, 501, "{body}");
    let (_, text) = c.admin("/metrics").await;
    assert!(!text.contains("traces_span_metrics_calls_total"), "{text}");
    assert!(
        text.contains("traces_service_graph_request_total{client=\"orders\",server=\"shop\",connection_type=\"database\"} 1"),
        "the service graph runs on its own: {text}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_span_names_ends_in_the_overflow_series() {
    let c = TestCollector::start(|config| {
        config.spanmetrics.max_series = 100;
        config.storage.memory_max_spans = 1000;
    })
    .await;
    for chunk in 0..20 {
        let spans = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                let mut s = span(
                    T1,
                    &format!("{:016x}", n + 1),
                    None,
                    &format!("GET /item/{n}"),
                    SpanKind::Server,
                    0,
                    1,
                );
                s.attributes = vec![kv("n", Value::IntValue(i64::from(n)))];
                s
            })
            .collect();
        send(
            &c,
            &ExportTraceServiceRequest {
                resource_spans: vec![resource(Some("scanner-target"), spans)],
            },
        )
        .await;
    }
    let (_, text) = c.admin("/metrics").await;
    let calls = text
        .lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
        .count();
    assert_eq!(calls, 101, "100 series and the overflow series");
    assert_eq!(
        harness::metric_value(
            &text,
            "traces_span_metrics_calls_total{otel_metric_overflow=\"true\"}"
        ),
        9900.0
    );
    assert_eq!(
        harness::metric_value(
            &text,
            "tracelight_collector_derived_overflow_spans_total{metric=\"spanmetrics\"}"
        ),
        9900.0
    );
    c.stop().await;
}
