use std::sync::Arc;

use super::*;
use crate::model::{AttrValue, BatchView, KeyValue, Resource, Scope, Span, SpanKind, Status};

#[test]
fn varint_and_zigzag_round_trip() {
    for v in [
        0u64,
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        u64::MAX >> 1,
        u64::MAX,
    ] {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        assert_eq!(Reader::new(&b).varint().unwrap(), v);
        assert_eq!(varint_len(v), b.len(), "{v}");
    }
    assert_eq!(varint_len(u64::MAX), MAX_VARINT);
    for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
        assert_eq!(unzigzag(zigzag(v)), v);
    }
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    let resource = Arc::new(Resource {
        service_name: "svc".to_owned(),
        attributes: vec![],
    });
    let span = Span {
        trace_id: TraceId::from_bytes([1; 16]).unwrap(),
        span_id: SpanId::from_bytes([2; 8]).unwrap(),
        parent_span_id: Some(SpanId::from_bytes([3; 8]).unwrap()),
        trace_state: String::new(),
        flags: 1,
        name: "op".to_owned(),
        kind: SpanKind::Server,
        start_ns: 10,
        end_ns: 5,
        attributes: vec![KeyValue {
            key: "k".to_owned(),
            value: AttrValue::Array(vec![AttrValue::Int(-3), AttrValue::Double(1.5)]),
        }],
        events: vec![],
        links: vec![],
        status: Status::default(),
        resource,
        scope: Arc::new(Scope::default()),
    };
    let buf = encode_spans([&span]);
    let back = Decoded::new(&buf).unwrap().decode_all().unwrap();
    assert_eq!(back, vec![span]);
    for cut in 0..buf.len() {
        let _ = Decoded::new(&buf[..cut]).and_then(Decoded::decode_all);
    }
}

#[test]
fn equal_resources_and_scopes_are_stored_once_and_decode_to_their_spans() {
    let resource = |service: &str, zone: &str| {
        Arc::new(Resource {
            service_name: service.to_owned(),
            attributes: vec![KeyValue {
                key: "zone".to_owned(),
                value: AttrValue::String(zone.to_owned()),
            }],
        })
    };
    let scope = |name: &str| {
        Arc::new(Scope {
            name: name.to_owned(),
            ..Scope::default()
        })
    };
    let span = |id: u8, resource: Arc<Resource>, scope: Arc<Scope>| Span {
        trace_id: TraceId::from_bytes([1; 16]).unwrap(),
        span_id: SpanId::from_bytes([id; 8]).unwrap(),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 1,
        name: "op".to_owned(),
        kind: SpanKind::Server,
        start_ns: u64::from(id),
        end_ns: 100,
        attributes: vec![],
        events: vec![],
        links: vec![],
        status: Status::default(),
        resource,
        scope,
    };
    // Two resources (and two scopes) of equal content but distinct allocations, as two
    // `resource_spans` of one request give, and a third of other content.
    let spans = [
        span(1, resource("a", "eu"), scope("s")),
        span(2, resource("a", "eu"), scope("s")),
        span(3, resource("a", "us"), scope("t")),
    ];
    let buf = encode_spans(&spans);
    let back = Decoded::new(&buf).unwrap().decode_all().unwrap();
    assert_eq!(back, spans.to_vec());
    assert!(Arc::ptr_eq(&back[0].resource, &back[1].resource));
    assert!(Arc::ptr_eq(&back[0].scope, &back[1].scope));
    assert!(!Arc::ptr_eq(&back[0].scope, &back[2].scope));
}

#[test]
fn copies_of_a_span_keep_their_arrival_order() {
    // A retried export can bring the same span again; readers keep the first copy, so the
    // encoding must not reorder copies whose ids and start times are all equal.
    let copy = |n: usize| Span {
        trace_id: TraceId::from_bytes([(n % 3) as u8 + 1; 16]).unwrap(),
        span_id: SpanId::from_bytes([7; 8]).unwrap(),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 1,
        name: format!("copy-{n:02}"),
        kind: SpanKind::Server,
        start_ns: 1_000,
        end_ns: 2_000,
        attributes: vec![],
        events: vec![],
        links: vec![],
        status: Status::default(),
        resource: Arc::new(Resource {
            service_name: "svc".to_owned(),
            attributes: vec![],
        }),
        scope: Arc::new(Scope::default()),
    };
    let spans: Vec<Span> = (0..90).map(copy).collect();
    let back = Decoded::new(&encode_spans(&spans))
        .unwrap()
        .decode_all()
        .unwrap();
    for trace in 1..=3u8 {
        let names: Vec<&str> = back
            .iter()
            .filter(|s| s.trace_id.as_bytes()[0] == trace)
            .map(|s| s.name.as_str())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names.len(), 30);
        assert_eq!(names, sorted, "trace {trace}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// A chunk encoded from the received bytes is byte for byte the chunk encoded from the
    /// spans prost + `convert_request` make of them, and has the same summary.
    #[test]
    fn received_bytes_encode_like_converted_spans(
        request in crate::model::generated_requests::request()
    ) {
        use prost::Message as _;
        let bytes = request.encode_to_vec();
        let parsed = crate::model::parse_request(&bytes).unwrap();
        let converted = crate::model::convert_request(request);
        let from_spans = BatchView::from_spans(&converted.batch.spans);
        proptest::prop_assert_eq!(encode_batch(&parsed.batch), encode_batch(&from_spans));
        // Sized up front: a chunk that had to grow would have about twice the room it needs.
        let (chunk, _) = encode_batch_traces(&parsed.batch);
        proptest::prop_assert!(chunk.capacity() - chunk.len() <= 4 * MAX_VARINT);
        let (a, b) = (
            super::super::chunk::Summary::of_batch(&parsed.batch),
            super::super::chunk::Summary::of_batch(&from_spans),
        );
        proptest::prop_assert_eq!(a.tags, b.tags);
        proptest::prop_assert_eq!(a.ops, b.ops);
        proptest::prop_assert_eq!(&a.traces, &b.traces);
        // The encoder's trace ids (what the store's chunks use) are the summary's.
        let (_, traces) = encode_batch_traces(&parsed.batch);
        proptest::prop_assert_eq!(traces, a.traces);
    }
}

#[test]
fn fx_hasher_reads_every_byte_of_every_length() {
    use std::hash::Hasher as _;
    let hash = |bytes: &[u8]| {
        let mut h = FxHasher::default();
        h.write(bytes);
        h.finish()
    };
    let base: Vec<u8> = (0..24u8).map(|i| b'a' + i).collect();
    for n in 0..=base.len() {
        let s = &base[..n];
        for at in 0..n {
            let mut changed = s.to_vec();
            changed[at] ^= 0x20;
            assert_ne!(hash(s), hash(&changed), "length {n}, byte {at}");
        }
    }
}
