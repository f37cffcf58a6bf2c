//! Internal model → OTLP protobuf (`ExportTraceServiceRequest`), the inverse of
//! `model::otlp::convert_request`: what the forward queue stores and the exporter sends.
//!
//! Spans sharing a resource (and a scope) — the same `Arc`, as the receiver converted them —
//! are grouped under one `ResourceSpans` (`ScopeSpans`), so a request keeps its shape. Fields
//! the model does not keep (dropped counts, schema URLs) are not forwarded.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue as OtlpKeyValue, KeyValueList,
    any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::span::{Event as OtlpEvent, Link as OtlpLink};
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as OtlpSpan, Status as OtlpStatus,
};
use prost::Message as _;

use crate::model::{AttrValue, KeyValue, Resource, Scope, Span};

/// Encodes spans as one protobuf `ExportTraceServiceRequest`.
pub fn encode_spans(spans: &[Span]) -> Vec<u8> {
    to_request(spans).encode_to_vec()
}

/// Builds the request (grouping by resource and scope, in order of first appearance).
pub fn to_request(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<(&Arc<Resource>, ResourceSpans)> = Vec::new();
    let mut scopes: Vec<(usize, &Arc<Scope>)> = Vec::new();
    for span in spans {
        let ri = match resource_spans
            .iter()
            .rposition(|(r, _)| Arc::ptr_eq(r, &span.resource))
        {
            Some(i) => i,
            None => {
                resource_spans.push((
                    &span.resource,
                    ResourceSpans {
                        resource: Some(OtlpResource {
                            attributes: attributes(&span.resource.attributes),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ));
                resource_spans.len() - 1
            }
        };
        let scope_spans = &mut resource_spans[ri].1.scope_spans;
        let si = match scopes
            .iter()
            .rposition(|(r, s)| *r == ri && Arc::ptr_eq(s, &span.scope))
        {
            Some(i) => i,
            None => {
                scopes.push((ri, &span.scope));
                scopes.len() - 1
            }
        };
        // Position of that scope inside its resource: count earlier scopes of the resource.
        let pos = scopes[..si].iter().filter(|(r, _)| *r == ri).count();
        if pos == scope_spans.len() {
            scope_spans.push(ScopeSpans {
                scope: Some(scope(&span.scope)),
                ..Default::default()
            });
        }
        scope_spans[pos].spans.push(span_to_otlp(span));
    }
    ExportTraceServiceRequest {
        resource_spans: resource_spans.into_iter().map(|(_, rs)| rs).collect(),
    }
}

fn scope(s: &Scope) -> InstrumentationScope {
    InstrumentationScope {
        name: s.name.clone(),
        version: s.version.clone(),
        attributes: attributes(&s.attributes),
        ..Default::default()
    }
}

fn span_to_otlp(span: &Span) -> OtlpSpan {
    OtlpSpan {
        trace_id: span.trace_id.as_bytes().to_vec(),
        span_id: span.span_id.as_bytes().to_vec(),
        trace_state: span.trace_state.clone(),
        parent_span_id: span
            .parent_span_id
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        flags: span.flags,
        name: span.name.clone(),
        kind: span.kind.to_otlp(),
        start_time_unix_nano: span.start_ns,
        end_time_unix_nano: span.end_ns,
        attributes: attributes(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| OtlpEvent {
                time_unix_nano: e.time_ns,
                name: e.name.clone(),
                attributes: attributes(&e.attributes),
                ..Default::default()
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|l| OtlpLink {
                trace_id: l.trace_id.as_bytes().to_vec(),
                span_id: l.span_id.as_bytes().to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: attributes(&l.attributes),
                ..Default::default()
            })
            .collect(),
        status: Some(OtlpStatus {
            code: span.status.code.to_otlp(),
            message: span.status.message.clone(),
        }),
        ..Default::default()
    }
}

fn attributes(kvs: &[KeyValue]) -> Vec<OtlpKeyValue> {
    kvs.iter()
        .map(|kv| OtlpKeyValue {
            key: kv.key.clone(),
            value: Some(any_value(&kv.value)),
            ..Default::default()
        })
        .collect()
}

fn any_value(v: &AttrValue) -> AnyValue {
    let value = match v {
        AttrValue::String(s) => Some(Value::StringValue(s.clone())),
        AttrValue::Bool(b) => Some(Value::BoolValue(*b)),
        AttrValue::Int(i) => Some(Value::IntValue(*i)),
        AttrValue::Double(d) => Some(Value::DoubleValue(*d)),
        AttrValue::Bytes(b) => Some(Value::BytesValue(b.clone())),
        AttrValue::Array(values) => Some(Value::ArrayValue(ArrayValue {
            values: values.iter().map(any_value).collect(),
        })),
        AttrValue::Map(kvs) => Some(Value::KvlistValue(KeyValueList {
            values: attributes(kvs),
        })),
        AttrValue::Empty => None,
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    use super::*;
    use crate::model::convert_request;

    fn kv(key: &str, value: Value) -> OtlpKeyValue {
        OtlpKeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let span = |id: u8, parent: Option<u8>| OtlpSpan {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("op{id}"),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![
                kv("s", Value::StringValue("x".to_owned())),
                kv("i", Value::IntValue(-3)),
                kv(
                    "a",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::BoolValue(true)),
                        }],
                    }),
                ),
            ],
            events: vec![OtlpEvent {
                time_unix_nano: 15,
                name: "e".to_owned(),
                attributes: vec![kv("d", Value::DoubleValue(0.5))],
                ..Default::default()
            }],
            links: vec![OtlpLink {
                trace_id: vec![8; 16],
                span_id: vec![9; 8],
                trace_state: "k=v".to_owned(),
                ..Default::default()
            }],
            status: Some(OtlpStatus {
                code: 2,
                message: "bad".to_owned(),
            }),
            flags: 1,
            trace_state: "t=1".to_owned(),
            ..Default::default()
        };
        let rs = |service: &str, spans: Vec<OtlpSpan>| ResourceSpans {
            resource: Some(OtlpResource {
                attributes: vec![kv("service.name", Value::StringValue(service.to_owned()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".to_owned(),
                    version: "1".to_owned(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                rs("a", vec![span(1, None), span(2, Some(1))]),
                rs("b", vec![span(3, Some(2))]),
            ],
        }
    }

    #[test]
    fn model_round_trips_through_protobuf() {
        let original = request();
        let batch = convert_request(original.clone()).batch;
        let encoded = encode_spans(&batch.spans);
        let decoded = ExportTraceServiceRequest::decode(encoded.as_slice()).unwrap();
        assert_eq!(decoded, original);
        // And converting the forwarded request again gives the same model.
        let again = convert_request(decoded).batch;
        assert_eq!(again.spans, batch.spans);
    }

    #[test]
    fn concatenated_requests_merge() {
        let batch = convert_request(request()).batch;
        let mut both = encode_spans(&batch.spans[..2]);
        both.extend(encode_spans(&batch.spans[2..]));
        let merged = ExportTraceServiceRequest::decode(both.as_slice()).unwrap();
        assert_eq!(merged, request());
    }
}
