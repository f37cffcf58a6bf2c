//! Forwarding: two real collector processes (A forwards to B) through an outage of B and a
//! SIGKILL of A; and in-process collectors against the testkit receiver for permanent
//! rejections, server-given retry delays and a full queue. Deadlines bound every wait; nothing
//! asserts on elapsed time.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/process.rs"]
mod process;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use harness::{TestCollector, fixture_request, metric_value};
use process::{CollectorProcess, Load, listen_args, stored_span_count};
use tokio::time::Instant;
use tracelight_loadgen::payload::build_request;
use tracelight_testkit::otlp_server::{Behavior, OtlpReceiver};

const SENDERS: u64 = 4;
const SPANS_PER_REQUEST: usize = 40;
/// A's forwarding settings in the process tests (small, so the bound below is tight).
const MAX_IN_FLIGHT: usize = 2;
const MAX_BATCH_SPANS: usize = 400;

/// B: the upstream, with the durable store. `ports` pins its OTLP ports for a restart.
fn spawn_b(dir: &Path, ports: Option<(&str, &str)>) -> CollectorProcess {
    let (grpc, http) = ports.unwrap_or(("127.0.0.1:0", "127.0.0.1:0"));
    let mut args = vec![
        "--storage".to_owned(),
        "embedded".to_owned(),
        "--data-dir".to_owned(),
        dir.display().to_string(),
    ];
    args.extend(listen_args(grpc, http));
    CollectorProcess::spawn_with(&args, &[])
}

/// A: agent mode (no local store), forwarding to `upstream` over gRPC.
fn spawn_a(dir: &Path, upstream: &str) -> CollectorProcess {
    let mut args = vec![
        "--storage".to_owned(),
        "none".to_owned(),
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--forward".to_owned(),
        upstream.to_owned(),
    ];
    args.extend(listen_args("127.0.0.1:0", "127.0.0.1:0"));
    CollectorProcess::spawn_with(
        &args,
        &[
            (
                "TRACELIGHT_FORWARDING_RETRY_INITIAL_INTERVAL_MS",
                "50".to_owned(),
            ),
            (
                "TRACELIGHT_FORWARDING_RETRY_MAX_INTERVAL_MS",
                "300".to_owned(),
            ),
            ("TRACELIGHT_FORWARDING_TIMEOUT_SECONDS", "5".to_owned()),
            (
                "TRACELIGHT_FORWARDING_MAX_IN_FLIGHT",
                MAX_IN_FLIGHT.to_string(),
            ),
            (
                "TRACELIGHT_FORWARDING_MAX_BATCH_SPANS",
                MAX_BATCH_SPANS.to_string(),
            ),
        ],
    )
}

/// Polls B's Jaeger API until every acknowledged trace has all its spans; returns what is
/// still missing at the deadline.
async fn missing_in_b(b_query: &str, acked: &[HashMap<String, usize>]) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut todo: HashMap<String, usize> = HashMap::new();
    for traces in acked {
        for (id, n) in traces {
            *todo.entry(id.clone()).or_default() += n;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut still = HashMap::new();
        for (id, n) in todo {
            let found = stored_span_count(&client, b_query, &id).await;
            if found < n {
                still.insert(id, n);
            }
        }
        if still.is_empty() || Instant::now() > deadline {
            return still
                .into_iter()
                .map(|(id, n)| format!("{id}: {n} spans"))
                .collect();
        }
        todo = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metric(admin: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_value(&text, series)
}

fn spans(acked: &[HashMap<String, usize>]) -> usize {
    acked.iter().flat_map(HashMap::values).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_outage_loses_nothing() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut b = spawn_b(dir_b.path(), None);
    let (b_grpc, b_http) = (b.addr("otlp_grpc"), b.addr("otlp_http"));
    let mut a = spawn_a(dir_a.path(), &format!("http://{b_grpc}"));
    let load = Load::start_with(SENDERS, SPANS_PER_REQUEST, &a.url("otlp_http"), 1);

    load.wait_acked(30).await;
    b.kill(); // B goes away mid-stream
    let during = load.acked();
    load.wait_acked(during + 60).await; // A keeps accepting: its queue holds the spans
    let queued = metric(
        &a.url("admin"),
        &format!(
            "tracelight_collector_forward_queue_spans{{upstream=\"{}\"}}",
            b_grpc.replace(['.', ':'], "_")
        ),
    )
    .await;
    assert!(queued > 0.0, "A's queue should hold spans while B is down");
    let mut b = spawn_b(dir_b.path(), Some((&b_grpc, &b_http))); // same data dir, same ports
    let after = load.acked();
    load.wait_acked(after + 30).await;
    let acked = load.stop().await;

    let missing = missing_in_b(&b.url("query"), &acked).await;
    a.kill();
    b.kill();
    assert!(
        missing.is_empty(),
        "{} acknowledged traces incomplete in B: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_forwarder_loses_nothing_and_duplicates_are_bounded() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut b = spawn_b(dir_b.path(), None);
    let upstream = format!("http://{}", b.addr("otlp_grpc"));
    let mut a = spawn_a(dir_a.path(), &upstream);
    let load = Load::start_with(SENDERS, SPANS_PER_REQUEST, &a.url("otlp_http"), 2);
    load.wait_acked(150).await;
    a.kill(); // mid-stream: requests in flight to B, records not yet acknowledged
    let acked = load.stop().await;
    // Restart A on the same directory: it resends what B had not acknowledged.
    let mut a = spawn_a(dir_a.path(), &upstream);
    let missing = missing_in_b(&b.url("query"), &acked).await;
    assert!(
        missing.is_empty(),
        "{} acknowledged traces incomplete in B after SIGKILL of A: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Wait for A's queue to drain, then compare what B received with what A acknowledged.
    let label = upstream
        .trim_start_matches("http://")
        .replace(['.', ':'], "_");
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(
        &a.url("admin"),
        &format!("tracelight_collector_forward_queue_spans{{upstream=\"{label}\"}}"),
    )
    .await
        > 0.0
    {
        assert!(Instant::now() < deadline, "A's queue did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = metric(
        &b.url("admin"),
        "tracelight_collector_spans_accepted_total{protocol=\"grpc\"}",
    )
    .await as usize;
    a.kill();
    b.kill();
    let acked_spans = spans(&acked);
    // B received every acknowledged span, plus: spans of the client requests in flight at the
    // kill (queued by A but not yet answered: at most one request per client) and duplicates
    // (A's requests in flight to B whose acknowledgement A had not recorded).
    let bound =
        acked_spans + SENDERS as usize * SPANS_PER_REQUEST + MAX_IN_FLIGHT * MAX_BATCH_SPANS;
    eprintln!(
        "sigkill test: acknowledged {acked_spans} spans, B received {received} (extra {})",
        received.saturating_sub(acked_spans)
    );
    assert!(received >= acked_spans);
    assert!(
        received <= bound,
        "B received {received} spans for {acked_spans} acknowledged: more duplicates than the bound {bound}"
    );
}

/// An in-process collector with a data directory of its own, forwarding to `endpoints`.
async fn forwarder(
    dir: &Path,
    endpoints: &[String],
    tweak: impl FnOnce(&mut tracelight_collector::config::Config),
) -> TestCollector {
    let endpoints = endpoints.to_vec();
    let dir = dir.to_owned();
    TestCollector::start(move |c| {
        c.storage.data_dir = dir;
        c.forwarding.endpoints = endpoints;
        c.forwarding.retry_initial_interval_ms = 10;
        c.forwarding.retry_max_interval_ms = 50;
        tweak(c);
    })
    .await
}

/// Polls an admin metric until `done` holds for it.
async fn wait_metric(collector: &TestCollector, series: &str, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = collector.admin("/metrics").await;
        let v = metric_value(&text, series);
        if done(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{series} stuck at {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn label(endpoint: &str) -> String {
    tracelight_collector::forward::config::label(endpoint)
}

/// Waits until A's queue for the upstream labelled `l` is empty, then reads A's
/// `tracelight_collector_forward_<counter>_total` for that upstream.
async fn counter_once_drained(a: &TestCollector, l: &str, counter: &str) -> f64 {
    wait_metric(
        a,
        &format!("tracelight_collector_forward_queue_spans{{upstream=\"{l}\"}}"),
        |v| v == 0.0,
    )
    .await;
    let (_, text) = a.admin("/metrics").await;
    metric_value(
        &text,
        &format!("tracelight_collector_forward_{counter}_total{{upstream=\"{l}\"}}"),
    )
}

#[tokio::test]
async fn permanent_rejection_is_counted_and_dropped_not_retried() {
    let upstream = OtlpReceiver::start().await;
    upstream.set_behavior(Behavior::Reject);
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [upstream.grpc_endpoint(), upstream.http_traces_url()];
    let a = forwarder(dir.path(), &endpoints, |_| {}).await;
    assert_eq!(a.post_otlp(&fixture_request()).await, 200);
    for e in &endpoints {
        let l = label(e);
        let failed = wait_metric(
            &a,
            &format!("tracelight_collector_forward_failed_spans_total{{upstream=\"{l}\"}}"),
            |v| v > 0.0,
        )
        .await;
        assert_eq!(failed, 4.0);
        let retried = counter_once_drained(&a, &l, "retried_spans").await;
        assert_eq!(retried, 0.0, "a permanent rejection must not be retried");
    }
    // One request per upstream: gRPC and HTTP, each refused once.
    assert_eq!(upstream.requests().len(), 2);
    a.stop().await;
}

#[tokio::test]
async fn server_retry_delay_is_honoured() {
    let upstream = OtlpReceiver::start().await;
    upstream.set_behavior(Behavior::Throttle(Duration::from_secs(1)));
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [upstream.grpc_endpoint(), upstream.http_traces_url()];
    // A computed backoff of 10 minutes: only the server's 1 s delay lets the spans through
    // within the deadline below.
    let a = forwarder(dir.path(), &endpoints, |c| {
        c.forwarding.retry_initial_interval_ms = 600_000;
        c.forwarding.retry_max_interval_ms = 600_000;
    })
    .await;
    assert_eq!(a.post_otlp(&fixture_request()).await, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while upstream.requests().len() < 2 {
        assert!(Instant::now() < deadline, "no export attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    upstream.set_behavior(Behavior::Accept);
    let spans = upstream.wait_for_spans(8, Duration::from_secs(30)).await;
    assert_eq!(
        spans.len(),
        8,
        "both upstreams got the 4 spans after the server's delay"
    );
    for e in &endpoints {
        let (_, text) = a.admin("/metrics").await;
        let l = label(e);
        assert!(
            metric_value(
                &text,
                &format!("tracelight_collector_forward_retried_spans_total{{upstream=\"{l}\"}}")
            ) >= 4.0
        );
        wait_metric(
            &a,
            &format!("tracelight_collector_forward_sent_spans_total{{upstream=\"{l}\"}}"),
            |v| v == 4.0,
        )
        .await;
    }
    a.stop().await;
}

/// A request waiting out a long computed backoff goes again as soon as the upstream accepts
/// another one: the oldest records hold the acknowledged prefix (the cursor, the segments on
/// disk, the queue depth), so they must not wait out a backoff grown during the outage.
#[tokio::test]
async fn a_waiting_retry_goes_once_the_upstream_accepts_again() {
    let upstream = OtlpReceiver::start().await;
    upstream.set_behavior(Behavior::Unavailable);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = upstream.grpc_endpoint();
    // A computed backoff of 10 minutes: only the wake-up lets the first request through
    // within the deadlines below.
    let a = forwarder(dir.path(), std::slice::from_ref(&endpoint), |c| {
        c.forwarding.retry_initial_interval_ms = 600_000;
        c.forwarding.retry_max_interval_ms = 600_000;
        c.forwarding.max_in_flight = 2;
        c.forwarding.max_batch_spans = 4;
    })
    .await;
    assert_eq!(a.post_otlp(&fixture_request()).await, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while upstream.requests().is_empty() {
        assert!(Instant::now() < deadline, "no export attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first request was refused and waits; the upstream is back; a second one is sent
    // (4 spans out of a window of 2 × 4) and accepted, which wakes the first.
    upstream.set_behavior(Behavior::Accept);
    assert_eq!(a.post_otlp(&fixture_request()).await, 200);
    let l = label(&endpoint);
    let sent = counter_once_drained(&a, &l, "sent_spans").await;
    assert_eq!(sent, 8.0);
    let accepted = upstream.requests().iter().filter(|r| r.accepted).count();
    assert_eq!(accepted, 2, "each request accepted once");
    a.stop().await;
}

#[tokio::test]
async fn full_queue_pushes_back_with_503() {
    let upstream = OtlpReceiver::start().await;
    upstream.set_behavior(Behavior::Unavailable);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = upstream.grpc_endpoint();
    let a = forwarder(dir.path(), std::slice::from_ref(&endpoint), |c| {
        c.forwarding.max_queue_bytes = 1 << 20; // the minimum
    })
    .await;
    let now = tracelight_loadgen::pool::now_unix_nanos();
    let mut accepted = 0u32;
    let mut status = 200;
    for i in 0..100 {
        status = a.post_otlp(&build_request(500, i, now)).await;
        if status != 200 {
            break;
        }
        accepted += 1;
    }
    assert_eq!(
        status, 503,
        "a full queue answers 503 (Retry-After) instead of dropping"
    );
    assert!(accepted > 0);
    let (_, text) = a.admin("/metrics").await;
    let l = label(&endpoint);
    assert!(
        metric_value(
            &text,
            &format!("tracelight_collector_forward_refused_spans_total{{upstream=\"{l}\"}}")
        ) >= 500.0
    );
    assert_eq!(
        metric_value(
            &text,
            &format!("tracelight_collector_forward_queue_spans{{upstream=\"{l}\"}}")
        ),
        f64::from(accepted) * 500.0,
        "every accepted span is queued"
    );
    // The upstream recovers: the queue drains and ingest is accepted again. Admission looks at
    // the segment files' bytes, which fall only once the acknowledged segments are deleted,
    // a moment after the queue's span count reached 0.
    upstream.set_behavior(Behavior::Accept);
    wait_metric(
        &a,
        &format!("tracelight_collector_forward_queue_spans{{upstream=\"{l}\"}}"),
        |v| v == 0.0,
    )
    .await;
    wait_metric(
        &a,
        &format!("tracelight_collector_forward_queue_disk_bytes{{upstream=\"{l}\"}}"),
        |v| v < f64::from(1u32 << 20),
    )
    .await;
    assert_eq!(a.post_otlp(&build_request(500, 1000, now)).await, 200);
    a.stop().await;
}

/// A request with an invalid span gets a partial success; the valid spans are stored and
/// forwarded (re-encoded without the invalid one), the invalid one goes nowhere.
#[tokio::test]
async fn only_the_valid_spans_of_a_partial_request_are_forwarded() {
    let upstream = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = forwarder(dir.path(), &[upstream.grpc_endpoint()], |_| {}).await;
    let mut request = fixture_request();
    let valid: Vec<String> = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.clone())
        .collect();
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    let mut invalid = spans[0].clone();
    invalid.trace_id = vec![0; 16];
    invalid.name = "invalid".into();
    spans.push(invalid);
    assert_eq!(a.post_otlp(&request).await, 200);
    let got = upstream
        .wait_for_spans(valid.len(), Duration::from_secs(30))
        .await;
    let mut names: Vec<String> = got.iter().map(|s| s.span.name.clone()).collect();
    names.sort();
    let mut want = valid;
    want.sort();
    assert_eq!(names, want);
    a.stop().await;
}

/// An upstream that answers its first `bad` gRPC exports with a `grpc-status-details-bin`
/// that is not base64 (tonic's client panics reading it), then accepts.
async fn misbehaving_grpc_upstream(bad: usize) -> String {
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let seen = Arc::clone(&seen);
                async move {
                    use http_body_util::BodyExt as _;
                    let _ = request.into_body().collect().await;
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let response =
                        hyper::Response::builder().header("content-type", "application/grpc");
                    type Frames =
                        Vec<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>;
                    let response = if n < bad {
                        // Trailers-only: the status is in the headers.
                        let frames: Frames = Vec::new();
                        response
                            .header("grpc-status", "14")
                            .header("grpc-status-details-bin", "@@not base64@@")
                            .body(http_body_util::StreamBody::new(futures_util::stream::iter(
                                frames,
                            )))
                    } else {
                        // One empty `ExportTraceServiceResponse`, then status OK.
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        let frames: Frames = vec![
                            Ok(hyper::body::Frame::data(bytes::Bytes::from_static(&[0; 5]))),
                            Ok(hyper::body::Frame::trailers(trailers)),
                        ];
                        response.body(http_body_util::StreamBody::new(futures_util::stream::iter(
                            frames,
                        )))
                    };
                    Ok::<_, std::convert::Infallible>(response.unwrap())
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// A malformed answer from the upstream is a failed attempt, retried; it never stops the
/// sender (tonic's client panics on it).
#[tokio::test]
async fn a_malformed_upstream_answer_is_retried_not_fatal() {
    let upstream = misbehaving_grpc_upstream(2).await;
    let dir = tempfile::tempdir().unwrap();
    let a = forwarder(dir.path(), std::slice::from_ref(&upstream), |_| {}).await;
    assert_eq!(a.post_otlp(&fixture_request()).await, 200);
    let l = label(&upstream);
    let retried = wait_metric(
        &a,
        &format!("tracelight_collector_forward_retried_spans_total{{upstream=\"{l}\"}}"),
        |v| v > 0.0,
    )
    .await;
    assert!(retried > 0.0);
    wait_metric(
        &a,
        &format!("tracelight_collector_forward_sent_spans_total{{upstream=\"{l}\"}}"),
        |v| v > 0.0,
    )
    .await;
    a.stop().await;
}

#[tokio::test]
async fn zstd_forwarding_reaches_a_collector_over_grpc_and_http() {
    // B: a collector (memory store) whose gRPC and HTTP receivers accept zstd.
    let b = TestCollector::start(|_| {}).await;
    let endpoints = [b.grpc_url(), b.otlp_http_url()];
    let dir = tempfile::tempdir().unwrap();
    let a = forwarder(dir.path(), &endpoints, |c| {
        c.forwarding.compression = tracelight_collector::forward::config::Compression::Zstd;
    })
    .await;
    assert_eq!(a.post_otlp(&fixture_request()).await, 200);
    for (endpoint, protocol) in endpoints.iter().zip(["grpc", "http"]) {
        let l = label(endpoint);
        let sent = counter_once_drained(&a, &l, "sent_spans").await;
        assert_eq!(sent, 4.0, "{endpoint}");
        // B decoded the zstd bodies: the spans are accepted, none refused as undecodable.
        let accepted = wait_metric(
            &b,
            &format!("tracelight_collector_spans_accepted_total{{protocol=\"{protocol}\"}}"),
            |v| v >= 4.0,
        )
        .await;
        assert_eq!(accepted, 4.0, "{endpoint}");
    }
    a.stop().await;
    b.stop().await;
}
