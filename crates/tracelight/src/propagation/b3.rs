//! Zipkin B3 propagation: the single `b3` header and the `X-B3-*` headers
//! (<https://github.com/openzipkin/b3-propagation>).

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

use super::{
    B3_SINGLE, X_B3_FLAGS, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_SPAN_ID, X_B3_TRACE_ID,
    parse_hex_u64, parse_hex_u128, trim_ows, write_hex,
};

/// A B3 sampling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum B3Sampling {
    /// `0`: do not record.
    Deny,
    /// `1`: record.
    Accept,
    /// `d` / `X-B3-Flags: 1`: debug, which implies accept.
    Debug,
}

impl B3Sampling {
    /// Whether spans are recorded (accept or debug).
    pub const fn is_sampled(self) -> bool {
        matches!(self, Self::Accept | Self::Debug)
    }
}

/// A parsed B3 header set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum B3 {
    /// Only a sampling decision, no parent (`b3: 0`, `b3: 1`, `b3: d`, or only
    /// `X-B3-Sampled` / `X-B3-Flags`). An OpenTelemetry [`SpanContext`] cannot carry it, so
    /// [`Propagators::extract`](super::Propagators::extract) ignores it.
    SamplingOnly(B3Sampling),
    /// A parent span.
    Span {
        /// 128-bit trace id; a 64-bit one is left-padded with zeros.
        trace_id: TraceId,
        /// The caller's span id.
        span_id: SpanId,
        /// `None` when deferred (absent).
        sampling: Option<B3Sampling>,
    },
}

impl B3 {
    /// A remote [`SpanContext`] for [`B3::Span`] (sampled for accept and debug, not sampled when
    /// denied or deferred); `None` for [`B3::SamplingOnly`].
    pub fn to_span_context(&self) -> Option<SpanContext> {
        match *self {
            Self::SamplingOnly(_) => None,
            Self::Span {
                trace_id,
                span_id,
                sampling,
            } => {
                let sampled = sampling.is_some_and(B3Sampling::is_sampled);
                Some(SpanContext::new(
                    trace_id,
                    span_id,
                    TraceFlags::default().with_sampled(sampled),
                    true,
                    TraceState::default(),
                ))
            }
        }
    }
}

/// Parses one `b3` value: `{trace-id}-{span-id}[-{sampling}[-{parent-span-id}]]` or a lone
/// sampling state. Ids are lowercase hex (trace id 16 or 32 digits, span ids 16) and non-zero;
/// sampling is `0`, `1` or `d`; the parent span id is checked and then ignored. Surrounding
/// spaces/tabs are ignored.
pub fn parse_b3_single(value: &[u8]) -> Option<B3> {
    let value = trim_ows(value);
    if let Some(sampling) = parse_sampling(value) {
        return Some(B3::SamplingOnly(sampling));
    }
    let mut parts = value.split(|&b| b == b'-');
    let trace_id = parse_trace_id(parts.next()?)?;
    let span_id = parse_span_id(parts.next()?)?;
    let sampling = match parts.next() {
        Some(s) => Some(parse_sampling(s)?),
        None => None,
    };
    if let Some(parent) = parts.next() {
        parse_span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(B3::Span {
        trace_id,
        span_id,
        sampling,
    })
}

/// The B3 information of `headers`: a valid single `b3` header (present exactly once) takes
/// precedence; otherwise the `X-B3-*` headers, each of which must appear at most once.
///
/// `X-B3-TraceId` and `X-B3-SpanId` must both be present and valid, or both absent (then only
/// a sampling decision is returned, if any). `X-B3-Sampled` is `1`/`0` (the legacy `true`/`false`
/// is accepted); `X-B3-Flags: 1` means debug and wins over `X-B3-Sampled`; other flag values are
/// ignored. `X-B3-ParentSpanId` is ignored.
pub fn parse_b3(headers: &HeaderMap) -> Option<B3> {
    if let Ok(Some(single)) = one_value(headers, &B3_SINGLE)
        && let Some(b3) = parse_b3_single(single)
    {
        return Some(b3);
    }
    parse_multi(headers)
}

fn parse_multi(headers: &HeaderMap) -> Option<B3> {
    let trace_id = one_value(headers, &X_B3_TRACE_ID).ok()?;
    let span_id = one_value(headers, &X_B3_SPAN_ID).ok()?;
    let debug = one_value(headers, &X_B3_FLAGS).ok()? == Some(b"1".as_slice());
    let sampled = match one_value(headers, &X_B3_SAMPLED).ok()? {
        None => None,
        Some(b"1" | b"true") => Some(B3Sampling::Accept),
        Some(b"0" | b"false") => Some(B3Sampling::Deny),
        Some(_) => return None,
    };
    let sampling = if debug {
        Some(B3Sampling::Debug)
    } else {
        sampled
    };
    match (trace_id, span_id) {
        (Some(trace_id), Some(span_id)) => Some(B3::Span {
            trace_id: parse_trace_id(trace_id)?,
            span_id: parse_span_id(span_id)?,
            sampling,
        }),
        (None, None) => sampling.map(B3::SamplingOnly),
        _ => None,
    }
}

/// Marks a context extracted from a B3 debug header, for the trace it belongs to.
#[derive(Debug)]
struct B3Debug(TraceId);

/// `cx` with the remote span context of the B3 headers, if they carry a parent span.
pub(crate) fn extract(cx: &Context, headers: &HeaderMap) -> Option<Context> {
    let b3 = parse_b3(headers)?;
    let sc = b3.to_span_context()?;
    let trace_id = sc.trace_id();
    let cx = cx.with_remote_span_context(sc);
    match b3 {
        B3::Span {
            sampling: Some(B3Sampling::Debug),
            ..
        } => Some(cx.with_value(B3Debug(trace_id))),
        _ => Some(cx),
    }
}

/// Whether `cx` was extracted from a B3 debug header of the trace of `sc` (OpenTelemetry
/// propagators spec: the debug flag MUST be propagated).
pub(crate) fn is_debug(cx: &Context, sc: &SpanContext) -> bool {
    cx.get::<B3Debug>().is_some_and(|d| d.0 == sc.trace_id())
}

/// `{trace-id}-{span-id}-{1|0|d}`.
pub(crate) fn format_single(sc: &SpanContext, debug: bool) -> HeaderValue {
    let mut buf = [b'-'; 51];
    write_hex(&mut buf[..32], &sc.trace_id().to_bytes());
    write_hex(&mut buf[33..49], &sc.span_id().to_bytes());
    buf[50] = sampling_char(sc, debug);
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// `X-B3-TraceId`, `X-B3-SpanId` and either `X-B3-Sampled` or (debug) `X-B3-Flags: 1`; stale
/// values of the other B3 headers are removed.
pub(crate) fn inject_multi(sc: &SpanContext, debug: bool, headers: &mut HeaderMap) {
    let mut trace = [0u8; 32];
    write_hex(&mut trace, &sc.trace_id().to_bytes());
    let mut span = [0u8; 16];
    write_hex(&mut span, &sc.span_id().to_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&trace) {
        super::set(headers, X_B3_TRACE_ID, value);
    }
    if let Ok(value) = HeaderValue::from_bytes(&span) {
        super::set(headers, X_B3_SPAN_ID, value);
    }
    drop(headers.remove(X_B3_PARENT_SPAN_ID));
    if debug {
        // "Debug implies an accept decision, so don't also send the X-B3-Sampled header."
        drop(headers.remove(X_B3_SAMPLED));
        super::set(headers, X_B3_FLAGS, HeaderValue::from_static("1"));
    } else {
        drop(headers.remove(X_B3_FLAGS));
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        super::set(headers, X_B3_SAMPLED, HeaderValue::from_static(sampled));
    }
}

fn sampling_char(sc: &SpanContext, debug: bool) -> u8 {
    match (debug, sc.is_sampled()) {
        (true, _) => b'd',
        (false, true) => b'1',
        (false, false) => b'0',
    }
}

/// The only value of `name`, trimmed: `Ok(None)` if absent, `Err` if repeated.
fn one_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h [u8]>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first.map(|v| trim_ows(v.as_bytes())))
}

fn parse_sampling(s: &[u8]) -> Option<B3Sampling> {
    match s {
        b"0" => Some(B3Sampling::Deny),
        b"1" => Some(B3Sampling::Accept),
        b"d" => Some(B3Sampling::Debug),
        _ => None,
    }
}

/// 16 or 32 lowercase hex digits, not all zero.
fn parse_trace_id(s: &[u8]) -> Option<TraceId> {
    if s.len() != 16 && s.len() != 32 {
        return None;
    }
    parse_hex_u128(s).filter(|&id| id != 0).map(TraceId::from)
}

/// 16 lowercase hex digits, not all zero.
fn parse_span_id(s: &[u8]) -> Option<SpanId> {
    if s.len() != 16 {
        return None;
    }
    parse_hex_u64(s).filter(|&id| id != 0).map(SpanId::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";
    const PARENT: &str = "05e3ac9a4f6e3b90";

    fn single(s: &str) -> Option<B3> {
        parse_b3_single(s.as_bytes())
    }

    fn span(trace: u128, span: u64, sampling: Option<B3Sampling>) -> B3 {
        B3::Span {
            trace_id: TraceId::from(trace),
            span_id: SpanId::from(span),
            sampling,
        }
    }

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append((*name).clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn sc(sampled: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(0x80f1_98ee_5634_3ba8_64fe_8b2a_57d3_eff7),
            SpanId::from(0xe457_b5a2_e4d8_6bd1),
            TraceFlags::default().with_sampled(sampled),
            false,
            TraceState::default(),
        )
    }

    const T128: u128 = 0x80f1_98ee_5634_3ba8_64fe_8b2a_57d3_eff7;
    const S64: u64 = 0xe457_b5a2_e4d8_6bd1;

    #[test]
    fn single_header_forms() {
        assert_eq!(
            single(&format!("{TRACE}-{SPAN}")),
            Some(span(T128, S64, None))
        );
        assert_eq!(
            single(&format!("{TRACE}-{SPAN}-1")),
            Some(span(T128, S64, Some(B3Sampling::Accept)))
        );
        assert_eq!(
            single(&format!("{TRACE}-{SPAN}-0-{PARENT}")),
            Some(span(T128, S64, Some(B3Sampling::Deny)))
        );
        assert_eq!(
            single(&format!(" {TRACE}-{SPAN}-d\t")),
            Some(span(T128, S64, Some(B3Sampling::Debug)))
        );
    }

    #[test]
    fn single_header_64_bit_trace_id_is_left_padded() {
        assert_eq!(
            single(&format!("64fe8b2a57d3eff7-{SPAN}-1")),
            Some(span(0x64fe_8b2a_57d3_eff7, S64, Some(B3Sampling::Accept)))
        );
    }

    #[test]
    fn single_header_sampling_only() {
        assert_eq!(single("0"), Some(B3::SamplingOnly(B3Sampling::Deny)));
        assert_eq!(single("1"), Some(B3::SamplingOnly(B3Sampling::Accept)));
        assert_eq!(single("d"), Some(B3::SamplingOnly(B3Sampling::Debug)));
        assert_eq!(B3::SamplingOnly(B3Sampling::Deny).to_span_context(), None);
    }

    #[test]
    fn single_header_invalid() {
        for bad in [
            String::new(),
            "2".into(),
            "true".into(),
            TRACE.into(),
            format!("{TRACE}-"),
            format!("{TRACE}-{SPAN}-"),
            format!("{TRACE}-{SPAN}-2"),
            format!("{TRACE}-{SPAN}-true"),
            format!("{TRACE}-{SPAN}-1-"),
            format!("{TRACE}-{SPAN}-1-{PARENT}-x"),
            format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b9"),
            format!("{TRACE}-{SPAN}-{PARENT}"),
            format!("{}-{SPAN}-1", TRACE.to_uppercase()),
            format!("{TRACE}-E457B5A2E4D86BD1"),
            format!("{}-{SPAN}", &TRACE[..31]),
            format!("{}-{SPAN}", &TRACE[..20]),
            format!("{TRACE}0-{SPAN}"),
            format!("{TRACE}-{}", &SPAN[..15]),
            format!("{}-{SPAN}", "0".repeat(32)),
            format!("{}-{SPAN}", "0".repeat(16)),
            format!("{TRACE}-{}", "0".repeat(16)),
        ] {
            assert_eq!(single(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn span_context_conversion() {
        let sc = span(T128, S64, Some(B3Sampling::Debug))
            .to_span_context()
            .unwrap();
        assert!(sc.is_sampled() && sc.is_remote() && sc.is_valid());
        let sc = span(T128, S64, None).to_span_context().unwrap();
        assert!(!sc.is_sampled());
        let sc = span(T128, S64, Some(B3Sampling::Deny))
            .to_span_context()
            .unwrap();
        assert!(!sc.is_sampled());
    }

    #[test]
    fn multi_headers() {
        let h = headers(&[
            (&X_B3_TRACE_ID, TRACE),
            (&X_B3_SPAN_ID, SPAN),
            (&X_B3_SAMPLED, "1"),
            (&X_B3_PARENT_SPAN_ID, "not even hex"),
        ]);
        assert_eq!(
            parse_b3(&h),
            Some(span(T128, S64, Some(B3Sampling::Accept)))
        );
        let h = headers(&[(&X_B3_TRACE_ID, "64fe8b2a57d3eff7"), (&X_B3_SPAN_ID, SPAN)]);
        assert_eq!(parse_b3(&h), Some(span(0x64fe_8b2a_57d3_eff7, S64, None)));
        for (value, expected) in [
            ("0", B3Sampling::Deny),
            ("false", B3Sampling::Deny),
            ("true", B3Sampling::Accept),
        ] {
            let h = headers(&[
                (&X_B3_TRACE_ID, TRACE),
                (&X_B3_SPAN_ID, SPAN),
                (&X_B3_SAMPLED, value),
            ]);
            assert_eq!(parse_b3(&h), Some(span(T128, S64, Some(expected))));
        }
        // Debug wins over X-B3-Sampled.
        let h = headers(&[
            (&X_B3_TRACE_ID, TRACE),
            (&X_B3_SPAN_ID, SPAN),
            (&X_B3_SAMPLED, "0"),
            (&X_B3_FLAGS, "1"),
        ]);
        assert_eq!(parse_b3(&h), Some(span(T128, S64, Some(B3Sampling::Debug))));
        // Sampling only.
        let h = headers(&[(&X_B3_SAMPLED, "0")]);
        assert_eq!(parse_b3(&h), Some(B3::SamplingOnly(B3Sampling::Deny)));
        let h = headers(&[(&X_B3_FLAGS, "1")]);
        assert_eq!(parse_b3(&h), Some(B3::SamplingOnly(B3Sampling::Debug)));
        assert_eq!(parse_b3(&HeaderMap::new()), None);
    }

    #[test]
    fn multi_headers_invalid() {
        let cases: &[&[(&HeaderName, &str)]] = &[
            &[(&X_B3_TRACE_ID, TRACE)],
            &[(&X_B3_SPAN_ID, SPAN)],
            &[
                (&X_B3_TRACE_ID, TRACE),
                (&X_B3_SPAN_ID, SPAN),
                (&X_B3_SAMPLED, "yes"),
            ],
            &[
                (&X_B3_TRACE_ID, TRACE),
                (&X_B3_SPAN_ID, SPAN),
                (&X_B3_SPAN_ID, SPAN),
            ],
            &[
                (&X_B3_TRACE_ID, "80F198EE56343BA864FE8B2A57D3EFF7"),
                (&X_B3_SPAN_ID, SPAN),
            ],
            &[
                (&X_B3_TRACE_ID, "00000000000000000000000000000000"),
                (&X_B3_SPAN_ID, SPAN),
            ],
            &[(&X_B3_TRACE_ID, TRACE), (&X_B3_SPAN_ID, "0000000000000000")],
            &[(&X_B3_TRACE_ID, TRACE), (&X_B3_SPAN_ID, "e457b5a2e4d86bd")],
        ];
        for case in cases {
            assert_eq!(parse_b3(&headers(case)), None, "{case:?}");
        }
    }

    #[test]
    fn single_header_takes_precedence_and_falls_back() {
        let multi = [
            (&X_B3_TRACE_ID, "64fe8b2a57d3eff7"),
            (&X_B3_SPAN_ID, PARENT),
        ];
        let valid_single = format!("{TRACE}-{SPAN}-1");
        let mut h = headers(&multi);
        h.insert(B3_SINGLE, HeaderValue::from_str(&valid_single).unwrap());
        assert_eq!(
            parse_b3(&h),
            Some(span(T128, S64, Some(B3Sampling::Accept)))
        );
        let mut h = headers(&multi);
        h.insert(B3_SINGLE, HeaderValue::from_static("garbage"));
        assert_eq!(
            parse_b3(&h),
            Some(span(0x64fe_8b2a_57d3_eff7, 0x05e3_ac9a_4f6e_3b90, None))
        );
        // Repeated b3 header: ignored, multi used.
        let mut h = headers(&multi);
        h.append(B3_SINGLE, HeaderValue::from_str(&valid_single).unwrap());
        h.append(B3_SINGLE, HeaderValue::from_str(&valid_single).unwrap());
        assert_eq!(
            parse_b3(&h),
            Some(span(0x64fe_8b2a_57d3_eff7, 0x05e3_ac9a_4f6e_3b90, None))
        );
    }

    #[test]
    fn format_single_header() {
        assert_eq!(format_single(&sc(true), false), format!("{TRACE}-{SPAN}-1"));
        assert_eq!(
            format_single(&sc(false), false),
            format!("{TRACE}-{SPAN}-0")
        );
        assert_eq!(format_single(&sc(false), true), format!("{TRACE}-{SPAN}-d"));
    }

    #[test]
    fn inject_multi_headers_replaces_stale_ones() {
        let mut h = headers(&[
            (&X_B3_PARENT_SPAN_ID, PARENT),
            (&X_B3_FLAGS, "1"),
            (&X_B3_SAMPLED, "1"),
            (&X_B3_SAMPLED, "1"),
        ]);
        inject_multi(&sc(false), false, &mut h);
        assert_eq!(h[&X_B3_TRACE_ID], TRACE);
        assert_eq!(h[&X_B3_SPAN_ID], SPAN);
        assert_eq!(h.get_all(&X_B3_SAMPLED).iter().collect::<Vec<_>>(), ["0"]);
        assert!(!h.contains_key(&X_B3_FLAGS) && !h.contains_key(&X_B3_PARENT_SPAN_ID));
        inject_multi(&sc(true), true, &mut h);
        assert_eq!(h[&X_B3_FLAGS], "1");
        assert!(!h.contains_key(&X_B3_SAMPLED));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn round_trip_generated_ids() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..1000 {
            let trace = if i % 3 == 0 {
                u128::from(next())
            } else {
                (u128::from(next()) << 64) | u128::from(next())
            };
            let sc = SpanContext::new(
                TraceId::from(trace),
                SpanId::from(next()),
                TraceFlags::default().with_sampled(i % 2 == 0),
                false,
                TraceState::default(),
            );
            let expected = Some(B3::Span {
                trace_id: sc.trace_id(),
                span_id: sc.span_id(),
                sampling: Some(if i % 2 == 0 {
                    B3Sampling::Accept
                } else {
                    B3Sampling::Deny
                }),
            });
            assert_eq!(
                parse_b3_single(format_single(&sc, false).as_bytes()),
                expected
            );
            let mut h = HeaderMap::new();
            inject_multi(&sc, false, &mut h);
            assert_eq!(parse_b3(&h), expected);
        }
    }
}
