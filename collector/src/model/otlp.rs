//! OTLP protobuf types → internal model.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as OtlpKeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span as OtlpSpan, span};

use super::ids::{IdError, SpanId, TraceId};
use super::span::{
    AttrValue, Event, KeyValue, Link, NO_SERVICE_NAME, Resource, Scope, Span, SpanBatch, SpanKind,
    Status, StatusCode,
};

/// Deepest nesting of array/map attribute values kept; deeper values become [`AttrValue::Empty`].
pub(crate) const MAX_VALUE_DEPTH: usize = 16;

/// Result of converting one export request.
#[derive(Debug, Default)]
pub struct Converted {
    /// The valid spans.
    pub batch: SpanBatch,
    /// Number of spans rejected as invalid.
    pub rejected: u64,
    /// Why the first span was rejected (for the partial-success message).
    pub first_rejection: Option<SpanRejection>,
}

/// Why one span was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpanRejection {
    /// The trace id is missing, all zeroes or of the wrong length.
    #[error("invalid trace id: {0}")]
    TraceId(IdError),
    /// The span id is missing, all zeroes or of the wrong length.
    #[error("invalid span id: {0}")]
    SpanId(IdError),
    /// The parent span id is neither empty nor 8 bytes.
    #[error("invalid parent span id: {0}")]
    ParentSpanId(IdError),
}

/// Converts a request, moving its strings; invalid spans are counted, not fatal.
pub fn convert_request(request: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rs in request.resource_spans {
        let attributes = rs
            .resource
            .map(|r| convert_attributes(r.attributes))
            .unwrap_or_default();
        let service_name = attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match &kv.value {
                AttrValue::String(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| NO_SERVICE_NAME.to_owned());
        let resource = Arc::new(Resource {
            service_name,
            attributes,
        });
        for ss in rs.scope_spans {
            let scope = Arc::new(
                ss.scope
                    .map(|s| Scope {
                        name: s.name,
                        version: s.version,
                        attributes: convert_attributes(s.attributes),
                    })
                    .unwrap_or_default(),
            );
            for span in ss.spans {
                match convert_span(span, &resource, &scope) {
                    Ok(s) => out.batch.spans.push(s),
                    Err(e) => {
                        out.rejected += 1;
                        out.first_rejection.get_or_insert(e);
                    }
                }
            }
        }
    }
    out
}

fn convert_span(
    span: OtlpSpan,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<Span, SpanRejection> {
    let (trace_id, span_id, parent_span_id) =
        validate_ids(&span.trace_id, &span.span_id, &span.parent_span_id)?;
    let links = span
        .links
        .into_iter()
        .filter_map(|l| {
            // A link with bad ids carries no usable reference: drop the link, keep the span.
            let trace_id = TraceId::from_slice(&l.trace_id).ok()?;
            let span_id = SpanId::from_slice(&l.span_id).ok()?;
            Some(Link {
                trace_id,
                span_id,
                trace_state: l.trace_state,
                attributes: convert_attributes(l.attributes),
            })
        })
        .collect();
    let events = span
        .events
        .into_iter()
        .map(|e| Event {
            time_ns: e.time_unix_nano,
            name: e.name,
            attributes: convert_attributes(e.attributes),
        })
        .collect();
    let status = span
        .status
        .map(|s| Status {
            code: StatusCode::from_otlp(s.code),
            message: s.message,
        })
        .unwrap_or_default();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: span.trace_state,
        flags: span.flags,
        name: span.name,
        kind: SpanKind::from_otlp(span.kind),
        start_ns: span.start_time_unix_nano,
        end_ns: span.end_time_unix_nano,
        attributes: convert_attributes(span.attributes),
        events,
        links,
        status,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// A span's ids, or why the span is rejected: the trace and span ids must be valid; the parent
/// may be empty or all zeroes (how some SDKs write "no parent").
pub(super) fn validate_ids(
    trace_id: &[u8],
    span_id: &[u8],
    parent: &[u8],
) -> Result<(TraceId, SpanId, Option<SpanId>), SpanRejection> {
    let trace_id = TraceId::from_slice(trace_id).map_err(SpanRejection::TraceId)?;
    let span_id = SpanId::from_slice(span_id).map_err(SpanRejection::SpanId)?;
    let parent = match parent.len() {
        0 => None,
        _ => match SpanId::from_slice(parent) {
            Ok(id) => Some(id),
            Err(IdError::Zero) => None,
            Err(e) => return Err(SpanRejection::ParentSpanId(e)),
        },
    };
    Ok((trace_id, span_id, parent))
}

/// Converts OTLP attributes.
pub fn convert_attributes(attributes: Vec<OtlpKeyValue>) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|kv| KeyValue {
            key: kv.key,
            value: convert_value(kv.value, 0),
        })
        .collect()
}

fn convert_value(value: Option<AnyValue>, depth: usize) -> AttrValue {
    if depth > MAX_VALUE_DEPTH {
        return AttrValue::Empty;
    }
    match value.and_then(|v| v.value) {
        None => AttrValue::Empty,
        Some(any_value::Value::StringValue(s)) => AttrValue::String(s),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(b),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(i),
        Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(d),
        Some(any_value::Value::BytesValue(b)) => AttrValue::Bytes(b),
        Some(any_value::Value::ArrayValue(a)) => AttrValue::Array(
            a.values
                .into_iter()
                .map(|v| convert_value(Some(v), depth + 1))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(kvs)) => AttrValue::Map(
            kvs.values
                .into_iter()
                .map(|kv| KeyValue {
                    key: kv.key,
                    value: convert_value(kv.value, depth + 1),
                })
                .collect(),
        ),
        // Deprecated string-table reference (profiles only); there is no table for traces.
        Some(any_value::Value::StringValueStrindex(_)) => AttrValue::Empty,
    }
}

/// Maps an OTLP span kind enum name (`SPAN_KIND_SERVER`) to its number.
pub fn span_kind_number(name: &str) -> Option<i32> {
    span::SpanKind::from_str_name(name).map(|k| k as i32)
}

/// Maps an OTLP status code enum name (`STATUS_CODE_ERROR`) to its number.
pub fn status_code_number(name: &str) -> Option<i32> {
    opentelemetry_proto::tonic::trace::v1::status::StatusCode::from_str_name(name).map(|c| c as i32)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> OtlpKeyValue {
        OtlpKeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn request(spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(OtlpResource {
                    attributes: vec![
                        kv("service.name", any_value::Value::StringValue("api".into())),
                        kv("host.name", any_value::Value::StringValue("h1".into())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(trace: u8, id: u8) -> OtlpSpan {
        OtlpSpan {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: "op".into(),
            kind: 2,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 3_000,
            ..Default::default()
        }
    }

    #[test]
    fn converts_and_shares_resource() {
        let mut s2 = span(1, 2);
        s2.parent_span_id = vec![1; 8];
        s2.attributes = vec![kv(
            "list",
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::IntValue(7)),
                }],
            }),
        )];
        s2.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
            code: 2,
            message: "boom".into(),
        });
        let out = convert_request(request(vec![span(1, 1), s2]));
        assert_eq!(out.rejected, 0);
        let [a, b] = out.batch.spans.as_slice() else {
            panic!("two spans expected");
        };
        assert!(Arc::ptr_eq(&a.resource, &b.resource));
        assert_eq!(a.service_name(), "api");
        assert_eq!(a.kind, SpanKind::Server);
        assert_eq!(a.duration_ns(), 2_000);
        assert_eq!(b.parent_span_id, SpanId::from_slice(&[1; 8]).ok());
        assert_eq!(
            b.attributes[0].value,
            AttrValue::Array(vec![AttrValue::Int(7)])
        );
        assert!(b.is_error());
        assert!(b.matches_tag("error", "true"));
        assert!(b.matches_tag("host.name", "h1"));
        assert!(b.matches_tag("span.kind", "server"));
        assert!(!a.matches_tag("error", "true"));
    }

    #[test]
    fn invalid_ids_are_rejected_individually() {
        let mut zero_trace = span(0, 1);
        zero_trace.trace_id = vec![0; 16];
        let mut short_span = span(1, 1);
        short_span.span_id = vec![1; 3];
        let mut bad_parent = span(1, 3);
        bad_parent.parent_span_id = vec![1; 5];
        let mut zero_parent = span(1, 4);
        zero_parent.parent_span_id = vec![0; 8];
        let out = convert_request(request(vec![
            zero_trace,
            short_span,
            bad_parent,
            zero_parent,
            span(1, 5),
        ]));
        assert_eq!(out.rejected, 3);
        assert_eq!(out.batch.len(), 2);
        assert_eq!(out.batch.spans[0].parent_span_id, None);
        assert_eq!(
            out.first_rejection,
            Some(SpanRejection::TraceId(IdError::Zero))
        );
    }

    #[test]
    fn missing_service_name_uses_jaeger_placeholder() {
        let mut req = request(vec![span(1, 1)]);
        req.resource_spans[0].resource = None;
        let out = convert_request(req);
        assert_eq!(out.batch.spans[0].service_name(), NO_SERVICE_NAME);
    }

    #[test]
    fn enum_names_map_to_numbers() {
        assert_eq!(span_kind_number("SPAN_KIND_CLIENT"), Some(3));
        assert_eq!(span_kind_number("CLIENT"), None);
        assert_eq!(status_code_number("STATUS_CODE_ERROR"), Some(2));
    }
}
