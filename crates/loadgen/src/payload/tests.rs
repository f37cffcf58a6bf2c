use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost::Message as _;

use super::*;

const SERVICES: [&str; 12] = [
    "frontend",
    "cart",
    "payment",
    "api-gateway",
    "users",
    "auth",
    "web",
    "orders",
    "inventory",
    "mobile-bff",
    "recommendations",
    "catalog",
];

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// Spans grouped by trace id, each with its service.
fn traces(request: &ExportTraceServiceRequest) -> BTreeMap<Vec<u8>, Vec<(&Span, &str)>> {
    let mut out: BTreeMap<Vec<u8>, Vec<(&Span, &str)>> = BTreeMap::new();
    for (span, service) in spans_with_service(request) {
        out.entry(span.trace_id.clone())
            .or_default()
            .push((span, service));
    }
    out
}

#[test]
fn span_and_trace_counts() {
    for (spans, traces_expected) in [(100, 20), (512, 103), (7, 2), (1, 1)] {
        let request = build_request(spans, 42, 1_000);
        assert_eq!(span_count(&request), spans);
        assert_eq!(traces(&request).len(), traces_expected, "{spans} spans");
    }
}

#[test]
fn about_500_bytes_per_span() {
    for spans in [100, 512] {
        let bytes = build_request(spans, 7, 1_700_000_000_000_000_000).encoded_len();
        let per_span = bytes as f64 / spans as f64;
        assert!(
            (450.0..=550.0).contains(&per_span),
            "{spans} spans: {per_span:.0} B/span"
        );
    }
}

#[test]
fn ten_attributes_with_the_http_basics() {
    let request = build_request(512, 1, 1_000);
    for (span, _) in spans_with_service(&request) {
        assert_eq!(span.attributes.len(), ATTRIBUTES_PER_SPAN, "{}", span.name);
        let keys: BTreeSet<&str> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys.len(),
            ATTRIBUTES_PER_SPAN,
            "duplicate keys in {keys:?}"
        );
        for key in ["http.method", "http.route", "url.path", "user.id", "region"] {
            assert!(
                matches!(attr(span, key), Some(Value::StringValue(s)) if !s.is_empty()),
                "{key} missing on {}",
                span.name
            );
        }
        assert!(matches!(
            attr(span, "http.status_code"),
            Some(Value::IntValue(200 | 500))
        ));
        let Some(Value::StringValue(route)) = attr(span, "http.route") else {
            unreachable!()
        };
        let Some(Value::StringValue(method)) = attr(span, "http.method") else {
            unreachable!()
        };
        assert_eq!(span.name, format!("{method} {route}"));
        assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    }
}

#[test]
fn one_resource_per_service_from_a_small_set() {
    let request = build_request(512, 3, 1_000);
    let mut seen = BTreeSet::new();
    for rs in &request.resource_spans {
        let single = ExportTraceServiceRequest {
            resource_spans: vec![rs.clone()],
        };
        let (_, service) = spans_with_service(&single)[0];
        assert!(SERVICES.contains(&service), "unknown service {service}");
        assert!(
            seen.insert(service.to_owned()),
            "{service} has two resources"
        );
    }
    assert!(seen.len() >= 6, "only {seen:?}");
}

#[test]
fn traces_are_server_client_server_trees_over_three_services() {
    let request = build_request(500, 11, 5_000_000_000);
    for (trace_id, spans) in traces(&request) {
        assert_eq!(trace_id.len(), 16);
        assert!(trace_id.iter().any(|&b| b != 0));
        assert_eq!(spans.len(), SPANS_PER_TRACE);
        let by_id: HashMap<&[u8], (&Span, &str)> = spans
            .iter()
            .map(|&(s, service)| (s.span_id.as_slice(), (s, service)))
            .collect();
        assert_eq!(by_id.len(), SPANS_PER_TRACE, "span ids must be distinct");
        let roots: Vec<_> = spans
            .iter()
            .filter(|(s, _)| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1, "exactly one root");
        assert_eq!(roots[0].0.kind, SpanKind::Server as i32);
        let services: BTreeSet<&str> = spans.iter().map(|&(_, service)| service).collect();
        assert_eq!(services.len(), 3, "{services:?}");
        let mut kinds = BTreeMap::new();
        for &(span, service) in &spans {
            *kinds.entry(span.kind).or_insert(0) += 1;
            if span.parent_span_id.is_empty() {
                continue;
            }
            let (parent, parent_service) = by_id[span.parent_span_id.as_slice()];
            // Children run inside their parent.
            assert!(span.start_time_unix_nano >= parent.start_time_unix_nano);
            assert!(span.end_time_unix_nano <= parent.end_time_unix_nano);
            if span.kind == SpanKind::Client as i32 {
                // An outgoing call of the parent's own service…
                assert_eq!(parent.kind, SpanKind::Server as i32);
                assert_eq!(service, parent_service);
            } else {
                // …served by another service.
                assert_eq!(span.kind, SpanKind::Server as i32);
                assert_eq!(parent.kind, SpanKind::Client as i32);
                assert_ne!(service, parent_service);
                assert_eq!(span.name, parent.name);
            }
        }
        assert_eq!(kinds[&(SpanKind::Server as i32)], 3);
        assert_eq!(kinds[&(SpanKind::Client as i32)], 2);
    }
}

#[test]
fn a_partial_last_trace_keeps_its_parents() {
    // 512 = 102 × 5 + 2: the last trace has its root and first client span.
    let request = build_request(512, 5, 1_000);
    let all = traces(&request);
    let partial: Vec<_> = all
        .values()
        .filter(|s| s.len() != SPANS_PER_TRACE)
        .collect();
    assert_eq!(partial.len(), 1);
    let spans = partial[0];
    assert_eq!(spans.len(), 2);
    for (span, _) in spans {
        assert!(
            span.parent_span_id.is_empty()
                || spans.iter().any(|(p, _)| p.span_id == span.parent_span_id)
        );
    }
}

#[test]
fn deterministic_per_seed() {
    assert_eq!(build_request(100, 9, 1), build_request(100, 9, 1));
    assert_ne!(build_request(100, 9, 1), build_request(100, 10, 1));
}

#[test]
fn decodes_back() {
    let request = build_request(512, 2, 1_000);
    let bytes = request.encode_to_vec();
    assert_eq!(
        ExportTraceServiceRequest::decode(&bytes[..]).unwrap(),
        request
    );
}
