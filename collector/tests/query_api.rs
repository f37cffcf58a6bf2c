//! Golden-file tests of every query endpoint (Jaeger v1 and api_v3), success and error
//! bodies, against the fixed fixture ingested over OTLP/HTTP protobuf.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p tracelight-collector --test query_api`.

#[path = "support/harness.rs"]
mod harness;

use harness::{TRACE_1, TRACE_2, TestCollector, assert_golden, fixture_request};

/// µs window around the fixture (v1 search).
const V1_WINDOW: &str = "start=1699999999000000&end=1700000001000000";
/// RFC 3339 window around the fixture (v3 search), snake_case as Grafana sends it.
const V3_WINDOW: &str =
    "query.start_time_min=2023-11-14T22:13:19Z&query.start_time_max=2023-11-14T22:13:21Z";

#[tokio::test]
async fn query_endpoints_match_golden_files() {
    let c = TestCollector::start(|_| {}).await;
    assert_eq!(c.post_otlp(&fixture_request()).await, 200);

    let cases: Vec<(&str, String, u16)> = vec![
        // ---- v1 ----
        ("v1_services", "/api/services".into(), 200),
        (
            "v1_service_operations",
            "/api/services/backend/operations".into(),
            200,
        ),
        (
            "v1_service_operations_unknown",
            "/api/services/nope/operations".into(),
            200,
        ),
        (
            "v1_operations_all",
            "/api/operations?service=frontend".into(),
            200,
        ),
        (
            "v1_operations_server",
            "/api/operations?service=frontend&spanKind=server".into(),
            200,
        ),
        (
            "v1_operations_missing_service",
            "/api/operations".into(),
            400,
        ),
        ("v1_trace", format!("/api/traces/{TRACE_1}"), 200),
        ("v1_trace_short_id", "/api/traces/ABC".into(), 200),
        (
            "v1_trace_not_found",
            "/api/traces/123456789abcdef0".into(),
            404,
        ),
        ("v1_trace_bad_id", "/api/traces/not-hex".into(), 400),
        (
            "v1_traces_by_ids",
            format!("/api/traces?traceID={TRACE_2}&traceID=00000000000000ff"),
            200,
        ),
        (
            "v1_search_service",
            format!("/api/traces?service=backend&{V1_WINDOW}&minDuration&maxDuration&lookback=1h"),
            200,
        ),
        (
            "v1_search_tags",
            format!(
                "/api/traces?service=backend&{V1_WINDOW}&tags=%7B%22error%22%3A%22true%22%7D&tag=host.name:db-1"
            ),
            200,
        ),
        (
            "v1_search_duration",
            format!(
                "/api/traces?service=frontend&operation=GET%20%2Fusers%2F%7Bid%7D&{V1_WINDOW}&minDuration=5ms&maxDuration=1s&limit=1"
            ),
            200,
        ),
        (
            "v1_search_no_match",
            format!("/api/traces?service=frontend&{V1_WINDOW}&minDuration=1s"),
            200,
        ),
        (
            "v1_search_missing_service",
            format!("/api/traces?{V1_WINDOW}"),
            400,
        ),
        (
            "v1_search_duration_order",
            format!("/api/traces?service=frontend&{V1_WINDOW}&minDuration=2s&maxDuration=1s"),
            400,
        ),
        (
            "v1_search_limit_too_large",
            format!("/api/traces?service=frontend&{V1_WINDOW}&limit=1501"),
            400,
        ),
        (
            "v1_dependencies",
            "/api/dependencies?endTs=1700000001000&lookback=60000".into(),
            200,
        ),
        (
            "v1_dependencies_other_service",
            "/api/dependencies?endTs=1700000001000&lookback=60000&service=nope".into(),
            200,
        ),
        (
            "v1_dependencies_bad_end",
            "/api/dependencies?endTs=soon".into(),
            400,
        ),
        // ---- v3 ----
        ("v3_services", "/api/v3/services".into(), 200),
        (
            "v3_operations",
            "/api/v3/operations?service=backend".into(),
            200,
        ),
        (
            "v3_operations_client",
            "/api/v3/operations?service=frontend&span_kind=client".into(),
            200,
        ),
        ("v3_trace", format!("/api/v3/traces/{TRACE_1}"), 200),
        (
            "v3_trace_base64_id",
            "/api/v3/traces/AAAAAAAAAAAAAAAAAAAKvA".into(),
            200,
        ),
        (
            "v3_trace_not_found",
            "/api/v3/traces/00000000000000000000000000000001".into(),
            404,
        ),
        (
            "v3_search",
            format!("/api/v3/traces?query.service_name=frontend&{V3_WINDOW}"),
            200,
        ),
        (
            "v3_search_attributes",
            format!(
                "/api/v3/traces?query.serviceName=backend&query.attributes=%7B%22otel.status_code%22%3A%22OK%22%7D&{V3_WINDOW}"
            ),
            200,
        ),
        (
            "v3_search_no_match",
            format!("/api/v3/traces?query.service_name=frontend&query.duration_min=1h&{V3_WINDOW}"),
            404,
        ),
        (
            "v3_search_missing_time",
            "/api/v3/traces?query.service_name=frontend".into(),
            400,
        ),
        (
            "v3_search_depth_too_large",
            format!(
                "/api/v3/traces?query.service_name=frontend&query.search_depth=1501&{V3_WINDOW}"
            ),
            400,
        ),
        (
            "v3_trace_summaries",
            format!("/api/v3/trace-summaries?query.service_name=backend&{V3_WINDOW}"),
            200,
        ),
        (
            "v3_trace_summaries_empty",
            format!("/api/v3/trace-summaries?query.service_name=nope&{V3_WINDOW}"),
            200,
        ),
    ];
    for (name, path, expected_status) in &cases {
        let (status, body) = c.query(path).await;
        assert_eq!(status, *expected_status, "{name}: {path}: {body}");
        assert_golden(name, &body);
    }

    // The query latency metric uses route templates, never raw paths.
    let (_, metrics) = c.admin("/metrics").await;
    assert!(
        metrics.contains("route=\"/api/traces/{trace_id}\""),
        "{metrics}"
    );
    assert!(!metrics.contains(TRACE_1));
    c.stop().await;
}

#[tokio::test]
async fn pretty_print_and_upper_case_ids() {
    let c = TestCollector::start(|_| {}).await;
    assert_eq!(c.post_otlp(&fixture_request()).await, 200);
    let response = c
        .http
        .get(c.query_url(&format!(
            "/api/traces/{}?prettyPrint=true",
            TRACE_1.to_uppercase()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("{\n  \"data\""), "{text}");
    c.stop().await;
}
