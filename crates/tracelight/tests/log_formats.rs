//! The text formats show the ids too, and the service name.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt;
use tracelight::{LogFormat, TracesExporter};
use tracelight_testkit::LogCapture;
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn one_line(format: LogFormat) -> (String, String, String) {
    let logs = LogCapture::new();
    let telemetry = tracelight::builder("inventory")
        .traces_exporter(TracesExporter::None)
        .log_format(format)
        .log_writer(logs.clone())
        .env(HashMap::<String, String>::new())
        .build()
        .unwrap();
    let (trace_id, span_id) = tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("reserve");
        let _entered = span.enter();
        tracing::warn!(sku = "A-1", count = 3, "stock low");
        let sc = span.context().span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    (logs.contents(), trace_id, span_id)
}

#[test]
fn compact_lines_carry_ids_and_fields() {
    let (text, trace_id, span_id) = one_line(LogFormat::Compact);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(" WARN inventory log_formats: stock low sku=A-1 count=3 "),
        "{text}"
    );
    assert!(
        text.contains(&format!("trace_id={trace_id} span_id={span_id}")),
        "{text}"
    );
}

#[test]
fn pretty_lines_carry_ids_and_fields() {
    let (text, trace_id, span_id) = one_line(LogFormat::Pretty);
    assert!(
        text.contains("log_formats: stock low\n    sku: A-1\n    count: 3\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "service: inventory  trace_id: {trace_id}  span_id: {span_id}  in reserve"
        )),
        "{text}"
    );
    assert!(
        text.contains("at crates/tracelight/tests/log_formats.rs:"),
        "{text}"
    );
}

#[test]
fn json_lines_parse_and_carry_ids() {
    let (text, trace_id, span_id) = one_line(LogFormat::Json);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["level"], "WARN");
    assert_eq!(v["service"], "inventory");
    assert_eq!(v["message"], "stock low");
    assert_eq!(v["sku"], "A-1");
    assert_eq!(v["count"], 3);
    assert_eq!(v["trace_id"], trace_id.as_str());
    assert_eq!(v["span_id"], span_id.as_str());
    assert_eq!(v["span"], "reserve");
}
