//! The `/metrics` exposition after a scripted sequence of requests, pinned by a golden file.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/app.rs"]
mod app;

use axum::Router;
use axum::http;
use axum::routing::get;
use tracelight_testkit::{LogCapture, TestServer, assert_golden};

/// Makes the exposition deterministic: durations become `<sum>`, bucket counts `<n>` (checked
/// separately for consistency with `_count`), and series, which the exporter renders in hash
/// order, are sorted by label set.
fn normalise(exposition: &str) -> String {
    let mut families: Vec<String> = exposition
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|family| {
            let (comments, mut series): (Vec<&str>, Vec<&str>) =
                family.lines().partition(|l| l.starts_with('#'));
            // Stable sort by label set: a histogram's buckets, sum and count stay together.
            series.sort_by_key(|line| label_set(line));
            normalise_family(&comments, &series)
        })
        .collect();
    families.sort();
    families.join("\n")
}

/// The labels of a series line without `le`, e.g. `service_name="a",http_route="/x"`.
fn label_set(line: &str) -> String {
    let labels = line.split_once('{').map_or("", |(_, rest)| rest);
    let labels = labels.rsplit_once('}').map_or(labels, |(l, _)| l);
    labels.split(",le=").next().unwrap_or_default().to_owned()
}

fn normalise_family(comments: &[&str], series: &[&str]) -> String {
    let mut out = String::new();
    for line in comments.iter().chain(series) {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else if let Some((series, value)) = line.rsplit_once(' ') {
            let name = series.split('{').next().unwrap_or(series);
            if name.ends_with("_sum") {
                out.push_str(&format!("{series} <sum>"));
            } else if name.ends_with("_bucket") && !series.contains("le=\"+Inf\"") {
                out.push_str(&format!("{series} <n>"));
            } else {
                out.push_str(&format!("{series} {value}"));
            }
        }
        out.push('\n');
    }
    out
}

/// Every histogram's buckets are cumulative and end at `_count`.
fn assert_histograms_consistent(exposition: &str) {
    let mut last: Option<(String, f64)> = None;
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap();
        if series.contains("_bucket{") {
            let key = series.split(",le=").next().unwrap().to_owned();
            if let Some((k, prev)) = &last
                && *k == key
            {
                assert!(value >= *prev, "buckets not cumulative at {line}");
            }
            last = Some((key, value));
        } else if series.contains("_count{") {
            let (key, inf) = last.take().expect("buckets before count");
            assert_eq!(
                key.replace("_bucket{", "_count{") + "}",
                series,
                "count follows its buckets"
            );
            assert_eq!(inf, value, "+Inf bucket equals count for {series}");
        }
    }
}

#[tokio::test]
async fn exposition_after_scripted_requests() {
    let logs = LogCapture::new();
    let telemetry = app::telemetry_without_export(&logs);
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let api = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/boom",
            get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
        );
    let app = Router::new()
        .nest("/api", api)
        .merge(telemetry.routes())
        .layer(telemetry.layer());
    let server = TestServer::spawn(app).await;
    let client = reqwest::Client::new();
    let send = |method: &str, path: &str| {
        client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                server.url(path),
            )
            .send()
    };

    assert_eq!(send("GET", "/api/users/1").await.unwrap().status(), 200);
    assert_eq!(send("GET", "/api/users/2").await.unwrap().status(), 200);
    // Raw paths never become labels: two different unmatched paths, one series.
    assert_eq!(
        send("GET", "/wp-admin/login.php").await.unwrap().status(),
        404
    );
    assert_eq!(send("GET", "/random/123").await.unwrap().status(), 404);
    assert_eq!(send("GET", "/api/boom").await.unwrap().status(), 500);
    // A non-standard method: `_OTHER`, and axum answers 405 for the matched route.
    assert_eq!(send("PURGE", "/api/users/1").await.unwrap().status(), 405);
    // Excluded from metrics by default.
    assert_eq!(send("GET", "/health").await.unwrap().status(), 200);

    let body = send("GET", "/metrics").await.unwrap();
    assert_eq!(
        body.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let exposition = body.text().await.unwrap();
    assert_histograms_consistent(&exposition);
    assert_golden(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/red_metrics.txt"),
        &normalise(&exposition),
    );
}
