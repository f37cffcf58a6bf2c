//! Metric names, label keys and bucket boundaries: defined once, here.
//!
//! The HTTP names follow the OpenTelemetry HTTP semantic conventions after the OTel → Prometheus
//! mapping (`http.server.request.duration` in seconds becomes
//! `http_server_request_duration_seconds`), so dashboards written for other OTel SDKs work
//! unchanged. The Grafana dashboards in `dashboards/` are tested against these constants.

/// Histogram of server request durations, seconds (`http.server.request.duration`).
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Gauge of in-flight server requests (`http.server.active_requests`).
pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// Histogram of outgoing request durations, seconds (`http.client.request.duration`).
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http_client_request_duration_seconds";
/// Counter of spans the exporter delivered.
pub const SPANS_EXPORTED: &str = "tracelight_spans_exported_total";
/// Counter of spans lost because an export failed (collector down, timeout, rejection).
pub const SPANS_EXPORT_FAILED: &str = "tracelight_spans_export_failed_total";

/// Every tracelight metric carries this label with the service name.
pub const LABEL_SERVICE_NAME: &str = "service_name";
/// `http.request.method`, normalised: the nine standard methods, else `_OTHER`.
pub const LABEL_HTTP_REQUEST_METHOD: &str = "http_request_method";
/// `http.route`: the matched route template, never the raw path.
pub const LABEL_HTTP_ROUTE: &str = "http_route";
/// `http.response.status_code`.
pub const LABEL_HTTP_RESPONSE_STATUS_CODE: &str = "http_response_status_code";
/// `url.scheme`.
pub const LABEL_URL_SCHEME: &str = "url_scheme";
/// `error.type`: present only when the request failed.
pub const LABEL_ERROR_TYPE: &str = "error_type";
/// `server.address` (client metrics: the target host).
pub const LABEL_SERVER_ADDRESS: &str = "server_address";
/// `server.port` (client metrics: the target port).
pub const LABEL_SERVER_PORT: &str = "server_port";

/// `http_route` of requests that matched no route (axum fallback, 404). One fixed value keeps
/// scanners hitting random URLs from creating a series per URL.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Method label for any non-standard method.
pub const OTHER_METHOD: &str = "_OTHER";

/// Semantic-convention bucket boundaries for HTTP durations, in seconds.
pub const HTTP_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// All histogram names, so the recorder can be given buckets for each (a histogram without
/// buckets would be rendered as a summary).
pub(crate) const HISTOGRAMS: [&str; 2] =
    [HTTP_SERVER_REQUEST_DURATION, HTTP_CLIENT_REQUEST_DURATION];
