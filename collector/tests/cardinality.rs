//! A flood of unique span names against the collector binary: span metrics fold the excess into
//! the overflow series, and the process's memory stops growing once the series cap is reached.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/process.rs"]
mod process;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use process::CollectorProcess;
use prost::Message as _;

const CAP: usize = 1000;
const FLOOD: u64 = 100_000;
const PER_REQUEST: u64 = 1000;

fn request(first: u64) -> Vec<u8> {
    let now = tracelight_loadgen::pool::now_unix_nanos();
    let spans = (first..first + PER_REQUEST)
        .map(|n| Span {
            trace_id: (u128::from(n) + 1).to_be_bytes().to_vec(),
            span_id: (n + 1).to_be_bytes().to_vec(),
            name: format!("GET /scan/{n:x}"),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: now,
            end_time_unix_nano: now + 1_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".to_owned(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("target".to_owned())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn flood(client: &reqwest::Client, url: &str, offset: u64) {
    for first in (offset..offset + FLOOD).step_by(PER_REQUEST as usize) {
        let response = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(request(first))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_span_names_keep_rss_bounded() {
    let cap = CAP.to_string();
    let collector = CollectorProcess::spawn(&[
        "--storage".as_ref(),
        "memory".as_ref(),
        "--memory-max-spans".as_ref(),
        "10000".as_ref(),
        "--metrics-max-series".as_ref(),
        cap.as_ref(),
    ]);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/traces", collector.http);

    flood(&client, &url, 0).await;
    let after_first = collector.rss_bytes();
    flood(&client, &url, FLOOD).await;
    let after_second = collector.rss_bytes();

    let text = client
        .get(format!("{}/metrics", collector.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls = text
        .lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
        .count();
    assert_eq!(calls, CAP + 1, "the cap's series and the overflow series");
    let overflow = format!(
        "traces_span_metrics_calls_total{{otel_metric_overflow=\"true\"}} {}",
        2 * FLOOD - CAP as u64
    );
    assert!(text.contains(&overflow), "{overflow} missing");
    // Without the cap each new name costs a series (~0.5 KiB with its histogram and history):
    // 100 000 more names would add ~50 MiB. With it, the second flood adds (almost) nothing.
    let growth = after_second.saturating_sub(after_first);
    assert!(
        growth < 8 << 20,
        "RSS grew by {growth} bytes during the second flood ({after_first} → {after_second})"
    );
    eprintln!("RSS after 100k names: {after_first} B, after 200k: {after_second} B");
}
