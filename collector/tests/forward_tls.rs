//! Forwarding over TLS (rustls) to `https://` upstreams on loopback: the testkit receiver
//! serves OTLP/gRPC and OTLP/HTTP with a self-signed certificate. Trusted through `ca_file`,
//! every span arrives, gzip-compressed and with the configured headers; without it the handshake fails, nothing is delivered, and the batch
//! stays queued and is retried rather than dropped.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::time::Duration;

use harness::{TestCollector, fixture_request};
use tracelight_collector::forward::metrics::{QUEUE_SPANS, RETRIED_SPANS, SENT_SPANS};
use tracelight_testkit::otlp_server::OtlpReceiver;

/// Spans in [`fixture_request`].
const FIXTURE_SPANS: usize = 4;

async fn forwarder(
    dir: &std::path::Path,
    endpoint: String,
    ca_file: Option<PathBuf>,
) -> TestCollector {
    let dir = dir.to_owned();
    TestCollector::start(move |c| {
        c.storage.data_dir = dir;
        c.forwarding.endpoints = vec![endpoint];
        c.forwarding.ca_file = ca_file;
        c.forwarding.headers = [("x-tenant".to_owned(), "acme".to_owned())].into();
        c.forwarding.retry_initial_interval_ms = 10;
        c.forwarding.retry_max_interval_ms = 50;
    })
    .await
}

async fn send_fixture(c: &TestCollector) {
    assert_eq!(c.post_otlp(&fixture_request()).await, 200);
}

/// The sum of `series` over its label sets (one per upstream).
fn sum_series(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls the admin exposition until `series` (summed over upstream labels) satisfies `done`.
async fn wait_for(c: &TestCollector, series: &str, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = c.admin("/metrics").await;
        let v = sum_series(&text, series);
        if done(v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stuck at {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_tls_upstreams_receive_every_span() {
    let upstream = OtlpReceiver::start_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, upstream.tls_ca_pem().unwrap()).unwrap();
    for endpoint in [upstream.grpc_endpoint(), upstream.http_traces_url()] {
        assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
        upstream.clear();
        let data = tempfile::tempdir().unwrap();
        let c = forwarder(data.path(), endpoint.clone(), Some(ca.clone())).await;
        send_fixture(&c).await;
        let spans = upstream
            .wait_for_spans(FIXTURE_SPANS, Duration::from_secs(30))
            .await;
        assert_eq!(spans.len(), FIXTURE_SPANS, "over {endpoint}");
        // Configured headers and gzip (the default) reach the upstream.
        let request = upstream.requests().remove(0);
        assert_eq!(request.headers["x-tenant"], "acme", "over {endpoint}");
        let encoding = request
            .headers
            .get("grpc-encoding")
            .or_else(|| request.headers.get("content-encoding"));
        assert_eq!(encoding.unwrap(), "gzip", "over {endpoint}");
        wait_for(&c, SENT_SPANS, |v| v >= FIXTURE_SPANS as f64).await;
        c.stop().await;
    }
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_delivers_nothing_and_keeps_the_batch() {
    let upstream = OtlpReceiver::start_tls().await;
    let data = tempfile::tempdir().unwrap();
    let c = forwarder(data.path(), upstream.grpc_endpoint(), None).await;
    send_fixture(&c).await;
    // Several failed handshakes later the spans are still queued, none sent.
    wait_for(&c, RETRIED_SPANS, |v| v >= 3.0 * FIXTURE_SPANS as f64).await;
    let (_, text) = c.admin("/metrics").await;
    assert_eq!(sum_series(&text, SENT_SPANS), 0.0);
    assert_eq!(
        sum_series(&text, QUEUE_SPANS),
        FIXTURE_SPANS as f64,
        "{text}"
    );
    assert!(upstream.requests().is_empty(), "no request got through TLS");
    c.stop().await;
    upstream.shutdown().await;
}
