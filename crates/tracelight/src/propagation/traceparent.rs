//! The W3C `traceparent` header (W3C Trace Context, "Traceparent Header").

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId};

use super::{TRACEPARENT, hex_digit, parse_hex_u64, parse_hex_u128, trim_ows, write_hex};

/// Length of a version-`00` `traceparent`: `vv-{32}-{16}-ff`.
const LEN: usize = 55;

/// A parsed, valid `traceparent` (version ≠ `ff`, non-zero ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    version: u8,
    trace_id: TraceId,
    parent_id: SpanId,
    flags: TraceFlags,
}

impl TraceParent {
    /// Parses one `traceparent` field value.
    ///
    /// Surrounding spaces/tabs are ignored; hex must be lowercase; version `ff` and all-zero ids
    /// are invalid; version `00` must be exactly 55 characters; a higher version is read from
    /// its first 55 characters, which must be the whole value or be followed by `-`
    /// ("Versioning of traceparent"). Non-ASCII bytes anywhere make the value invalid.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let value = trim_ows(value);
        let (head, rest) = value.split_at_checked(LEN)?;
        let head: &[u8; LEN] = head.try_into().ok()?;
        let version = hex_byte(head[0], head[1])?;
        match (version, rest.first()) {
            (0xff, _) | (0x00, Some(_)) => return None,
            (_, Some(&next)) if next != b'-' || !rest.is_ascii() => return None,
            _ => {}
        }
        if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
            return None;
        }
        let trace_id = parse_hex_u128(&head[3..35])?;
        let parent_id = parse_hex_u64(&head[36..52])?;
        let flags = hex_byte(head[53], head[54])?;
        if trace_id == 0 || parent_id == 0 {
            return None;
        }
        Some(Self {
            version,
            trace_id: TraceId::from(trace_id),
            parent_id: SpanId::from(parent_id),
            flags: TraceFlags::new(flags),
        })
    }

    /// The version byte (`00` today; higher versions are parsed as described in [`Self::parse`]).
    pub const fn version(&self) -> u8 {
        self.version
    }

    /// The trace id (never all zeros).
    pub const fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The caller's span id, `parent-id` in the spec (never all zeros).
    pub const fn parent_id(&self) -> SpanId {
        self.parent_id
    }

    /// The 8 flag bits exactly as received, including bits this version does not define.
    pub const fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// Whether the caller may have recorded its span (the `sampled` bit).
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// A remote [`SpanContext`] carrying only the `sampled` flag (the only flag defined for
    /// version `00`; "Vendors MUST set those to zero", "Other Flags").
    pub fn to_span_context(&self, trace_state: opentelemetry::trace::TraceState) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.parent_id,
            self.flags & TraceFlags::SAMPLED,
            true,
            trace_state,
        )
    }
}

/// The `traceparent` of `headers`, or `None` if it is absent, invalid, or present more than once
/// (several fields cannot be combined into one value, so the test suite's
/// `test_traceparent_duplicated` expects a new trace).
pub fn parse_traceparent(headers: &HeaderMap) -> Option<TraceParent> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    TraceParent::parse(value.as_bytes())
}

/// `00-{trace-id}-{span-id}-{flags}` for `sc`, with only the `sampled` flag. Formats into a stack
/// buffer; the span context is not checked for validity.
pub fn format_traceparent(sc: &SpanContext) -> HeaderValue {
    let buf = encode(sc.trace_id(), sc.span_id(), sc.trace_flags());
    // Always valid: only hex digits and '-'.
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The 55 bytes of a version-`00` `traceparent`.
pub(crate) fn encode(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> [u8; LEN] {
    let mut buf = [b'-'; LEN];
    buf[0] = b'0';
    buf[1] = b'0';
    write_hex(&mut buf[3..35], &trace_id.to_bytes());
    write_hex(&mut buf[36..52], &span_id.to_bytes());
    write_hex(&mut buf[53..55], &[(flags & TraceFlags::SAMPLED).to_u8()]);
    buf
}

/// The remote span context of `headers` (`traceparent` + `tracestate`), if `traceparent` is
/// valid; `tracestate` is only read then ("Tracestate Header": it is ignored without a valid `traceparent`).
pub(crate) fn extract_span_context(headers: &HeaderMap) -> Option<SpanContext> {
    let parent = parse_traceparent(headers)?;
    Some(parent.to_span_context(super::parse_tracestate(headers)))
}

#[inline]
fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some((hex_digit(hi)? << 4) | hex_digit(lo)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceState;

    const VALID: &str = "00-12345678901234567890123456789012-1234567890123456-01";

    fn parse(s: &str) -> Option<TraceParent> {
        TraceParent::parse(s.as_bytes())
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(TRACEPARENT, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn valid_version_00() {
        let tp = parse(VALID).unwrap();
        assert_eq!(tp.version(), 0);
        assert_eq!(
            tp.trace_id(),
            TraceId::from(0x1234_5678_9012_3456_7890_1234_5678_9012)
        );
        assert_eq!(tp.parent_id(), SpanId::from(0x1234_5678_9012_3456));
        assert!(tp.is_sampled());
        let tp = parse("00-12345678901234567890123456789012-1234567890123456-00").unwrap();
        assert!(!tp.is_sampled());
    }

    #[test]
    fn all_lowercase_hex_digits_are_accepted() {
        let tp = parse("00-0123456789abcdeffedcba9876543210-0123456789abcdef-00").unwrap();
        assert_eq!(
            tp.trace_id(),
            TraceId::from(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210)
        );
        assert_eq!(tp.parent_id(), SpanId::from(0x0123_4567_89ab_cdef));
    }

    #[test]
    fn uppercase_hex_is_invalid() {
        assert!(parse("00-ABCDEF78901234567890123456789012-1234567890123456-01").is_none());
        assert!(parse("00-12345678901234567890123456789012-ABCDEF7890123456-01").is_none());
        assert!(parse("00-12345678901234567890123456789012-1234567890123456-0A").is_none());
        assert!(parse("0A-12345678901234567890123456789012-1234567890123456-01").is_none());
    }

    #[test]
    fn version_ff_is_invalid() {
        assert!(parse("ff-12345678901234567890123456789012-1234567890123456-01").is_none());
    }

    #[test]
    fn version_00_rejects_trailing_data() {
        assert!(parse("00-12345678901234567890123456789012-1234567890123456-01.").is_none());
        assert!(parse("00-12345678901234567890123456789012-1234567890123456-01-what").is_none());
        assert!(parse("00-12345678901234567890123456789012-1234567890123456-01-").is_none());
    }

    #[test]
    fn future_version_is_parsed_leniently() {
        let tp = parse("cc-12345678901234567890123456789012-1234567890123456-01").unwrap();
        assert_eq!(tp.version(), 0xcc);
        let tp = parse("cc-12345678901234567890123456789012-1234567890123456-01-what-the-future")
            .unwrap();
        assert_eq!(
            tp.trace_id(),
            TraceId::from(0x1234_5678_9012_3456_7890_1234_5678_9012)
        );
        assert!(
            parse("cc-12345678901234567890123456789012-1234567890123456-01.what-the-future")
                .is_none()
        );
        // Still needs all 55 characters and valid fields.
        assert!(parse("cc-12345678901234567890123456789012-1234567890123456-1").is_none());
        assert!(parse("cc-00000000000000000000000000000000-1234567890123456-01-x").is_none());
    }

    #[test]
    fn future_version_keeps_raw_flags_but_span_context_only_sampled() {
        let tp = parse("01-12345678901234567890123456789012-1234567890123456-ff").unwrap();
        assert_eq!(tp.flags(), TraceFlags::new(0xff));
        let sc = tp.to_span_context(TraceState::default());
        assert_eq!(sc.trace_flags(), TraceFlags::SAMPLED);
        assert!(sc.is_remote());
        let tp = parse("00-12345678901234567890123456789012-1234567890123456-fe").unwrap();
        assert_eq!(
            tp.to_span_context(TraceState::default()).trace_flags(),
            TraceFlags::default()
        );
    }

    #[test]
    fn illegal_characters_and_lengths() {
        for bad in [
            ".0-12345678901234567890123456789012-1234567890123456-01",
            "0.-12345678901234567890123456789012-1234567890123456-01",
            "000-12345678901234567890123456789012-1234567890123456-01",
            "0000-12345678901234567890123456789012-1234567890123456-01",
            "0-12345678901234567890123456789012-1234567890123456-01",
            "00-.2345678901234567890123456789012-1234567890123456-01",
            "00-1234567890123456789012345678901.-1234567890123456-01",
            "00-123456789012345678901234567890123-1234567890123456-01",
            "00-1234567890123456789012345678901-1234567890123456-01",
            "00-12345678901234567890123456789012-.234567890123456-01",
            "00-12345678901234567890123456789012-123456789012345.-01",
            "00-12345678901234567890123456789012-12345678901234567-01",
            "00-12345678901234567890123456789012-123456789012345-01",
            "00-12345678901234567890123456789012-1234567890123456-.0",
            "00-12345678901234567890123456789012-1234567890123456-0.",
            "00-12345678901234567890123456789012-1234567890123456-001",
            "00-12345678901234567890123456789012-1234567890123456-1",
            "00_12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012_1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456_01",
            "00-+2345678901234567890123456789012-1234567890123456-01",
            "",
            "-",
            "00",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} must be invalid");
        }
    }

    #[test]
    fn zero_ids_are_invalid() {
        assert!(parse("00-00000000000000000000000000000000-1234567890123456-01").is_none());
        assert!(parse("00-12345678901234567890123456789012-0000000000000000-01").is_none());
    }

    #[test]
    fn surrounding_ows_is_ignored() {
        for v in [
            " 00-12345678901234567890123456789012-1234567890123456-01",
            "\t00-12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456-01 ",
            "00-12345678901234567890123456789012-1234567890123456-01\t",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        ] {
            assert!(parse(v).is_some(), "{v:?} must be valid");
        }
        // Inner whitespace is not OWS.
        assert!(parse("00 -12345678901234567890123456789012-1234567890123456-01").is_none());
    }

    #[test]
    fn non_ascii_bytes_are_invalid() {
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[10] = 0xe9;
        assert!(TraceParent::parse(&bytes).is_none());
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_bytes(&bytes).unwrap());
        assert!(parse_traceparent(&h).is_none());
    }

    #[test]
    fn header_lookup_and_duplicates() {
        assert!(parse_traceparent(&HeaderMap::new()).is_none());
        assert!(parse_traceparent(&headers(&[VALID])).is_some());
        assert!(
            parse_traceparent(&headers(&[
                "00-12345678901234567890123456789011-1234567890123456-01",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ]))
            .is_none()
        );
        // Even an identical duplicate is not "exactly one" header.
        assert!(parse_traceparent(&headers(&[VALID, VALID])).is_none());
        // A comma-joined list is not a traceparent either.
        let joined = format!("{VALID},{VALID}");
        assert!(parse_traceparent(&headers(&[&joined])).is_none());
    }

    #[test]
    fn header_name_lookup_is_case_insensitive_via_http() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::HeaderName::from_bytes(b"TrAcEpArEnT").unwrap(),
            HeaderValue::from_static(VALID),
        );
        assert!(parse_traceparent(&h).is_some());
        let mut h = HeaderMap::new();
        h.insert("trace-parent", HeaderValue::from_static(VALID));
        assert!(parse_traceparent(&h).is_none());
    }

    #[test]
    fn format_only_sampled_flag() {
        let sc = SpanContext::new(
            TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
            SpanId::from(0xb7ad_6b71_6920_3331),
            TraceFlags::new(0xff),
            false,
            TraceState::default(),
        );
        assert_eq!(
            format_traceparent(&sc),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        let sc = SpanContext::new(
            TraceId::from(1),
            SpanId::from(2),
            TraceFlags::new(0x02),
            false,
            TraceState::default(),
        );
        assert_eq!(
            format_traceparent(&sc),
            "00-00000000000000000000000000000001-0000000000000002-00"
        );
    }

    #[test]
    fn round_trip_generated_ids() {
        // xorshift: cheap deterministic ids covering every nibble value and position.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..2000u32 {
            let trace = (u128::from(next()) << 64) | u128::from(next());
            let span = next();
            if trace == 0 || span == 0 {
                continue;
            }
            let flags = TraceFlags::new((i % 2) as u8);
            let sc = SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                flags,
                false,
                TraceState::default(),
            );
            let value = format_traceparent(&sc);
            assert_eq!(
                value.to_str().unwrap(),
                format!("00-{trace:032x}-{span:016x}-{:02x}", i % 2)
            );
            let tp = TraceParent::parse(value.as_bytes()).unwrap();
            assert_eq!(tp.trace_id(), sc.trace_id());
            assert_eq!(tp.parent_id(), sc.span_id());
            assert_eq!(tp.flags(), flags);
        }
    }

    /// Independent, obviously-correct reading of the spec rules, for the mutation test below.
    fn oracle(v: &[u8]) -> bool {
        let s = match std::str::from_utf8(v) {
            Ok(s) => s.trim_matches([' ', '\t']),
            Err(_) => return false,
        };
        let hex = |p: &str, n: usize| {
            p.len() == n
                && p.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        };
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() < 4 || !hex(parts[0], 2) || parts[0] == "ff" {
            return false;
        }
        if parts[0] == "00" && parts.len() != 4 {
            return false;
        }
        hex(parts[1], 32)
            && hex(parts[2], 16)
            && hex(parts[3], 2)
            && parts[1] != "0".repeat(32)
            && parts[2] != "0".repeat(16)
    }

    #[test]
    fn single_byte_mutations_match_oracle() {
        let alphabet = b"0123456789abcdefAF-. \t\xff";
        for base in [
            VALID,
            "cc-12345678901234567890123456789012-1234567890123456-01-x",
        ] {
            for pos in 0..=base.len() {
                for &b in alphabet {
                    // Replace, insert and delete at `pos`.
                    let mut variants = Vec::new();
                    if pos < base.len() {
                        let mut r = base.as_bytes().to_vec();
                        r[pos] = b;
                        variants.push(r);
                        let mut d = base.as_bytes().to_vec();
                        d.remove(pos);
                        variants.push(d);
                    }
                    let mut i = base.as_bytes().to_vec();
                    i.insert(pos, b);
                    variants.push(i);
                    for v in variants {
                        assert_eq!(
                            TraceParent::parse(&v).is_some(),
                            oracle(&v),
                            "{:?}",
                            String::from_utf8_lossy(&v)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = b"0123456789abcdefABF- \t\xff";
        let mut state: u32 = 12345;
        for len in 0..80usize {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        alphabet[(state >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                let _ = TraceParent::parse(&bytes);
            }
        }
    }
}
