//! Internal model → OTLP/JSON `TracesData` and trace summaries for api_v3 (§3.4, §3.5).
//!
//! protobuf-JSON form: hex ids, enums as integers, int64 as decimal strings, default-valued
//! fields omitted (`status` is always present, possibly `{}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::model::{AttrValue, KeyValue, Resource, Scope, Span, StatusCode, Trace};

/// `{"resourceSpans": [...]}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TracesData {
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    resource: Value,
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans {
    scope: Value,
    spans: Vec<Value>,
}

/// Renders an attribute value as an OTLP/JSON `AnyValue`.
pub fn any_value(value: &AttrValue) -> Value {
    match value {
        AttrValue::String(s) => json!({ "stringValue": s }),
        AttrValue::Bool(b) => json!({ "boolValue": b }),
        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttrValue::Double(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => json!({ "doubleValue": n }),
            // protobuf-JSON spells non-finite doubles as strings.
            None => {
                json!({ "doubleValue": if d.is_nan() { "NaN" } else if *d > 0.0 { "Infinity" } else { "-Infinity" } })
            }
        },
        AttrValue::Bytes(b) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        AttrValue::Array(values) => {
            json!({ "arrayValue": { "values": values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        AttrValue::Map(kvs) => json!({ "kvlistValue": { "values": attributes(kvs) } }),
        AttrValue::Empty => json!({}),
    }
}

fn attributes(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| json!({ "key": kv.key, "value": any_value(&kv.value) }))
        .collect()
}

/// Inserts `key: value` unless the value is an empty array.
fn put_list(object: &mut serde_json::Map<String, Value>, key: &str, list: Vec<Value>) {
    if !list.is_empty() {
        object.insert(key.to_owned(), Value::Array(list));
    }
}

fn put_str(object: &mut serde_json::Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        object.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

fn resource_json(resource: &Resource) -> Value {
    let mut object = serde_json::Map::new();
    put_list(&mut object, "attributes", attributes(&resource.attributes));
    Value::Object(object)
}

fn scope_json(scope: &Scope) -> Value {
    let mut object = serde_json::Map::new();
    put_str(&mut object, "name", &scope.name);
    put_str(&mut object, "version", &scope.version);
    put_list(&mut object, "attributes", attributes(&scope.attributes));
    Value::Object(object)
}

fn span_json(span: &Span) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("traceId".into(), span.trace_id.to_hex().into());
    o.insert("spanId".into(), span.span_id.to_hex().into());
    put_str(&mut o, "traceState", &span.trace_state);
    if let Some(parent) = span.parent_span_id {
        o.insert("parentSpanId".into(), parent.to_hex().into());
    }
    if span.flags != 0 {
        o.insert("flags".into(), span.flags.into());
    }
    o.insert("name".into(), span.name.clone().into());
    if span.kind.to_otlp() != 0 {
        o.insert("kind".into(), span.kind.to_otlp().into());
    }
    o.insert("startTimeUnixNano".into(), span.start_ns.to_string().into());
    o.insert("endTimeUnixNano".into(), span.end_ns.to_string().into());
    put_list(&mut o, "attributes", attributes(&span.attributes));
    let events = span
        .events
        .iter()
        .map(|e| {
            let mut eo = serde_json::Map::new();
            eo.insert("timeUnixNano".into(), e.time_ns.to_string().into());
            put_str(&mut eo, "name", &e.name);
            put_list(&mut eo, "attributes", attributes(&e.attributes));
            Value::Object(eo)
        })
        .collect();
    put_list(&mut o, "events", events);
    let links = span
        .links
        .iter()
        .map(|l| {
            let mut lo = serde_json::Map::new();
            lo.insert("traceId".into(), l.trace_id.to_hex().into());
            lo.insert("spanId".into(), l.span_id.to_hex().into());
            put_str(&mut lo, "traceState", &l.trace_state);
            put_list(&mut lo, "attributes", attributes(&l.attributes));
            Value::Object(lo)
        })
        .collect();
    put_list(&mut o, "links", links);
    let mut status = serde_json::Map::new();
    put_str(&mut status, "message", &span.status.message);
    if span.status.code != StatusCode::Unset {
        status.insert("code".into(), span.status.code.to_otlp().into());
    }
    o.insert("status".into(), Value::Object(status));
    Value::Object(o)
}

/// Groups the spans of `traces` by resource, then scope (equal content merges), in order of
/// first appearance.
pub fn traces_data<'a>(traces: impl IntoIterator<Item = &'a Trace>) -> TracesData {
    type ScopeGroup = (Arc<Scope>, Vec<Value>);
    let mut groups: Vec<(Arc<Resource>, Vec<ScopeGroup>)> = Vec::new();
    for span in traces.into_iter().flat_map(|t| &t.spans) {
        let ri = match groups
            .iter()
            .position(|(r, _)| Arc::ptr_eq(r, &span.resource) || **r == *span.resource)
        {
            Some(i) => i,
            None => {
                groups.push((Arc::clone(&span.resource), Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[ri].1;
        let si = match scopes
            .iter()
            .position(|(s, _)| Arc::ptr_eq(s, &span.scope) || **s == *span.scope)
        {
            Some(i) => i,
            None => {
                scopes.push((Arc::clone(&span.scope), Vec::new()));
                scopes.len() - 1
            }
        };
        scopes[si].1.push(span_json(span));
    }
    TracesData {
        resource_spans: groups
            .into_iter()
            .map(|(resource, scopes)| ResourceSpans {
                resource: resource_json(&resource),
                scope_spans: scopes
                    .into_iter()
                    .map(|(scope, spans)| ScopeSpans {
                        scope: scope_json(&scope),
                        spans,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A trace summary (`/api/v3/trace-summaries`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    trace_id: String,
    root_service_name: String,
    root_operation_name: String,
    min_start_time_unix_nano: String,
    max_end_time_unix_nano: String,
    span_count: usize,
    error_span_count: usize,
    orphan_span_count: usize,
    services: Vec<ServiceSummary>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceSummary {
    name: String,
    span_count: usize,
    error_span_count: usize,
}

/// Summarises a trace; services are sorted by name.
pub fn summary(trace: &Trace) -> TraceSummary {
    let root = trace.root();
    let mut services: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for span in &trace.spans {
        let entry = services.entry(span.service_name()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(span.is_error());
    }
    TraceSummary {
        trace_id: trace.trace_id.to_hex(),
        root_service_name: root
            .map(|s| s.service_name().to_owned())
            .unwrap_or_default(),
        root_operation_name: root.map(|s| s.name.clone()).unwrap_or_default(),
        min_start_time_unix_nano: trace.start_ns().to_string(),
        max_end_time_unix_nano: trace.end_ns().to_string(),
        span_count: trace.spans.len(),
        error_span_count: trace.spans.iter().filter(|s| s.is_error()).count(),
        orphan_span_count: trace.orphan_count(),
        services: services
            .into_iter()
            .map(|(name, (span_count, error_span_count))| ServiceSummary {
                name: name.to_owned(),
                span_count,
                error_span_count,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_values_follow_protobuf_json() {
        assert_eq!(any_value(&AttrValue::Int(-3)), json!({"intValue": "-3"}));
        assert_eq!(
            any_value(&AttrValue::Double(f64::NAN)),
            json!({"doubleValue": "NaN"})
        );
        assert_eq!(
            any_value(&AttrValue::Map(vec![KeyValue {
                key: "a".into(),
                value: AttrValue::Array(vec![AttrValue::Bool(true)]),
            }])),
            json!({"kvlistValue": {"values": [
                {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": true}]}}}
            ]}})
        );
        assert_eq!(any_value(&AttrValue::Empty), json!({}));
    }
}
