#![allow(clippy::unwrap_used, reason = "test assertions")]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::*;
use crate::model::convert_request;

fn both(bytes: &[u8]) {
    let prost = ExportTraceServiceRequest::decode(bytes);
    let wire = parse_request(bytes);
    match (prost, wire) {
        (Ok(request), Ok(parsed)) => {
            let converted = convert_request(request);
            assert_eq!(parsed.rejected, converted.rejected);
            assert_eq!(parsed.first_rejection, converted.first_rejection);
            assert_eq!(parsed.batch.to_spans(), converted.batch.spans);
        }
        (Err(_), Err(_)) => {}
        (p, w) => panic!("prost: {p:?}\nwire: {w:?}"),
    }
}

#[test]
fn empty_request() {
    both(&[]);
    assert!(parse_request(&[]).unwrap().batch.is_empty());
}

#[test]
fn malformed_inputs_are_errors() {
    assert_eq!(parse_request(&[0x0a]).unwrap_err(), WireError::Truncated);
    assert_eq!(
        parse_request(&[0x0a, 5, 1]).unwrap_err(),
        WireError::Truncated
    );
    assert!(matches!(
        parse_request(&[0x08, 1]).unwrap_err(),
        WireError::WireType { .. }
    ));
    assert!(matches!(
        parse_request(&[0x00]).unwrap_err(),
        WireError::Key(0)
    ));
    assert_eq!(parse_request(&[0xff; 11]).unwrap_err(), WireError::Varint);
}

pub(crate) mod generated {
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue as PKv, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
    use proptest::prelude::*;

    use super::*;

    fn leaf() -> impl Strategy<Value = any_value::Value> {
        prop_oneof![
            "[a-z/ é]{0,24}".prop_map(any_value::Value::StringValue),
            any::<bool>().prop_map(any_value::Value::BoolValue),
            any::<i64>().prop_map(any_value::Value::IntValue),
            any::<f64>().prop_map(any_value::Value::DoubleValue),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(any_value::Value::BytesValue),
        ]
    }

    fn value() -> impl Strategy<Value = Option<AnyValue>> {
        let tree = leaf().prop_recursive(4, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(|values| {
                    any_value::Value::ArrayValue(ArrayValue {
                        values: values
                            .into_iter()
                            .map(|v| AnyValue { value: Some(v) })
                            .collect(),
                    })
                }),
                proptest::collection::vec(("[a-c]{1,2}", inner), 0..3).prop_map(|kvs| {
                    any_value::Value::KvlistValue(KeyValueList {
                        values: kvs
                            .into_iter()
                            .map(|(key, v)| PKv {
                                key,
                                value: Some(AnyValue { value: Some(v) }),
                                ..Default::default()
                            })
                            .collect(),
                    })
                }),
            ]
        });
        prop_oneof![
            6 => tree.prop_map(|v| Some(AnyValue { value: Some(v) })),
            1 => Just(Some(AnyValue { value: None })),
            1 => Just(None),
        ]
    }

    fn attrs() -> impl Strategy<Value = Vec<PKv>> {
        proptest::collection::vec(("[a-z.]{1,12}", value()), 0..5).prop_map(|kvs| {
            kvs.into_iter()
                .map(|(key, value)| PKv {
                    key,
                    value,
                    ..Default::default()
                })
                .collect()
        })
    }

    fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => proptest::collection::vec(any::<u8>(), len..=len),
            1 => Just(vec![0; len]),
            1 => proptest::collection::vec(any::<u8>(), 0..len + 3),
        ]
    }

    fn otlp_span() -> impl Strategy<Value = Span> {
        let events = proptest::collection::vec((any::<u64>(), "[a-z]{0,6}", attrs()), 0..3);
        let links = proptest::collection::vec((id(16), id(8), "[a-z=,]{0,8}", attrs()), 0..2);
        (
            (
                id(16),
                id(8),
                prop_oneof![Just(Vec::new()), id(8)],
                "[a-z=]{0,6}",
            ),
            (
                any::<u32>(),
                "[A-Z /{}a-z]{0,16}",
                0..7i32,
                any::<u64>(),
                any::<u64>(),
            ),
            attrs(),
            events,
            links,
            proptest::option::of((0..4i32, "[a-z]{0,8}")),
        )
            .prop_map(
                |(
                    (trace_id, span_id, parent, state),
                    (flags, name, kind, start, end),
                    attributes,
                    events,
                    links,
                    status,
                )| {
                    Span {
                        trace_id,
                        span_id,
                        parent_span_id: parent,
                        trace_state: state,
                        flags,
                        name,
                        kind,
                        start_time_unix_nano: start,
                        end_time_unix_nano: end,
                        attributes,
                        dropped_attributes_count: 1,
                        events: events
                            .into_iter()
                            .map(|(time_unix_nano, name, attributes)| span::Event {
                                time_unix_nano,
                                name,
                                attributes,
                                dropped_attributes_count: 0,
                            })
                            .collect(),
                        links: links
                            .into_iter()
                            .map(|(trace_id, span_id, trace_state, attributes)| span::Link {
                                trace_id,
                                span_id,
                                trace_state,
                                attributes,
                                ..Default::default()
                            })
                            .collect(),
                        status: status.map(|(code, message)| Status { code, message }),
                        ..Default::default()
                    }
                },
            )
    }

    /// Export requests with several resources and scopes, every kind of value (nested ones
    /// included), events, links, and some invalid ids.
    pub(crate) fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
        let scope_spans = (
            proptest::option::of(("[a-z]{0,5}", "[0-9.]{0,4}", attrs())),
            proptest::collection::vec(otlp_span(), 0..5),
        )
            .prop_map(|(scope, spans)| ScopeSpans {
                scope: scope.map(|(name, version, attributes)| InstrumentationScope {
                    name,
                    version,
                    attributes,
                    ..Default::default()
                }),
                spans,
                schema_url: "s".into(),
            });
        let service = prop_oneof![
            Just(None),
            "[a-z]{0,4}".prop_map(|s| Some(PKv {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s)),
                }),
                ..Default::default()
            })),
        ];
        let resource_spans = (
            proptest::option::of((service, attrs())),
            proptest::collection::vec(scope_spans, 0..3),
        )
            .prop_map(|(resource, scope_spans)| ResourceSpans {
                resource: resource.map(|(service, mut attributes)| {
                    attributes.extend(service);
                    Resource {
                        attributes,
                        ..Default::default()
                    }
                }),
                scope_spans,
                schema_url: String::new(),
            });
        proptest::collection::vec(resource_spans, 0..3)
            .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The reader sees what prost + `convert_request` see, span for span.
        #[test]
        fn reader_agrees_with_prost(request in request()) {
            both(&request.encode_to_vec());
        }

        /// Damaged bytes never panic; whatever the reader accepts holds only well-formed views.
        #[test]
        fn damaged_bytes_never_panic(
            request in request(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = request.encode_to_vec();
            if bytes.is_empty() {
                return Ok(());
            }
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= b;
            }
            if let Ok(parsed) = parse_request(&bytes) {
                let _ = parsed.batch.to_spans();
            }
            let n = cut.index(bytes.len());
            let _ = parse_request(&bytes[..n]);
        }
    }

    /// Fields out of the usual order (legal protobuf; concatenated messages merge): spans
    /// before their resource, events before the attributes, a scope after its spans.
    #[test]
    fn field_order_does_not_matter() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            attributes: vec![PKv {
                key: "a".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(3)),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let events_only = Span {
            events: vec![span::Event {
                name: "e".into(),
                attributes: span.attributes.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut span_bytes = events_only.encode_to_vec();
        span_bytes.extend(span.encode_to_vec());
        let merged_span = Span::decode(span_bytes.as_slice()).unwrap();
        // ScopeSpans: spans (field 2) then scope (field 1).
        let mut scope_spans = Vec::new();
        prost::encoding::bytes::encode(2, &span_bytes, &mut scope_spans);
        scope_spans.extend(
            ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        // ResourceSpans: scope spans (field 2) then the resource (field 1).
        let mut resource_spans = Vec::new();
        prost::encoding::bytes::encode(2, &scope_spans, &mut resource_spans);
        resource_spans.extend(
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![PKv {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("api".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let mut request = Vec::new();
        prost::encoding::bytes::encode(1, &resource_spans, &mut request);
        both(&request);
        let parsed = parse_request(&request).unwrap();
        let spans = parsed.batch.to_spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].service_name(), "api");
        assert_eq!(spans[0].scope.name, "lib");
        assert_eq!(spans[0].events.len(), merged_span.events.len());
        assert_eq!(spans[0].attributes.len(), 1);
    }

    /// A request with one span whose only attribute is the `KeyValue` message `kv`, as bytes.
    fn with_attribute(kv: &[u8]) -> Vec<u8> {
        let mut span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            ..Default::default()
        }
        .encode_to_vec();
        prost::encoding::bytes::encode(9, &kv.to_vec(), &mut span);
        let mut scope_spans = Vec::new();
        prost::encoding::bytes::encode(2, &span, &mut scope_spans);
        let mut resource_spans = Vec::new();
        prost::encoding::bytes::encode(2, &scope_spans, &mut resource_spans);
        let mut request = Vec::new();
        prost::encoding::bytes::encode(1, &resource_spans, &mut request);
        request
    }

    /// The short path for the usual `KeyValue` / `AnyValue` layouts and the general loop agree
    /// with prost on layouts near them: other orders, repeated and unknown fields, two-byte
    /// lengths, bad UTF-8, trailing bytes.
    #[test]
    fn attribute_layouts_read_like_prost() {
        let long = "k".repeat(200);
        let value_str = |s: &str| {
            let mut v = Vec::new();
            prost::encoding::string::encode(1, &s.to_owned(), &mut v);
            v
        };
        let value_int = |i: i64| {
            let mut v = Vec::new();
            prost::encoding::int64::encode(3, &i, &mut v);
            v
        };
        let kv = |parts: &[(u32, &[u8])]| {
            let mut out = Vec::new();
            for (field, bytes) in parts {
                prost::encoding::bytes::encode(*field, &bytes.to_vec(), &mut out);
            }
            out
        };
        let mut unknown = value_str("v");
        prost::encoding::uint32::encode(9, &7, &mut unknown);
        let mut int_then_junk = value_int(5);
        int_then_junk.push(0x80);
        let layouts: Vec<Vec<u8>> = vec![
            kv(&[(1, b"key"), (2, &value_str("v"))]),
            kv(&[(1, b"key"), (2, &value_int(-3))]),
            kv(&[(1, b"key"), (2, &value_int(i64::MAX))]),
            kv(&[(1, b"key"), (2, &[])]),
            kv(&[(1, b""), (2, &value_str(""))]),
            kv(&[(2, &value_str("v")), (1, b"key")]),
            kv(&[(1, b"a"), (1, b"b"), (2, &value_str("v"))]),
            kv(&[(1, b"key"), (2, &value_str("v")), (2, &value_int(1))]),
            kv(&[(1, long.as_bytes()), (2, &value_str("v"))]),
            kv(&[(1, b"key"), (2, &value_str(&long))]),
            kv(&[(1, b"key"), (2, &unknown)]),
            kv(&[(1, b"key"), (2, &int_then_junk)]),
            kv(&[(1, b"\xff\xfe"), (2, &value_str("v"))]),
            kv(&[(1, b"key"), (2, &[0x0a, 2, 0xc3, 0x28])]),
            kv(&[(1, b"key")]),
            kv(&[(2, &value_int(9))]),
        ];
        for (i, layout) in layouts.iter().enumerate() {
            let request = with_attribute(layout);
            let prost = ExportTraceServiceRequest::decode(request.as_slice()).is_ok();
            assert_eq!(parse_request(&request).is_ok(), prost, "layout {i}");
            both(&request);
        }
    }

    /// Values nested deeper than the conversion keeps become `Empty`, as with prost.
    #[test]
    fn deep_values_are_cut_like_the_conversion() {
        let mut v = any_value::Value::IntValue(1);
        for _ in 0..20 {
            v = any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(v) }],
            });
        }
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        attributes: vec![PKv {
                            key: "deep".into(),
                            value: Some(AnyValue { value: Some(v) }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        both(&request.encode_to_vec());
    }
}
