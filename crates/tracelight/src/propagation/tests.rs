//! Tests of [`Propagators`]: configuration, extraction precedence and injection.

use super::*;
use http::HeaderValue;
use opentelemetry::baggage::Baggage;
use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry::{KeyValue, StringValue};

use PropagatorKind::{B3Multi, B3Single, Baggage as BaggageKind, TraceContext};

const TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";
const TP_TRACE: u128 = 0x1234_5678_9012_3456_7890_1234_5678_9012;
const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_SPAN: &str = "e457b5a2e4d86bd1";

fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    h
}

fn remote(cx: &Context) -> SpanContext {
    cx.span().span_context().clone()
}

fn local_sc(trace: u128, span: u64, sampled: bool, ts: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::default().with_sampled(sampled),
        false,
        ts,
    )
}

#[test]
fn kinds_keep_order_and_drop_repeats() {
    let p = Propagators::new(&[
        B3Multi,
        TraceContext,
        B3Multi,
        BaggageKind,
        TraceContext,
        B3Single,
    ]);
    assert_eq!(p.kinds(), [B3Multi, TraceContext, BaggageKind, B3Single]);
    assert_eq!(Propagators::w3c().kinds(), [TraceContext, BaggageKind]);
    assert_eq!(Propagators::default(), Propagators::w3c());
    assert!(Propagators::none().kinds().is_empty());
    assert!(p.contains(B3Single) && !Propagators::w3c().contains(B3Single));
}

#[test]
fn otel_propagators_values() {
    let parse = Propagators::from_otel_propagators;
    assert_eq!(parse("").unwrap(), Propagators::w3c());
    assert_eq!(parse(" , ").unwrap(), Propagators::w3c());
    assert_eq!(parse("tracecontext,baggage").unwrap(), Propagators::w3c());
    assert_eq!(
        parse(" b3 , b3multi,b3").unwrap().kinds(),
        [B3Single, B3Multi]
    );
    assert_eq!(parse("none").unwrap(), Propagators::none());
    assert_eq!(parse("tracecontext,none").unwrap(), Propagators::none());
    assert_eq!(
        parse("tracecontext,jaeger"),
        Err(UnknownPropagator("jaeger".into()))
    );
    assert_eq!(
        parse("TraceContext"),
        Err(UnknownPropagator("TraceContext".into()))
    );
    for kind in [TraceContext, BaggageKind, B3Single, B3Multi] {
        assert_eq!(PropagatorKind::from_otel_name(kind.otel_name()), Some(kind));
    }
}

#[test]
fn fields_follow_kinds() {
    let fields: Vec<_> = Propagators::new(&[BaggageKind, B3Single])
        .fields()
        .collect();
    assert_eq!(fields, [BAGGAGE, B3_SINGLE]);
    assert_eq!(Propagators::w3c().fields().count(), 3);
    assert_eq!(Propagators::new(&[B3Multi]).fields().count(), 4);
}

#[test]
fn extract_w3c() {
    let h = headers(&[
        (TRACEPARENT, TP),
        (TRACESTATE, "foo=1"),
        (TRACESTATE, "bar=2"),
        (BAGGAGE, "user=alice,n=1"),
    ]);
    let cx = Propagators::w3c().extract(&h);
    let sc = remote(&cx);
    assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
    assert_eq!(sc.trace_id(), TraceId::from(TP_TRACE));
    assert_eq!(sc.span_id(), SpanId::from(0x1234_5678_9012_3456));
    assert_eq!(sc.trace_state().header(), "foo=1,bar=2");
    assert_eq!(cx.baggage().get("user"), Some(&StringValue::from("alice")));
    assert_eq!(cx.baggage().len(), 2);
}

#[test]
fn tracestate_is_ignored_without_valid_traceparent() {
    for tp in [
        None,
        Some("00-00000000000000000000000000000000-1234567890123456-01"),
        Some("ff-12345678901234567890123456789012-1234567890123456-01"),
    ] {
        let mut h = headers(&[(TRACESTATE, "foo=1")]);
        if let Some(tp) = tp {
            h.insert(TRACEPARENT, HeaderValue::from_static(tp));
        }
        let cx = Propagators::w3c().extract(&h);
        assert!(!remote(&cx).is_valid(), "{tp:?}");
        assert_eq!(remote(&cx).trace_state(), &TraceState::default());
    }
    // Duplicate traceparent: new trace, tracestate ignored.
    let h = headers(&[(TRACEPARENT, TP), (TRACEPARENT, TP), (TRACESTATE, "foo=1")]);
    assert!(!remote(&Propagators::w3c().extract(&h)).is_valid());
}

#[test]
fn invalid_tracestate_keeps_traceparent() {
    let h = headers(&[(TRACEPARENT, TP), (TRACESTATE, "foo=1,FOO=2")]);
    let sc = remote(&Propagators::w3c().extract(&h));
    assert!(sc.is_valid());
    assert_eq!(sc.trace_state(), &TraceState::default());
}

#[test]
fn extract_nothing_returns_given_context() {
    let parent = Context::new().with_baggage([KeyValue::new("keep", "me")]);
    let cx = Propagators::new(&[TraceContext, BaggageKind, B3Multi])
        .extract_with_context(&parent, &HeaderMap::new());
    assert_eq!(cx.baggage().get("keep"), Some(&StringValue::from("me")));
    assert!(!remote(&cx).is_valid());
    // An empty set extracts nothing.
    let h = headers(&[(TRACEPARENT, TP), (BAGGAGE, "a=1")]);
    let cx = Propagators::none().extract(&h);
    assert!(!remote(&cx).is_valid() && cx.baggage().is_empty());
}

#[test]
fn composite_last_valid_trace_format_wins() {
    let h = headers(&[
        (TRACEPARENT, TP),
        (X_B3_TRACE_ID, B3_TRACE),
        (X_B3_SPAN_ID, B3_SPAN),
        (X_B3_SAMPLED, "0"),
        (BAGGAGE, "k=v"),
    ]);
    let cx = Propagators::new(&[TraceContext, BaggageKind, B3Multi]).extract(&h);
    let sc = remote(&cx);
    assert_eq!(format!("{:032x}", sc.trace_id()), B3_TRACE);
    assert!(!sc.is_sampled() && sc.is_remote());
    assert_eq!(cx.baggage().get("k"), Some(&StringValue::from("v")));

    let cx = Propagators::new(&[B3Multi, TraceContext]).extract(&h);
    assert_eq!(remote(&cx).trace_id(), TraceId::from(TP_TRACE));

    // An invalid later format does not undo an earlier valid one.
    let h = headers(&[
        (TRACEPARENT, TP),
        (X_B3_TRACE_ID, B3_TRACE),
        (X_B3_SAMPLED, "1"),
    ]);
    let cx = Propagators::new(&[TraceContext, BaggageKind, B3Multi]).extract(&h);
    assert_eq!(remote(&cx).trace_id(), TraceId::from(TP_TRACE));

    // b3: 0 (deny, no ids) carries no span context.
    let h = headers(&[(TRACEPARENT, TP), (B3_SINGLE, "0")]);
    let cx = Propagators::new(&[TraceContext, B3Single]).extract(&h);
    assert_eq!(remote(&cx).trace_id(), TraceId::from(TP_TRACE));
    assert!(!remote(&Propagators::new(&[B3Single]).extract(&h)).is_valid());
}

#[test]
fn both_b3_kinds_read_both_b3_formats() {
    let single = headers(&[(B3_SINGLE, "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]);
    let multi = headers(&[(X_B3_TRACE_ID, "64fe8b2a57d3eff7"), (X_B3_SPAN_ID, B3_SPAN)]);
    for kind in [B3Single, B3Multi] {
        for h in [&single, &multi] {
            let sc = remote(&Propagators::new(&[kind]).extract(h));
            assert_eq!(
                sc.trace_id(),
                TraceId::from(0x64fe_8b2a_57d3_eff7),
                "{kind:?}"
            );
            assert!(sc.is_remote());
        }
    }
}

#[test]
fn baggage_replaces_earlier_baggage_only_when_non_empty() {
    let parent = Context::new().with_baggage([KeyValue::new("old", "1")]);
    let p = Propagators::new(&[BaggageKind]);
    let cx = p.extract_with_context(&parent, &headers(&[(BAGGAGE, "new=2")]));
    assert_eq!(cx.baggage().len(), 1);
    assert_eq!(cx.baggage().get("new"), Some(&StringValue::from("2")));
    let cx = p.extract_with_context(&parent, &headers(&[(BAGGAGE, "not valid")]));
    assert_eq!(cx.baggage().get("old"), Some(&StringValue::from("1")));
}

#[test]
fn inject_all_formats() {
    let ts = TraceState::from_key_value([("vendor", "x"), ("other", "y")]).unwrap();
    let sc = local_sc(
        0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
        0xb7ad_6b71_6920_3331,
        true,
        ts,
    );
    let mut baggage = Baggage::new();
    let _ = baggage.insert("user", "a b");
    let cx = Context::new()
        .with_remote_span_context(sc)
        .with_baggage(baggage);
    let mut h = HeaderMap::new();
    Propagators::new(&[TraceContext, BaggageKind, B3Single, B3Multi]).inject(&cx, &mut h);
    assert_eq!(
        h[TRACEPARENT],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(h[TRACESTATE], "vendor=x,other=y");
    assert_eq!(h[BAGGAGE], "user=a%20b");
    assert_eq!(
        h[B3_SINGLE],
        "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"
    );
    assert_eq!(h[X_B3_TRACE_ID], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(h[X_B3_SPAN_ID], "b7ad6b7169203331");
    assert_eq!(h[X_B3_SAMPLED], "1");
    assert_eq!(h.len(), 7);
}

#[test]
fn inject_replaces_stale_values_and_skips_invalid_contexts() {
    let mut h = headers(&[
        (
            TRACEPARENT,
            "00-11111111111111111111111111111111-1111111111111111-01",
        ),
        (TRACEPARENT, "garbage"),
        (TRACESTATE, "stale=1"),
    ]);
    let sc = local_sc(5, 6, false, TraceState::default());
    Propagators::w3c().inject_span_context(&sc, &mut h);
    assert_eq!(
        h.get_all(TRACEPARENT).iter().collect::<Vec<_>>(),
        ["00-00000000000000000000000000000005-0000000000000006-00"]
    );
    assert!(!h.contains_key(TRACESTATE));

    let mut h = HeaderMap::new();
    let all = Propagators::new(&[TraceContext, BaggageKind, B3Single, B3Multi]);
    all.inject_span_context(&SpanContext::empty_context(), &mut h);
    all.inject(&Context::new(), &mut h);
    assert!(h.is_empty());
    Propagators::none().inject_span_context(&sc, &mut h);
    assert!(h.is_empty());
}

#[test]
fn inject_span_context_writes_no_baggage() {
    let sc = local_sc(5, 6, true, TraceState::default());
    let mut h = HeaderMap::new();
    Propagators::w3c().inject_span_context(&sc, &mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key(TRACEPARENT));
}

#[test]
fn b3_debug_is_propagated_for_the_same_trace_only() {
    let h = headers(&[(B3_SINGLE, &format!("{B3_TRACE}-{B3_SPAN}-d"))]);
    let p = Propagators::new(&[B3Single, B3Multi]);
    let cx = p.extract(&h);
    assert!(remote(&cx).is_sampled());
    // A child span of the same trace (a new span id).
    let child = local_sc(
        0x80f1_98ee_5634_3ba8_64fe_8b2a_57d3_eff7,
        42,
        true,
        TraceState::NONE,
    );
    let child_cx = cx.with_remote_span_context(child);
    let mut out = HeaderMap::new();
    p.inject(&child_cx, &mut out);
    assert_eq!(out[B3_SINGLE], format!("{B3_TRACE}-000000000000002a-d"));
    assert_eq!(out[X_B3_FLAGS], "1");
    assert!(!out.contains_key(X_B3_SAMPLED));
    // Another trace in a context derived from it: no debug.
    let other = cx.with_remote_span_context(local_sc(7, 8, true, TraceState::NONE));
    let mut out = HeaderMap::new();
    p.inject(&other, &mut out);
    assert_eq!(
        out[B3_SINGLE],
        "00000000000000000000000000000007-0000000000000008-1"
    );
    // The fast path has no context, so no debug.
    let mut out = HeaderMap::new();
    p.inject_span_context(&remote(&cx), &mut out);
    assert_eq!(out[X_B3_SAMPLED], "1");
}

#[test]
fn round_trip_through_every_format() {
    let mut state: u64 = 0x1234_5678_9abc_def1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..500 {
        let trace = (u128::from(next()) << 64) | u128::from(next());
        let ts = TraceState::from_key_value([(format!("k{i}"), format!("v{}", next()))]).unwrap();
        let sc = local_sc(trace, next(), i % 2 == 0, ts);
        for kinds in [&[TraceContext][..], &[B3Single], &[B3Multi]] {
            let p = Propagators::new(kinds);
            let mut h = HeaderMap::new();
            p.inject_span_context(&sc, &mut h);
            let back = remote(&p.extract(&h));
            assert_eq!(back.trace_id(), sc.trace_id(), "{kinds:?}");
            assert_eq!(back.span_id(), sc.span_id(), "{kinds:?}");
            assert_eq!(back.is_sampled(), sc.is_sampled(), "{kinds:?}");
            assert!(back.is_remote());
            if kinds == [TraceContext] {
                assert_eq!(back.trace_state(), sc.trace_state());
            }
        }
    }
}

#[test]
fn hex_helpers() {
    assert_eq!(parse_hex_u128(b"ff"), Some(255));
    assert_eq!(parse_hex_u128(b"FF"), None);
    assert_eq!(parse_hex_u128(b""), None);
    assert_eq!(parse_hex_u128(&[b'f'; 33]), None);
    assert_eq!(parse_hex_u128(&[b'f'; 32]), Some(u128::MAX));
    assert_eq!(parse_hex_u64(&[b'f'; 16]), Some(u64::MAX));
    assert_eq!(parse_hex_u64(&[b'f'; 17]), None);
    let mut buf = [0u8; 4];
    write_hex(&mut buf, &[0xab, 0x01]);
    assert_eq!(&buf, b"ab01");
    let all: Vec<u8> = (0..=255).collect();
    let mut hex = vec![0u8; 512];
    write_hex(&mut hex, &all);
    let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected.as_bytes());
    assert_eq!(trim_ows(b" \t a b\t "), b"a b");
    assert_eq!(trim_ows(b" \t "), b"");
}
