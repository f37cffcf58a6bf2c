//! Jaeger's Service Performance Monitoring API (`/api/metrics/{calls,errors,latencies}`),
//! answered from the collector's own per-minute history ([`crate::derived::history`]) so a
//! Jaeger UI pointed at the collector shows its Monitor tab without a Prometheus.
//!
//! Contract: `jaeger-query-api.md` §6. Each point at time `t` (every `step` over `lookback`
//! up to `endTs`) aggregates the spans that arrived in `(t - ratePer, t]`, at the history's
//! one-minute resolution: calls per second, errors ÷ calls, or a latency quantile in
//! milliseconds interpolated within the span-metrics buckets like `histogram_quantile`.
//! Errors are the v1 envelope with 400; without span metrics the answer is 501.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use super::params::{ParamError, Params};
use super::{QueryError, QueryState, json_response, now_ns};
use crate::derived::history::Window;
use crate::model::SpanKind;

/// Default `lookback`, ms (1 h).
const DEFAULT_LOOKBACK_MS: u64 = 3600 * 1000;
/// Default `step`, ms (5 s).
const DEFAULT_STEP_MS: u64 = 5000;
/// Default `ratePer`, ms (10 min).
const DEFAULT_RATE_PER_MS: u64 = 600 * 1000;
/// Most points per series (Prometheus' own limit).
const MAX_POINTS: u64 = 11_000;

/// Which of the three endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Calls,
    Errors,
    Latencies,
}

/// Parsed parameters.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    services: Vec<String>,
    kinds: Vec<SpanKind>,
    group_by_operation: bool,
    quantile: f64,
    end_ms: u64,
    lookback_ms: u64,
    step_ms: u64,
    rate_per_ms: u64,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn millis(params: &Params, name: &'static str, default: u64) -> Result<u64, ParamError> {
    match params.get(&[name]) {
        None => Ok(default),
        Some(t) => t
            .parse::<u64>()
            .map_err(|e| invalid(name, format!("{t:?}: {e}"))),
    }
}

fn parse(kind: Kind, params: &Params, now_ms: u64) -> Result<Request, ParamError> {
    let services: Vec<String> = params
        .all("service")
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if services.is_empty() {
        return Err(ParamError::Required("service"));
    }
    let mut kinds = Vec::new();
    for k in params.all("spanKind").filter(|k| !k.is_empty()) {
        let name = k
            .strip_prefix("SPAN_KIND_")
            .unwrap_or(k)
            .to_ascii_lowercase();
        kinds.push(
            SpanKind::from_jaeger_name(&name)
                .ok_or_else(|| invalid("spanKind", format!("unsupported span kind {k:?}")))?,
        );
    }
    if kinds.is_empty() {
        kinds.push(SpanKind::Server);
    }
    let quantile = match (kind, params.get(&["quantile"])) {
        (Kind::Latencies, None) => return Err(ParamError::Required("quantile")),
        (_, None) => 0.0,
        (_, Some(t)) => {
            let q: f64 = t
                .parse()
                .map_err(|e| invalid("quantile", format!("{t:?}: {e}")))?;
            if !(q > 0.0 && q <= 1.0) {
                return Err(invalid("quantile", "must be in (0, 1]"));
            }
            q
        }
    };
    let group_by_operation = match params.get(&["groupByOperation"]) {
        None => false,
        Some(t) => t
            .parse()
            .map_err(|_| invalid("groupByOperation", format!("{t:?} is not a boolean")))?,
    };
    let request = Request {
        services,
        kinds,
        group_by_operation,
        quantile,
        end_ms: millis(params, "endTs", now_ms)?,
        lookback_ms: millis(params, "lookback", DEFAULT_LOOKBACK_MS)?,
        step_ms: millis(params, "step", DEFAULT_STEP_MS)?,
        rate_per_ms: millis(params, "ratePer", DEFAULT_RATE_PER_MS)?,
    };
    if request.step_ms == 0 {
        return Err(invalid("step", "must be positive"));
    }
    if request.rate_per_ms < 1000 {
        return Err(invalid("ratePer", "must be at least 1000 (1 s)"));
    }
    if request.lookback_ms / request.step_ms >= MAX_POINTS {
        return Err(invalid(
            "step",
            format!("lookback/step exceeds {MAX_POINTS} points per series"),
        ));
    }
    Ok(request)
}

/// `{"name": …, "type": "GAUGE", "help": …, "metrics": […]}`.
#[derive(Debug, Serialize)]
struct MetricFamily {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    help: String,
    metrics: Vec<Metric>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    labels: Vec<Label>,
    metric_points: Vec<Point>,
}

#[derive(Debug, Serialize)]
struct Label {
    name: &'static str,
    value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Point {
    gauge_value: GaugeValue,
    timestamp: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GaugeValue {
    double_value: f64,
}

fn family(kind: Kind, request: &Request) -> (&'static str, String) {
    let by = if request.group_by_operation {
        "service & operation"
    } else {
        "service"
    };
    match (kind, request.group_by_operation) {
        (Kind::Calls, false) => ("service_call_rate", format!("calls/sec, grouped by {by}")),
        (Kind::Calls, true) => (
            "service_operation_call_rate",
            format!("calls/sec, grouped by {by}"),
        ),
        (Kind::Errors, false) => (
            "service_error_rate",
            format!(
                "error rate, computed as a fraction of errors/sec over calls/sec, grouped by {by}"
            ),
        ),
        (Kind::Errors, true) => (
            "service_operation_error_rate",
            format!(
                "error rate, computed as a fraction of errors/sec over calls/sec, grouped by {by}"
            ),
        ),
        (Kind::Latencies, false) => (
            "service_latencies",
            format!(
                "{:.2}th quantile latency, grouped by {by}",
                request.quantile
            ),
        ),
        (Kind::Latencies, true) => (
            "service_operation_latencies",
            format!(
                "{:.2}th quantile latency, grouped by {by}",
                request.quantile
            ),
        ),
    }
}

/// The value of one point, or `None` where Prometheus would have none (no calls).
fn value(kind: Kind, request: &Request, w: &Window) -> Option<f64> {
    match kind {
        Kind::Calls => Some(w.calls as f64 * 1000.0 / request.rate_per_ms as f64),
        Kind::Errors => (w.calls > 0).then(|| w.errors as f64 / w.calls as f64),
        Kind::Latencies => w.quantile_ms(request.quantile),
    }
}

fn timestamp(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Builds the response body from the history's windows (pure, for tests).
fn build(
    kind: Kind,
    request: &Request,
    rows: Vec<(String, String, Vec<Window>)>,
    times_ms: &[u64],
) -> MetricFamily {
    let mut groups: BTreeMap<(String, Option<String>), Vec<Window>> = BTreeMap::new();
    for (service, operation, windows) in rows {
        let key = (service, request.group_by_operation.then_some(operation));
        let sums = groups
            .entry(key)
            .or_insert_with(|| vec![Window::default(); windows.len()]);
        for (sum, w) in sums.iter_mut().zip(&windows) {
            sum.merge(w);
        }
    }
    let metrics = groups
        .into_iter()
        .filter(|(_, windows)| windows.iter().any(|w| w.calls > 0))
        .map(|((service, operation), windows)| {
            let mut labels = vec![Label {
                name: "service_name",
                value: service,
            }];
            labels.extend(operation.map(|value| Label {
                name: "operation",
                value,
            }));
            let metric_points = times_ms
                .iter()
                .zip(&windows)
                .filter_map(|(t, w)| {
                    value(kind, request, w).map(|v| Point {
                        gauge_value: GaugeValue { double_value: v },
                        timestamp: timestamp(*t),
                    })
                })
                .collect();
            Metric {
                labels,
                metric_points,
            }
        })
        .collect();
    let (name, help) = family(kind, request);
    MetricFamily {
        name,
        kind: "GAUGE",
        help,
        metrics,
    }
}

/// Handles one of the three endpoints.
pub(super) async fn handle(kind: Kind, state: QueryState, raw: Option<String>) -> Response {
    let params = Params::parse(raw.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = (|| {
        let derived = state
            .derived
            .as_ref()
            .filter(|d| d.has_history())
            .ok_or(QueryError::MetricsDisabled)?;
        let request = parse(kind, &params, now_ns() / 1_000_000)?;
        let start = request.end_ms.saturating_sub(request.lookback_ms);
        let times: Vec<u64> = (start..=request.end_ms)
            .step_by(usize::try_from(request.step_ms).unwrap_or(usize::MAX))
            .collect();
        let windows: Vec<(u64, u64)> = times
            .iter()
            .map(|t| ((t.saturating_sub(request.rate_per_ms)) / 1000, t / 1000))
            .collect();
        let rows = derived
            .spm_windows(&request.services, &request.kinds, &windows)
            .unwrap_or_default();
        Ok::<_, QueryError>(build(kind, &request, rows, &times))
    })();
    match result {
        Ok(body) => json_response(StatusCode::OK, &body, pretty),
        Err(e) => super::v1::error(&e, pretty),
    }
}

/// `GET /api/metrics/calls`.
pub(super) async fn calls(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    handle(Kind::Calls, state, q).await
}

/// `GET /api/metrics/errors`.
pub(super) async fn errors(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    handle(Kind::Errors, state, q).await
}

/// `GET /api/metrics/latencies`.
pub(super) async fn latencies(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    handle(Kind::Latencies, state, q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q))
    }

    #[test]
    fn defaults_and_grammar() {
        let r = parse(Kind::Calls, &params("service=a,b&service=c"), 7_200_000).unwrap();
        assert_eq!(r.services, ["a", "b", "c"]);
        assert_eq!(r.kinds, [SpanKind::Server]);
        assert_eq!(
            (r.end_ms, r.lookback_ms, r.step_ms, r.rate_per_ms),
            (7_200_000, 3_600_000, 5000, 600_000)
        );
        let r = parse(
            Kind::Latencies,
            &params("service=a&quantile=0.95&groupByOperation=true&spanKind=client&spanKind=SPAN_KIND_SERVER&endTs=1000&lookback=60000&step=60000&ratePer=60000"),
            0,
        )
        .unwrap();
        assert_eq!(r.kinds, [SpanKind::Client, SpanKind::Server]);
        assert!(r.group_by_operation);
        assert!((r.quantile - 0.95).abs() < f64::EPSILON);
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            (Kind::Calls, "", "parameter 'service' is required"),
            (
                Kind::Latencies,
                "service=a",
                "parameter 'quantile' is required",
            ),
            (Kind::Latencies, "service=a&quantile=1.5", "quantile"),
            (Kind::Calls, "service=a&spanKind=sideways", "spanKind"),
            (Kind::Calls, "service=a&step=0", "step"),
            (Kind::Calls, "service=a&lookback=x", "lookback"),
            (
                Kind::Calls,
                "service=a&groupByOperation=maybe",
                "groupByOperation",
            ),
            (Kind::Calls, "service=a&lookback=86400000&step=1", "step"),
        ];
        for (kind, q, expected) in cases {
            let e = parse(kind, &params(q), 0).unwrap_err().to_string();
            assert!(e.contains(expected), "{q}: {e}");
        }
    }

    #[test]
    fn calls_errors_and_latencies_from_windows() {
        let mut w = Window {
            calls: 120,
            errors: 30,
            ..Window::default()
        };
        w.buckets[0] = 120;
        let request = parse(
            Kind::Latencies,
            &params("service=a&quantile=0.5&ratePer=60000"),
            0,
        )
        .unwrap();
        let rows = vec![
            (
                "a".to_owned(),
                "GET /x".to_owned(),
                vec![w, Window::default()],
            ),
            (
                "a".to_owned(),
                "GET /y".to_owned(),
                vec![w, Window::default()],
            ),
        ];
        let body = build(Kind::Calls, &request, rows.clone(), &[0, 60_000]);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["name"], "service_call_rate");
        assert_eq!(json["type"], "GAUGE");
        let points = &json["metrics"][0]["metricPoints"];
        assert_eq!(
            points[0]["gaugeValue"]["doubleValue"], 4.0,
            "240 calls / 60 s"
        );
        assert_eq!(points[0]["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(points[1]["gaugeValue"]["doubleValue"], 0.0);
        let errors =
            serde_json::to_value(build(Kind::Errors, &request, rows.clone(), &[0, 1])).unwrap();
        assert_eq!(
            errors["metrics"][0]["metricPoints"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "no error-rate point without calls"
        );
        assert_eq!(
            errors["metrics"][0]["metricPoints"][0]["gaugeValue"]["doubleValue"],
            0.25
        );
        let latencies =
            serde_json::to_value(build(Kind::Latencies, &request, rows, &[0, 1])).unwrap();
        assert_eq!(
            latencies["help"],
            "0.50th quantile latency, grouped by service"
        );
        assert_eq!(
            latencies["metrics"][0]["metricPoints"][0]["gaugeValue"]["doubleValue"],
            1.0
        );
    }
}
