//! OTLP/JSON request decoding.
//!
//! `opentelemetry-proto`'s `with-serde` feature already handles most OTLP/JSON rules: hex ids
//! (either case), lowerCamelCase names, int64 values as strings or numbers, unknown fields
//! ignored, `{}` as an empty request. It does **not** accept enum names (`"kind":
//! "SPAN_KIND_SERVER"`, `"code": "STATUS_CODE_ERROR"`), which the OTel Collector accepts, nor
//! `arrayValue` / `kvlistValue` objects without `values`. This module fixes those two things
//! on a `serde_json::Value` tree before the typed decode. The extra pass costs some speed on
//! the JSON path only; protobuf is the fast path.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;

use crate::model::{span_kind_number, status_code_number};

/// Why an OTLP/JSON body was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonDecodeError {
    /// Not JSON, or not the OTLP shape.
    #[error("invalid OTLP/JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// An enum given by a name that does not exist.
    #[error("invalid OTLP/JSON: unknown {field} enum value {value:?}")]
    UnknownEnum {
        /// The field (`kind` or `status.code`).
        field: &'static str,
        /// The name received.
        value: String,
    },
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonDecodeError> {
    let mut tree: Value = serde_json::from_slice(body)?;
    normalise(&mut tree)?;
    Ok(serde_json::from_value(tree)?)
}

fn array_mut<'a>(value: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    value
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn normalise(tree: &mut Value) -> Result<(), JsonDecodeError> {
    for rs in array_mut(tree, "resourceSpans") {
        if let Some(resource) = rs.get_mut("resource") {
            fix_attributes(resource);
        }
        for ss in array_mut(rs, "scopeSpans") {
            if let Some(scope) = ss.get_mut("scope") {
                fix_attributes(scope);
            }
            for span in array_mut(ss, "spans") {
                fix_enum(span, "kind", "kind", span_kind_number)?;
                if let Some(status) = span.get_mut("status") {
                    fix_enum(status, "code", "status.code", status_code_number)?;
                }
                fix_attributes(span);
                for child in ["events", "links"] {
                    for item in array_mut(span, child) {
                        fix_attributes(item);
                    }
                }
            }
        }
    }
    Ok(())
}

fn fix_enum(
    object: &mut Value,
    key: &str,
    field: &'static str,
    lookup: fn(&str) -> Option<i32>,
) -> Result<(), JsonDecodeError> {
    if let Some(slot) = object.get_mut(key)
        && let Some(name) = slot.as_str()
    {
        let number = lookup(name).ok_or_else(|| JsonDecodeError::UnknownEnum {
            field,
            value: name.to_owned(),
        })?;
        *slot = Value::from(number);
    }
    Ok(())
}

fn fix_attributes(owner: &mut Value) {
    for kv in array_mut(owner, "attributes") {
        if let Some(value) = kv.get_mut("value") {
            fix_any_value(value, 0);
        }
    }
}

/// Adds the `values: []` that serde requires to empty arrays and maps, recursively.
fn fix_any_value(value: &mut Value, depth: usize) {
    if depth > 32 {
        return;
    }
    for key in ["arrayValue", "kvlistValue"] {
        if let Some(Value::Object(inner)) = value.get_mut(key) {
            let values = inner
                .entry("values")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(items) = values.as_array_mut() {
                for item in items {
                    if key == "arrayValue" {
                        fix_any_value(item, depth + 1);
                    } else if let Some(v) = item.get_mut("value") {
                        fix_any_value(v, depth + 1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;

    use super::*;

    const TRACE: &str = "5B8EFFF798038103D269B633813FC60C";

    fn request(span_extra: &str) -> String {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[
                {{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},
              "unknownTop": 1,
              "scopeSpans":[{{"scope":{{"name":"lib"}},"spans":[{{
                "traceId":"{TRACE}","spanId":"EEE19B7EC3C1B174",
                "name":"op","startTimeUnixNano":"1544712660000000000",
                "endTimeUnixNano":1544712661000000000,
                "futureField":{{"nested":true}}{span_extra}}}]}}]}}]}}"#
        )
    }

    #[test]
    fn accepts_otlp_json_quirks() {
        let body = request(
            r#","kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"},
            "attributes":[{"key":"n","value":{"intValue":"42"}},
                          {"key":"m","value":{"intValue":7}},
                          {"key":"a","value":{"arrayValue":{}}},
                          {"key":"k","value":{"kvlistValue":{"values":[{"key":"x","value":{"arrayValue":{}}}]}}}]"#,
        );
        let req = decode_request(body.as_bytes()).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.kind, 2);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        let values: Vec<_> = span
            .attributes
            .iter()
            .map(|kv| kv.value.clone().unwrap().value.unwrap())
            .collect();
        assert_eq!(values[0], Any::IntValue(42));
        assert_eq!(values[1], Any::IntValue(7));
        assert!(matches!(&values[2], Any::ArrayValue(a) if a.values.is_empty()));
    }

    #[test]
    fn accepts_integer_enums_and_empty_requests() {
        let req = decode_request(request(r#","kind":3"#).as_bytes()).unwrap();
        assert_eq!(req.resource_spans[0].scope_spans[0].spans[0].kind, 3);
        assert!(decode_request(b"{}").unwrap().resource_spans.is_empty());
        assert!(
            decode_request(br#"{"resourceSpans":[]}"#)
                .unwrap()
                .resource_spans
                .is_empty()
        );
    }

    #[test]
    fn rejects_unknown_enum_names_and_garbage() {
        assert!(matches!(
            decode_request(request(r#","kind":"SPAN_KIND_BOGUS""#).as_bytes()),
            Err(JsonDecodeError::UnknownEnum { field: "kind", .. })
        ));
        assert!(decode_request(b"{not json").is_err());
        assert!(decode_request(br#"{"resourceSpans":5}"#).is_err());
        assert!(decode_request(request(r#","traceId":"zz""#).as_bytes()).is_err());
    }
}
