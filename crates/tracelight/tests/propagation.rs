//! Context propagation in and out: inbound `traceparent`/B3, outgoing calls through the client
//! middleware, malformed headers, untrusted callers.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/app.rs"]
mod app;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use parking_lot::Mutex;
use tracelight::{InboundContext, LogFormat, PropagatorKind, Protocol, Sampler, Telemetry};
use tracelight_testkit::proto::tonic::trace::v1::span::SpanKind;
use tracelight_testkit::{LogCapture, OtlpReceiver, RecordedSpan, TestServer};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// Server B: records the headers it receives.
async fn stock(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
    seen.lock().push(headers);
    "in stock"
}

/// Server A: `/checkout` calls B twice through the traced client.
async fn checkout(
    State((client, b)): State<(reqwest_middleware::ClientWithMiddleware, String)>,
) -> String {
    let mut out = String::new();
    for _ in 0..2 {
        let r = client.get(format!("{b}/stock")).send().await;
        out.push_str(&r.map_or_else(|e| format!("error: {e}"), |r| r.status().to_string()));
    }
    out
}

struct Fixture {
    receiver: OtlpReceiver,
    telemetry: Telemetry,
    a: TestServer,
    /// Server B, kept serving for the whole test.
    _b: TestServer,
    seen: Seen,
}

async fn fixture(propagators: &[PropagatorKind], inbound: InboundContext) -> Fixture {
    let receiver = OtlpReceiver::start().await;
    let telemetry = tracelight::builder("shop")
        .endpoint(receiver.http_traces_url())
        .protocol(Protocol::HttpProtobuf)
        .sampler(Sampler::ParentBasedAlwaysOn)
        .propagators(propagators)
        .log_format(LogFormat::Json)
        .log_writer(LogCapture::new())
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap();
    let seen = Seen::default();
    let b = TestServer::spawn(
        Router::new()
            .route("/stock", get(stock))
            .with_state(seen.clone())
            .layer(telemetry.layer()),
    )
    .await;
    let a = TestServer::spawn(
        Router::new()
            .route("/checkout", get(checkout))
            .with_state((telemetry.http_client(), format!("http://{}", b.addr())))
            .merge(telemetry.routes())
            .layer(telemetry.layer_builder().inbound_context(inbound).build()),
    )
    .await;
    Fixture {
        receiver,
        telemetry,
        a,
        _b: b,
        seen,
    }
}

fn named<'a>(spans: &'a [RecordedSpan], name: &str, kind: SpanKind) -> Vec<&'a RecordedSpan> {
    spans
        .iter()
        .filter(|s| s.name() == name && s.kind() == kind)
        .collect()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn outgoing_calls_carry_the_client_span_as_parent() {
    let f = fixture(
        &[PropagatorKind::TraceContext, PropagatorKind::Baggage],
        InboundContext::Continue,
    )
    .await;
    let _default = tracing::dispatcher::set_default(f.telemetry.dispatch());

    let body = reqwest::Client::new()
        .get(f.a.url("/checkout"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("tracestate", "vendor1=a")
        .header("tracestate", "vendor2=b")
        .header("baggage", "tenant=acme")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "200 OK200 OK");
    let metrics = f.telemetry.metrics().render();
    let Fixture {
        receiver,
        telemetry,
        seen,
        ..
    } = f;
    telemetry.shutdown().await;
    let spans = receiver.wait_for_spans(5, Duration::from_secs(10)).await;

    let a_server = named(&spans, "GET /checkout", SpanKind::Server);
    let clients = named(&spans, "GET", SpanKind::Client);
    let b_servers = named(&spans, "GET /stock", SpanKind::Server);
    assert_eq!(
        (a_server.len(), clients.len(), b_servers.len()),
        (1, 2, 2),
        "{spans:#?}"
    );
    let a_server = a_server[0];
    assert_eq!(a_server.trace_id_hex(), TRACE_ID);
    assert_ne!(
        clients[0].span_id_hex(),
        clients[1].span_id_hex(),
        "one span per call"
    );

    let seen = seen.lock();
    assert_eq!(seen.len(), 2);
    for (headers, client) in seen.iter().zip(&clients) {
        assert_eq!(client.parent_span_id_hex(), Some(a_server.span_id_hex()));
        assert_eq!(
            client.attr("server.address").unwrap().as_str(),
            Some("127.0.0.1")
        );
        assert_eq!(
            client.attr("http.response.status_code").unwrap().as_int(),
            Some(200)
        );
        let tp = header(headers, "traceparent").expect("traceparent sent");
        let parent = &tp[36..52];
        assert!(
            tp.starts_with(&format!("00-{TRACE_ID}-")) && tp.ends_with("-01"),
            "{tp}"
        );
        assert!(
            clients.iter().any(|c| c.span_id_hex() == parent),
            "B's parent {parent} is a client span"
        );
        // tracestate: repeated inbound headers combined, carried on.
        assert_eq!(header(headers, "tracestate"), Some("vendor1=a,vendor2=b"));
        assert_eq!(header(headers, "baggage"), Some("tenant=acme"));
    }
    // B's server spans are children of the client spans.
    for b in &b_servers {
        let parent = b.parent_span_id_hex().unwrap();
        assert!(clients.iter().any(|c| c.span_id_hex() == parent));
    }
    assert!(
        metrics.contains("http_client_request_duration_seconds_count{service_name=\"shop\",http_request_method=\"GET\",server_address=\"127.0.0.1\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn malformed_or_duplicated_traceparent_starts_a_new_trace() {
    let f = fixture(&[PropagatorKind::TraceContext], InboundContext::Continue).await;
    let _default = tracing::dispatcher::set_default(f.telemetry.dispatch());
    let bad: &[&[&str]] = &[
        &["00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"], // uppercase
        &["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"], // version ff
        &["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"], // v00 trailing data
        &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"], // zero trace id
        &["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"], // zero parent id
        &["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"],    // truncated
        &[
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ], // duplicated
    ];
    let client = reqwest::Client::new();
    for values in bad {
        let mut req = client
            .get(f.a.url("/checkout"))
            .header("tracestate", "vendor=x");
        for v in *values {
            req = req.header("traceparent", *v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{values:?} is served normally");
        let tp = resp.headers()["traceparent"].to_str().unwrap().to_owned();
        assert!(
            !tp.contains(TRACE_ID),
            "{values:?} must not be continued: {tp}"
        );
    }
    let Fixture {
        receiver,
        telemetry,
        seen,
        ..
    } = f;
    telemetry.shutdown().await;
    assert_eq!(seen.lock().len(), bad.len() * 2, "every call reached B");
    for headers in seen.lock().iter() {
        // tracestate is ignored when traceparent is invalid.
        assert_eq!(header(headers, "tracestate"), None);
        assert!(!header(headers, "traceparent").unwrap().contains(TRACE_ID));
    }
    let spans = receiver
        .wait_for_spans(bad.len() * 5, Duration::from_secs(10))
        .await;
    for s in named(&spans, "GET /checkout", SpanKind::Server) {
        assert_eq!(s.parent_span_id_hex(), None, "a new root");
    }
}

#[tokio::test]
async fn invalid_tracestate_is_dropped_but_the_parent_kept() {
    let f = fixture(&[PropagatorKind::TraceContext], InboundContext::Continue).await;
    let _default = tracing::dispatcher::set_default(f.telemetry.dispatch());
    let resp = reqwest::Client::new()
        .get(f.a.url("/checkout"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("tracestate", "Invalid Key=1")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["traceparent"]
            .to_str()
            .unwrap()
            .contains(TRACE_ID)
    );
    assert_eq!(f.seen.lock().len(), 2);
    for headers in f.seen.lock().iter() {
        assert_eq!(header(headers, "tracestate"), None);
        assert!(header(headers, "traceparent").unwrap().contains(TRACE_ID));
    }
}

#[tokio::test]
async fn b3_multi_in_and_out() {
    let f = fixture(&[PropagatorKind::B3Multi], InboundContext::Continue).await;
    let _default = tracing::dispatcher::set_default(f.telemetry.dispatch());
    reqwest::Client::new()
        .get(f.a.url("/checkout"))
        .header("x-b3-traceid", TRACE_ID)
        .header("x-b3-spanid", PARENT_ID)
        .header("x-b3-sampled", "1")
        .send()
        .await
        .unwrap();
    let Fixture {
        receiver,
        telemetry,
        seen,
        ..
    } = f;
    telemetry.shutdown().await;
    let spans = receiver.wait_for_spans(5, Duration::from_secs(10)).await;
    let server = named(&spans, "GET /checkout", SpanKind::Server)[0];
    assert_eq!(server.trace_id_hex(), TRACE_ID);
    assert_eq!(server.parent_span_id_hex().as_deref(), Some(PARENT_ID));
    assert_eq!(seen.lock().len(), 2);
    for headers in seen.lock().iter() {
        assert_eq!(header(headers, "x-b3-traceid"), Some(TRACE_ID));
        assert_eq!(header(headers, "x-b3-sampled"), Some("1"));
        assert!(header(headers, "x-b3-spanid").is_some());
        assert_eq!(
            header(headers, "traceparent"),
            None,
            "only the configured format"
        );
    }
}

#[tokio::test]
async fn untrusted_callers_get_a_new_root_linked_to_their_span() {
    let f = fixture(
        &[PropagatorKind::TraceContext, PropagatorKind::Baggage],
        InboundContext::NewRootWithLink,
    )
    .await;
    let _default = tracing::dispatcher::set_default(f.telemetry.dispatch());
    reqwest::Client::new()
        .get(f.a.url("/checkout"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("baggage", "tenant=evil")
        .send()
        .await
        .unwrap();
    let Fixture {
        receiver,
        telemetry,
        seen,
        ..
    } = f;
    telemetry.shutdown().await;
    let spans = receiver.wait_for_spans(5, Duration::from_secs(10)).await;
    let server = named(&spans, "GET /checkout", SpanKind::Server)[0];
    assert_ne!(server.trace_id_hex(), TRACE_ID);
    assert_eq!(server.parent_span_id_hex(), None);
    let link = server.span.links.first().expect("a link to the caller");
    assert_eq!(hex(&link.trace_id), TRACE_ID);
    assert_eq!(hex(&link.span_id), PARENT_ID);
    assert_eq!(seen.lock().len(), 2);
    for headers in seen.lock().iter() {
        assert_eq!(
            header(headers, "baggage"),
            None,
            "untrusted baggage is dropped"
        );
    }
}

#[tokio::test]
async fn failed_outgoing_calls_are_errors() {
    let receiver = OtlpReceiver::start().await;
    let telemetry = tracelight::builder("shop")
        .endpoint(receiver.http_traces_url())
        .log_writer(LogCapture::new())
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let closed = tracelight_testkit::closed_loopback_endpoint().await;
    let port = closed.rsplit(':').next().unwrap().to_owned();
    let err = telemetry
        .http_client()
        .get(format!("{closed}/x"))
        .send()
        .await;
    assert!(err.is_err());
    let metrics = telemetry.metrics().render();
    assert!(
        metrics.contains(&format!(
            "server_address=\"127.0.0.1\",server_port=\"{port}\",error_type=\"connect\""
        )),
        "{metrics}"
    );
    telemetry.shutdown().await;
    let spans = receiver.wait_for_spans(1, Duration::from_secs(10)).await;
    let client = named(&spans, "GET", SpanKind::Client)[0];
    assert_eq!(client.span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(client.attr("error.type").unwrap().as_str(), Some("connect"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
