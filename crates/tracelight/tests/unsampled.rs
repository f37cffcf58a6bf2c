//! Requests the sampler drops: the middleware makes the span ids itself (no SDK span), as the
//! SDK would — the caller's trace id, a new span id, flags `00` — and stops after shutdown.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use tower::ServiceExt as _;
use tracelight::{LogFormat, Sampler, Telemetry};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn telemetry(sampler: Sampler) -> Telemetry {
    tracelight::builder("unsampled")
        .sampler(sampler)
        .log_format(LogFormat::Json)
        .log_writer(std::io::sink)
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap()
}

async fn traceparent(app: &Router, inbound: Option<&str>) -> Option<String> {
    let mut req = Request::get("/x");
    if let Some(tp) = inbound {
        req = req.header("traceparent", tp);
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn app(t: &Telemetry) -> Router {
    Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(t.layer())
}

fn parts(tp: &str) -> (&str, &str, &str) {
    assert_eq!(tp.len(), 55, "{tp}");
    (&tp[3..35], &tp[36..52], &tp[53..])
}

#[tokio::test]
async fn dropped_spans_continue_the_callers_trace() {
    for (sampler, flags) in [
        (Sampler::AlwaysOff, "01"),
        (Sampler::AlwaysOff, "00"),
        (Sampler::ParentBasedAlwaysOn, "00"),
        (Sampler::ParentBasedTraceIdRatio(1.0), "00"),
        (Sampler::TraceIdRatio(0.0), "01"),
    ] {
        let t = telemetry(sampler);
        let app = app(&t);
        let inbound = format!("00-{TRACE_ID}-{PARENT_ID}-{flags}");
        let tp = traceparent(&app, Some(&inbound)).await.unwrap();
        let (trace, span, out_flags) = parts(&tp);
        assert_eq!(trace, TRACE_ID, "{sampler:?}");
        assert_ne!(span, PARENT_ID, "{sampler:?}");
        assert_ne!(span, "0000000000000000", "{sampler:?}");
        assert_eq!(out_flags, "00", "{sampler:?}");
    }
}

#[tokio::test]
async fn dropped_roots_get_fresh_ids() {
    for sampler in [Sampler::AlwaysOff, Sampler::ParentBasedAlwaysOff] {
        let t = telemetry(sampler);
        let app = app(&t);
        let a = traceparent(&app, None).await.unwrap();
        let b = traceparent(&app, None).await.unwrap();
        let (ta, sa, fa) = parts(&a);
        let (tb, sb, _) = parts(&b);
        assert_ne!(ta, tb);
        assert_ne!(sa, sb);
        assert_ne!(ta, "00000000000000000000000000000000");
        assert_eq!(fa, "00");
    }
}

#[tokio::test]
async fn no_ids_after_shutdown() {
    let t = telemetry(Sampler::AlwaysOff);
    let app = app(&t);
    assert!(traceparent(&app, None).await.is_some());
    t.shutdown().await;
    // Like the SDK after shutdown: an invalid span, so no traceparent.
    assert_eq!(traceparent(&app, None).await, None);
}
