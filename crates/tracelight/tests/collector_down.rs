//! The exporter's outage is logged once, through the global subscriber (the exporter runs on its
//! own thread, so only a global subscriber sees it). Its own test binary: it calls `init`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::HashMap;
use std::time::Duration;

use tracelight::{Protocol, Sampler};
use tracelight_testkit::{LogCapture, closed_loopback_endpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_logged_once() {
    let logs = LogCapture::new();
    let telemetry = tracelight::builder("orders")
        .protocol(Protocol::HttpProtobuf)
        .endpoint(format!("{}/v1/traces", closed_loopback_endpoint().await))
        .sampler(Sampler::AlwaysOn)
        .export_timeout(Duration::from_millis(500))
        .shutdown_timeout(Duration::from_secs(2))
        .log_format(tracelight::LogFormat::Json)
        .log_writer(logs.clone())
        .env(HashMap::<String, String>::new())
        .init()
        .unwrap();
    // Several export batches, all failing.
    for round in 0..3 {
        for _ in 0..10 {
            tracing::info_span!("work", round).in_scope(|| {});
        }
        let _ = telemetry.provider().force_flush();
    }
    telemetry.shutdown().await;
    let warnings: Vec<_> = logs
        .json_lines()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("span export failing"))
        })
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "logged once per outage:\n{}",
        logs.contents()
    );
    assert_eq!(warnings[0]["level"], "WARN");
    assert!(warnings[0]["error"].as_str().is_some(), "{}", warnings[0]);
    // The SDK's own per-batch error lines are superseded by that one line.
    assert!(
        !logs.contents().contains("BatchSpanProcessor.ExportError"),
        "{}",
        logs.contents()
    );
}
