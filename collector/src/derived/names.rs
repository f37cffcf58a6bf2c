//! Names, label keys and bucket bounds of the metrics derived from spans, defined once.
//!
//! They match what the OpenTelemetry Collector's `spanmetrics` and `servicegraph` connectors
//! produce after its Prometheus exporter (`shared/reference/metric-names.md` §B, §C), so
//! dashboards and Jaeger's Monitor tab written for those connectors work unchanged.

/// Spans counted per service, span name, kind and status.
pub const SPAN_CALLS: &str = "traces_span_metrics_calls_total";
/// Span duration histogram in milliseconds (the family name; `_bucket`, `_sum`, `_count` follow).
pub const SPAN_DURATION: &str = "traces_span_metrics_duration_milliseconds";
/// Requests per service-graph edge.
pub const GRAPH_REQUESTS: &str = "traces_service_graph_request_total";
/// Failed requests per edge (either side has status ERROR).
pub const GRAPH_FAILED: &str = "traces_service_graph_request_failed_total";
/// Server-side duration per edge, seconds.
pub const GRAPH_SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";
/// Client-side duration per edge, seconds.
pub const GRAPH_CLIENT_SECONDS: &str = "traces_service_graph_request_client_seconds";
/// Producer end → consumer start per messaging edge, seconds.
pub const GRAPH_MESSAGING_SECONDS: &str = "traces_service_graph_request_messaging_system_seconds";
/// Half-edges that expired without their other half.
pub const GRAPH_UNPAIRED: &str = "traces_service_graph_unpaired_spans_total";
/// Half-edges dropped because the pairing store was full.
pub const GRAPH_DROPPED: &str = "traces_service_graph_dropped_spans_total";
/// Spans folded into an overflow series because a metric reached its series cap.
pub const OVERFLOW_SPANS: &str = "tracelight_collector_derived_overflow_spans_total";
/// Series currently held per derived metric family.
pub const DERIVED_SERIES: &str = "tracelight_collector_derived_series";
/// Series removed because they were not updated within the expiry time.
pub const EXPIRED_SERIES: &str = "tracelight_collector_derived_expired_series_total";
/// Spans skipped by span metrics because their resource has no `service.name`.
pub const SKIPPED_SPANS: &str = "tracelight_collector_spanmetrics_skipped_spans_total";

/// Label: the resource's `service.name`.
pub const LABEL_SERVICE: &str = "service_name";
/// Label: the span name.
pub const LABEL_SPAN_NAME: &str = "span_name";
/// Label: `SPAN_KIND_*`.
pub const LABEL_SPAN_KIND: &str = "span_kind";
/// Label: `STATUS_CODE_*`.
pub const LABEL_STATUS: &str = "status_code";
/// Label: calling service of an edge.
pub const LABEL_CLIENT: &str = "client";
/// Label: called service of an edge.
pub const LABEL_SERVER: &str = "server";
/// Label: `""`, `messaging_system` or `database`.
pub const LABEL_CONNECTION_TYPE: &str = "connection_type";
/// Label of the overflow series (`"true"`), as the OpenTelemetry SDKs name it.
pub const LABEL_OVERFLOW: &str = "otel_metric_overflow";
/// Label of [`DERIVED_SERIES`] and friends: which derived family.
pub const LABEL_METRIC: &str = "metric";

/// Default span-duration buckets, milliseconds (the connector's defaults; `+Inf` implicit).
pub const SPAN_DURATION_BUCKETS_MS: [f64; 16] = [
    2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
    10000.0, 15000.0,
];
/// Default service-graph latency buckets, seconds (the connector's defaults).
pub const GRAPH_BUCKETS_SECONDS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// The families that have a series cap, as [`LABEL_METRIC`] values.
pub const CAPPED_FAMILIES: [&str; 2] = ["spanmetrics", "servicegraph"];
