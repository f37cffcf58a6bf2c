//! Every metric and label a dashboard query names is one the code defines (dashboards.md R20,
//! issue 5): the names come from the constants in `tracelight::metrics::names`,
//! `tracelight_collector::{metrics, forward::metrics, derived::names}` and `shop::names`, so a
//! rename in the code fails here instead of silently emptying panels.
#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tracelight::metrics::names as lib;
use tracelight_collector::derived::names as derived;
use tracelight_collector::forward::metrics as forward;
use tracelight_collector::metrics as collector;
use tracelight_dashboards::dashboard::{Dashboard, load_all};
use tracelight_dashboards::promql::{self, Usage};
use tracelight_dashboards::{dashboards_dir, yaml};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric family the code defines, with its kind and the dashboard expected to show it.
fn catalogue() -> Vec<(&'static str, Kind, &'static str)> {
    use Kind::{Counter, Gauge, Histogram};
    let mut families = vec![
        (
            lib::HTTP_SERVER_REQUEST_DURATION,
            Histogram,
            "service-red.json",
        ),
        (lib::HTTP_SERVER_ACTIVE_REQUESTS, Gauge, "service-red.json"),
        (
            lib::HTTP_CLIENT_REQUEST_DURATION,
            Histogram,
            "service-red.json",
        ),
        (lib::SPANS_EXPORTED, Counter, "service-red.json"),
        (lib::SPANS_EXPORT_FAILED, Counter, "service-red.json"),
        (collector::SPANS_RECEIVED, Counter, "collector.json"),
        (collector::SPANS_ACCEPTED, Counter, "collector.json"),
        (collector::SPANS_REFUSED, Counter, "collector.json"),
        (collector::REQUESTS_REFUSED, Counter, "collector.json"),
        (collector::STORE_SPANS, Gauge, "collector.json"),
        (collector::STORE_TRACES, Gauge, "collector.json"),
        (collector::STORE_BYTES, Gauge, "collector.json"),
        (collector::STORE_WAL_COMMITS, Counter, "collector.json"),
        (collector::PIPELINE_QUEUED_BATCHES, Gauge, "collector.json"),
        (collector::INGEST_DURATION, Histogram, "collector.json"),
        (collector::STORE_WRITE_DURATION, Histogram, "collector.json"),
        (collector::QUERY_DURATION, Histogram, "collector.json"),
        (forward::QUEUE_SPANS, Gauge, "collector.json"),
        (forward::QUEUE_BYTES, Gauge, "collector.json"),
        (forward::QUEUE_DISK_BYTES, Gauge, "collector.json"),
        (forward::QUEUE_OLDEST_AGE, Gauge, "collector.json"),
        (forward::SENT_SPANS, Counter, "collector.json"),
        (forward::RETRIED_SPANS, Counter, "collector.json"),
        (forward::FAILED_SPANS, Counter, "collector.json"),
        (forward::REFUSED_SPANS, Counter, "collector.json"),
        (derived::OVERFLOW_SPANS, Counter, "collector.json"),
        (derived::DERIVED_SERIES, Gauge, "collector.json"),
        (derived::EXPIRED_SERIES, Counter, "collector.json"),
        (derived::SKIPPED_SPANS, Counter, "collector.json"),
        (derived::SPAN_CALLS, Counter, "span-metrics.json"),
        (derived::SPAN_DURATION, Histogram, "span-metrics.json"),
        (derived::GRAPH_REQUESTS, Counter, "service-graph.json"),
        (derived::GRAPH_FAILED, Counter, "service-graph.json"),
        (
            derived::GRAPH_SERVER_SECONDS,
            Histogram,
            "service-graph.json",
        ),
        (
            derived::GRAPH_CLIENT_SECONDS,
            Histogram,
            "service-graph.json",
        ),
        // Producer → consumer edges: nothing in this repository produces messaging spans, so a
        // panel would stay empty (and fail the end-to-end check); known, not shown.
        (derived::GRAPH_MESSAGING_SECONDS, Histogram, ""),
        (derived::GRAPH_UNPAIRED, Counter, "service-graph.json"),
        (derived::GRAPH_DROPPED, Counter, "service-graph.json"),
    ];
    for name in shop::names::ALL {
        let kind = if name.ends_with("_total") {
            Counter
        } else {
            Gauge
        };
        families.push((name, kind, "shop.json"));
    }
    families
}

/// Series name → (family, kind): histograms expand to `_bucket`, `_sum`, `_count`.
fn series() -> BTreeMap<String, (&'static str, Kind)> {
    let mut out = BTreeMap::new();
    for (family, kind, _) in catalogue() {
        if kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{family}{suffix}"), (family, kind));
            }
        } else {
            out.insert(family.to_owned(), (family, kind));
        }
    }
    out
}

/// Label keys the code defines; the collector's own labels are literals in its renderers.
fn labels() -> BTreeSet<&'static str> {
    let mut out: BTreeSet<&'static str> = [
        lib::LABEL_SERVICE_NAME,
        lib::LABEL_HTTP_REQUEST_METHOD,
        lib::LABEL_HTTP_ROUTE,
        lib::LABEL_HTTP_RESPONSE_STATUS_CODE,
        lib::LABEL_URL_SCHEME,
        lib::LABEL_ERROR_TYPE,
        lib::LABEL_SERVER_ADDRESS,
        lib::LABEL_SERVER_PORT,
        derived::LABEL_SERVICE,
        derived::LABEL_SPAN_NAME,
        derived::LABEL_SPAN_KIND,
        derived::LABEL_STATUS,
        derived::LABEL_CLIENT,
        derived::LABEL_SERVER,
        derived::LABEL_CONNECTION_TYPE,
        derived::LABEL_OVERFLOW,
        derived::LABEL_METRIC,
        shop::names::LABEL_SAGA,
        shop::names::LABEL_OUTCOME,
        shop::names::LABEL_STEP,
        shop::names::LABEL_RESULT,
        shop::names::LABEL_BREAKER,
        shop::names::LABEL_STATE,
        shop::names::LABEL_FROM,
        shop::names::LABEL_TO,
        shop::names::LABEL_TARGET,
        shop::names::LABEL_PART,
        shop::names::LABEL_REASON,
        shop::names::LABEL_FAULT,
    ]
    .into();
    out.extend([
        tracelight_collector::metrics::LABEL_PROTOCOL,
        tracelight_collector::metrics::LABEL_REASON,
        tracelight_collector::metrics::LABEL_ROUTE,
    ]);
    // forward/metrics.rs (`upstream`, a literal there); `le` of every histogram; `instance`
    // from the Prometheus scrape.
    out.extend(["upstream", "le", "instance"]);
    out
}

fn dashboards() -> Vec<Dashboard> {
    load_all(&dashboards_dir()).unwrap()
}

/// Every PromQL expression: (where, expression, the target if any).
fn expressions(dashboards: &[Dashboard]) -> Vec<(String, String, Option<Value>)> {
    let mut out = Vec::new();
    for d in dashboards {
        for t in d.targets() {
            if let Some(expr) = t.expr() {
                out.push((
                    format!("{} / {}", d.file, t.label()),
                    expr.to_owned(),
                    Some(t.target.clone()),
                ));
            }
        }
    }
    // The traces → metrics queries of the provisioned Jaeger data source.
    let path = dashboards_dir().join("provisioning/datasources/tracelight.yaml");
    for doc in yaml::load(&path).unwrap() {
        for ds in doc["datasources"].as_array().into_iter().flatten() {
            for q in ds["jsonData"]["tracesToMetrics"]["queries"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let expr = q["query"].as_str().unwrap().replace("$$", "$");
                out.push((
                    format!("datasource {} / {}", ds["name"], q["name"]),
                    expr,
                    None,
                ));
            }
        }
    }
    out
}

#[test]
fn every_metric_in_a_query_is_defined() {
    let known = series();
    let mut unknown = Vec::new();
    let mut seen = 0;
    for (place, expr, _) in expressions(&dashboards()) {
        let usage = promql::analyze(&expr);
        assert!(!usage.metrics.is_empty(), "{place}: no metric in {expr}");
        for m in usage.metrics {
            seen += 1;
            if !known.contains_key(&m.name) {
                unknown.push(format!("{place}: {}", m.name));
            }
        }
    }
    assert!(seen > 100, "only {seen} metric selectors found");
    assert!(
        unknown.is_empty(),
        "metrics the code does not define:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_variable_query_names_a_defined_metric_and_label() {
    let known = series();
    let labels = labels();
    for d in dashboards() {
        for v in d.variables() {
            if v["type"] != "query" {
                continue;
            }
            let query = v["query"].as_str().unwrap();
            let (usage, label) = promql::label_values(query).unwrap_or_else(|| {
                panic!("{}: ${}: not label_values(...): {query}", d.file, v["name"])
            });
            assert_eq!(
                usage.metrics.len(),
                1,
                "{}: ${}: R5: derive from one of our metrics: {query}",
                d.file,
                v["name"]
            );
            assert!(
                known.contains_key(&usage.metrics[0].name),
                "{}: ${}: unknown metric in {query}",
                d.file,
                v["name"]
            );
            assert!(
                labels.contains(label.as_str()),
                "{}: ${}: unknown label {label}",
                d.file,
                v["name"]
            );
        }
    }
}

#[test]
fn every_label_in_a_query_is_defined() {
    let labels = labels();
    let mut unknown = Vec::new();
    for (place, expr, _) in expressions(&dashboards()) {
        for label in promql::analyze(&expr).labels {
            if !labels.contains(label.as_str()) {
                unknown.push(format!("{place}: {label}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "labels the code does not define:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn rates_only_over_counters_and_quantiles_keep_le() {
    // dashboards.md R12: never rate() a gauge; keep `le` in the inner sum of a quantile;
    // `_bucket` series only through rate/increase.
    let known = series();
    for (place, expr, _) in expressions(&dashboards()) {
        let usage: Usage = promql::analyze(&expr);
        assert_eq!(
            usage.quantiles_without_le, 0,
            "{place}: histogram_quantile without le: {expr}"
        );
        for m in &usage.metrics {
            let Some((_, kind)) = known.get(&m.name) else {
                continue;
            };
            let rated = m
                .function
                .as_deref()
                .is_some_and(|f| promql::RATE_FUNCTIONS.contains(&f));
            match kind {
                Kind::Gauge => assert!(!rated, "{place}: rate of the gauge {}: {expr}", m.name),
                Kind::Counter | Kind::Histogram => {
                    assert!(
                        rated,
                        "{place}: {} used without rate/increase: {expr}",
                        m.name
                    );
                }
            }
            if m.name.ends_with("_bucket") {
                assert!(
                    expr.contains("histogram_quantile(") || expr.contains("(le)"),
                    "{place}: buckets outside a quantile or heatmap: {expr}"
                );
            }
        }
    }
}

#[test]
fn latency_units_match_the_histogram_unit() {
    // Seconds histograms are shown in `s`, the span-metrics histogram in `ms` (R10, R12).
    for d in dashboards() {
        for panel in d.panels() {
            let unit = panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or("");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                if !expr.starts_with("histogram_quantile(") {
                    continue;
                }
                let want = if expr.contains("_milliseconds_bucket") {
                    "ms"
                } else {
                    "s"
                };
                let unit = if panel["type"] == "table" {
                    // The column's override, named after the target's legend.
                    let column = target["legendFormat"].as_str().unwrap();
                    panel["fieldConfig"]["overrides"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|o| o["matcher"]["options"] == column)
                        .and_then(|o| o["properties"][0]["value"].as_str())
                        .unwrap_or("")
                } else {
                    unit
                };
                assert_eq!(unit, want, "{} / {}: {expr}", d.file, panel["title"]);
            }
        }
    }
}

#[test]
fn every_defined_metric_is_on_its_dashboard() {
    let dashboards = dashboards();
    for (family, _, file) in catalogue() {
        if file.is_empty() {
            continue;
        }
        let d = dashboards
            .iter()
            .find(|d| d.file == file)
            .unwrap_or_else(|| panic!("no {file}"));
        let used = d.targets().iter().filter_map(|t| t.expr()).any(|expr| {
            promql::analyze(expr).metrics.iter().any(|m| {
                m.name == family
                    || m.name
                        .strip_prefix(family)
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
            })
        });
        assert!(used, "{family} is on no panel of {file}");
    }
}
