//! Internal model → Jaeger v1 "UI model" JSON (`jaeger-query-api.md` §2.5 and §4).

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::model::{AttrValue, KeyValue, Span, StatusCode, Trace};

/// Largest integer a JSON number carries exactly (2^53 − 1).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The v1 envelope `{data, total, limit, offset, errors}`.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    /// Payload; `null` on error.
    pub data: Option<T>,
    /// Count for list endpoints, else 0.
    pub total: usize,
    /// Always 0.
    pub limit: usize,
    /// Always 0.
    pub offset: usize,
    /// `null` on success.
    pub errors: Option<Vec<StructuredError>>,
}

impl<T> Envelope<T> {
    /// A success envelope.
    pub fn ok(data: T, total: usize) -> Self {
        Self {
            data: Some(data),
            total,
            limit: 0,
            offset: 0,
            errors: None,
        }
    }
}

/// One entry of `errors`.
#[derive(Debug, Clone, Serialize)]
pub struct StructuredError {
    /// HTTP status code; omitted when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
    /// Message.
    pub msg: String,
    /// The trace id the error is about, if any.
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// A tag / log field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JaegerKeyValue {
    key: String,
    #[serde(rename = "type")]
    kind: &'static str,
    value: Value,
}

/// `{refType, traceID, spanID}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    ref_type: &'static str,
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Debug, Serialize)]
struct Log {
    timestamp: u64,
    fields: Vec<JaegerKeyValue>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JaegerSpan {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(skip_serializing_if = "is_zero_u32")]
    flags: u32,
    operation_name: String,
    references: Vec<Reference>,
    start_time: u64,
    duration: u64,
    tags: Vec<JaegerKeyValue>,
    logs: Vec<Log>,
    #[serde(rename = "processID")]
    process_id: String,
    warnings: Option<Vec<String>>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    service_name: String,
    tags: Vec<JaegerKeyValue>,
}

/// One v1 trace.
#[derive(Debug, Serialize)]
pub struct JaegerTrace {
    #[serde(rename = "traceID")]
    trace_id: String,
    spans: Vec<JaegerSpan>,
    processes: serde_json::Map<String, Value>,
    warnings: Option<Vec<String>>,
}

/// Converts one attribute to a Jaeger tag.
pub fn key_value(kv: &KeyValue) -> JaegerKeyValue {
    typed(&kv.key, &kv.value)
}

fn typed(key: &str, value: &AttrValue) -> JaegerKeyValue {
    let (kind, value) = match value {
        AttrValue::String(s) => ("string", Value::String(s.clone())),
        AttrValue::Bool(b) => ("bool", Value::Bool(*b)),
        AttrValue::Int(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(i) => {
            ("int64", Value::from(*i))
        }
        AttrValue::Int(i) => ("int64", Value::String(i.to_string())),
        AttrValue::Double(_) => ("float64", value.to_json()),
        AttrValue::Bytes(_) => ("binary", value.to_json()),
        AttrValue::Array(_) | AttrValue::Map(_) => {
            ("string", Value::String(value.to_json().to_string()))
        }
        AttrValue::Empty => ("string", Value::String(String::new())),
    };
    JaegerKeyValue {
        key: key.to_owned(),
        kind,
        value,
    }
}

fn string_tag(key: &str, value: &str) -> JaegerKeyValue {
    typed(key, &AttrValue::String(value.to_owned()))
}

/// Span tags in the order of the reference translator.
fn span_tags(span: &Span) -> Vec<JaegerKeyValue> {
    let mut tags = Vec::with_capacity(span.attributes.len() + 6);
    if !span.scope.name.is_empty() {
        tags.push(string_tag("otel.scope.name", &span.scope.name));
    }
    if !span.scope.version.is_empty() {
        tags.push(string_tag("otel.scope.version", &span.scope.version));
    }
    tags.extend(span.attributes.iter().map(key_value));
    if let Some(kind) = span.kind.jaeger_name() {
        tags.push(string_tag("span.kind", kind));
    }
    match span.status.code {
        StatusCode::Unset => {}
        StatusCode::Ok => tags.push(string_tag("otel.status_code", "OK")),
        StatusCode::Error => {
            tags.push(string_tag("otel.status_code", "ERROR"));
            tags.push(typed("error", &AttrValue::Bool(true)));
        }
    }
    if !span.status.message.is_empty() {
        tags.push(string_tag("otel.status_description", &span.status.message));
    }
    if !span.trace_state.is_empty() {
        tags.push(string_tag("w3c.tracestate", &span.trace_state));
    }
    tags
}

fn process_of(span: &Span) -> Process {
    Process {
        service_name: span.service_name().to_owned(),
        tags: span
            .resource
            .attributes
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(key_value)
            .collect(),
    }
}

/// Converts a trace. Process ids `p1`, `p2`, … follow first appearance in span order.
pub fn trace(trace: &Trace) -> JaegerTrace {
    let trace_id = trace.trace_id.to_jaeger_hex();
    let mut processes: Vec<(Arc<crate::model::Resource>, Process)> = Vec::new();
    let mut spans = Vec::with_capacity(trace.spans.len());
    for span in &trace.spans {
        let index = match processes
            .iter()
            .position(|(r, p)| Arc::ptr_eq(r, &span.resource) || *p == process_of(span))
        {
            Some(i) => i,
            None => {
                processes.push((Arc::clone(&span.resource), process_of(span)));
                processes.len() - 1
            }
        };
        let mut references = Vec::with_capacity(span.links.len() + 1);
        if let Some(parent) = span.parent_span_id {
            references.push(Reference {
                ref_type: "CHILD_OF",
                trace_id: trace_id.clone(),
                span_id: parent.to_hex(),
            });
        }
        references.extend(span.links.iter().map(|l| Reference {
            ref_type: "FOLLOWS_FROM",
            trace_id: l.trace_id.to_jaeger_hex(),
            span_id: l.span_id.to_hex(),
        }));
        let logs = span
            .events
            .iter()
            .map(|e| {
                let mut fields = Vec::with_capacity(e.attributes.len() + 1);
                if !e.name.is_empty() {
                    fields.push(string_tag("event", &e.name));
                }
                fields.extend(e.attributes.iter().map(key_value));
                Log {
                    timestamp: e.time_ns / 1000,
                    fields,
                }
            })
            .collect();
        spans.push(JaegerSpan {
            trace_id: trace_id.clone(),
            span_id: span.span_id.to_hex(),
            flags: span.flags & 0xff,
            operation_name: span.name.clone(),
            references,
            start_time: span.start_ns / 1000,
            duration: span.duration_ns() / 1000,
            tags: span_tags(span),
            logs,
            process_id: format!("p{}", index + 1),
            warnings: None,
        });
    }
    let processes = processes
        .into_iter()
        .enumerate()
        .map(|(i, (_, p))| {
            (
                format!("p{}", i + 1),
                serde_json::to_value(p).unwrap_or(Value::Null),
            )
        })
        .collect();
    JaegerTrace {
        trace_id,
        spans,
        processes,
        warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_types() {
        let v = |value| serde_json::to_value(typed("k", &value)).unwrap();
        assert_eq!(v(AttrValue::Int(5))["value"], 5);
        assert_eq!(v(AttrValue::Int(1 << 60))["value"], "1152921504606846976");
        assert_eq!(v(AttrValue::Int(-(1 << 60)))["type"], "int64");
        assert_eq!(v(AttrValue::Double(1.5))["type"], "float64");
        assert_eq!(v(AttrValue::Bytes(vec![1, 2]))["value"], "AQI=");
        assert_eq!(v(AttrValue::Bytes(vec![1, 2]))["type"], "binary");
        let list = v(AttrValue::Array(vec![
            AttrValue::String("a".into()),
            AttrValue::Int(1),
        ]));
        assert_eq!(list["type"], "string");
        assert_eq!(list["value"], r#"["a",1]"#);
        assert_eq!(v(AttrValue::Bool(true))["type"], "bool");
    }
}
