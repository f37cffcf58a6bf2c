//! The W3C `tracestate` header (W3C Trace Context, "Tracestate Header").

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::TraceState;

use super::{TRACESTATE, trim_ows};

/// Most list-members a `tracestate` may have ("tracestate Header Field Values").
const MAX_MEMBERS: usize = 32;

/// Why a combined `tracestate` was rejected; any of these drops the whole header.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    /// More than 32 non-empty list-members ("tracestate Header Field Values").
    #[error("tracestate has more than 32 list-members")]
    TooManyMembers,
    /// A list-member without `=` ("list").
    #[error("tracestate list-member is not key=value")]
    InvalidMember,
    /// A key outside `simple-key` / `multi-tenant-key` ("Key").
    #[error("tracestate key is invalid")]
    InvalidKey,
    /// A value outside `0*255(chr) nblk-chr` ("Value").
    #[error("tracestate value is invalid")]
    InvalidValue,
}

/// The `tracestate` of `headers`: every field combined in order, or [`TraceState::default()`]
/// (no allocation) when absent, empty or invalid (see [`parse_tracestate_values`]).
///
/// Call it only after a valid `traceparent`: "Tracestate Header" says `tracestate` is ignored otherwise
/// ([`Propagators`](super::Propagators) does this).
pub fn parse_tracestate(headers: &HeaderMap) -> TraceState {
    parse_tracestate_values(
        headers
            .get_all(TRACESTATE)
            .iter()
            .map(HeaderValue::as_bytes),
    )
    .unwrap_or_default()
}

/// Parses `tracestate` field values as one comma-joined list (RFC 9110 §5.3), strictly:
///
/// * list-members are `key=value`, separated by `,` with optional spaces/tabs around them;
///   empty list-members are skipped;
/// * keys: `[a-z][a-z0-9_\-*/]{0,255}` or `tenant@system` with tenant
///   `[a-z0-9][a-z0-9_\-*/]{0,240}` and system `[a-z][a-z0-9_\-*/]{0,13}`;
/// * values: 1–256 of `0x20–0x7E` except `,` and `=`, the last one not a space;
/// * at most 32 (non-empty) list-members.
///
/// The first violation rejects the whole list. Order is preserved. A repeated key keeps its first
/// list-member and drops the later ones: senders MUST NOT produce duplicates, receivers MAY drop
/// them ("Mutating the tracestate Field"; the test suite's `test_tracestate_duplicated_keys`
/// accepts either keeping or de-duplicating, not discarding the header).
///
/// One quirk of opentelemetry's [`TraceState`]: it rejects a system id of exactly 14 characters,
/// which the grammar allows; such a list-member alone is left out rather than losing the list.
///
/// # Errors
///
/// The first [`TraceStateError`] found.
pub fn parse_tracestate_values<'a, I>(values: I) -> Result<TraceState, TraceStateError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut members: [(&str, &str); MAX_MEMBERS] = [("", ""); MAX_MEMBERS];
    let mut len = 0;
    let mut received = 0;
    for value in values {
        for member in value.split(|&b| b == b',').map(trim_ows) {
            if member.is_empty() {
                continue;
            }
            received += 1;
            if received > MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            let (key, val) = split_member(member)?;
            let kept = members.get(..len).unwrap_or_default();
            if kept.iter().any(|&(k, _)| k == key) {
                continue;
            }
            if let Some(slot) = members.get_mut(len) {
                *slot = (key, val);
                len += 1;
            }
        }
    }
    let members = members.get(..len).unwrap_or_default();
    if members.is_empty() {
        return Ok(TraceState::default());
    }
    Ok(
        TraceState::from_key_value(members.iter().copied()).unwrap_or_else(|_| {
            TraceState::from_key_value(
                members
                    .iter()
                    .copied()
                    .filter(|&member| TraceState::from_key_value([member]).is_ok()),
            )
            .unwrap_or_default()
        }),
    )
}

/// The `tracestate` value for `trace_state`, or `None` if it has no list-members to send.
///
/// List-members that would not parse under [`parse_tracestate_values`] (opentelemetry's
/// [`TraceState::insert`] accepts more) are left out, so the receiver does not drop the whole
/// header because of one of them; at most 32 are written.
pub fn format_tracestate(trace_state: &TraceState) -> Option<HeaderValue> {
    let mut out = String::new();
    let mut count = 0;
    for (key, value) in trace_state {
        if count == MAX_MEMBERS {
            break;
        }
        if !valid_key(key.as_bytes()) || !valid_value(value.as_bytes()) {
            continue;
        }
        if count == 0 {
            out.reserve(
                trace_state
                    .into_iter()
                    .map(|(k, v)| k.len() + v.len() + 2)
                    .sum(),
            );
        } else {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        count += 1;
    }
    if count == 0 {
        return None;
    }
    HeaderValue::try_from(out).ok()
}

/// Splits and validates one trimmed, non-empty list-member.
fn split_member(member: &[u8]) -> Result<(&str, &str), TraceStateError> {
    let eq = member
        .iter()
        .position(|&b| b == b'=')
        .ok_or(TraceStateError::InvalidMember)?;
    let (key, value) = member.split_at(eq);
    let value = value.get(1..).unwrap_or_default();
    if !valid_key(key) {
        return Err(TraceStateError::InvalidKey);
    }
    if !valid_value(value) {
        return Err(TraceStateError::InvalidValue);
    }
    // Both are ASCII by now.
    let key = std::str::from_utf8(key).map_err(|_| TraceStateError::InvalidKey)?;
    let value = std::str::from_utf8(value).map_err(|_| TraceStateError::InvalidValue)?;
    Ok((key, value))
}

#[inline]
fn is_key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `multi-tenant-key` ("Key").
pub(crate) fn valid_key(key: &[u8]) -> bool {
    let part = |s: &[u8], max: usize, first: fn(&u8) -> bool| match s.split_first() {
        Some((f, rest)) => s.len() <= max && first(f) && rest.iter().all(|&b| is_key_char(b)),
        None => false,
    };
    match key.iter().position(|&b| b == b'@') {
        None => part(key, 256, u8::is_ascii_lowercase),
        Some(at) => {
            let (tenant, system) = key.split_at(at);
            let system = system.get(1..).unwrap_or_default();
            part(tenant, 241, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit()
            }) && part(system, 14, u8::is_ascii_lowercase)
        }
    }
}

/// `value = 0*255(chr) nblk-chr` ("Value").
pub(crate) fn valid_value(value: &[u8]) -> bool {
    let chr = |b: u8| matches!(b, 0x20..=0x7e) && b != b',' && b != b'=';
    matches!(value.last(), Some(&last) if last != b' ')
        && value.len() <= 256
        && value.iter().all(|&b| chr(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<TraceState, TraceStateError> {
        parse_tracestate_values(values.iter().map(|v| v.as_bytes()))
    }

    fn header(values: &[&str]) -> String {
        parse(values).unwrap().header()
    }

    fn numbered(range: std::ops::RangeInclusive<u32>) -> String {
        range
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn simple_list_keeps_order() {
        let ts = parse(&["foo=1,bar=2"]).unwrap();
        assert_eq!(ts.get("foo"), Some("1"));
        assert_eq!(ts.get("bar"), Some("2"));
        assert_eq!(ts.header(), "foo=1,bar=2");
    }

    #[test]
    fn multiple_headers_are_combined_in_order() {
        assert_eq!(
            header(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
            "foo=1,bar=2,rojo=1,congo=2,baz=3"
        );
        let mut h = HeaderMap::new();
        h.append(TRACESTATE, HeaderValue::from_static("a=1"));
        h.append(TRACESTATE, HeaderValue::from_static("b=2"));
        assert_eq!(parse_tracestate(&h).header(), "a=1,b=2");
    }

    #[test]
    fn empty_headers_and_members_are_skipped() {
        assert_eq!(parse(&[""]).unwrap(), TraceState::default());
        assert_eq!(header(&["foo=1", ""]), "foo=1");
        assert_eq!(header(&["", "foo=1"]), "foo=1");
        assert_eq!(header(&[",foo=1,, ,\t,bar=2,"]), "foo=1,bar=2");
        assert_eq!(parse(&[" , ,"]).unwrap(), TraceState::default());
        assert_eq!(parse_tracestate(&HeaderMap::new()), TraceState::default());
    }

    #[test]
    fn ows_around_members() {
        assert_eq!(
            header(&["foo=1 \t , \t bar=2, \t baz=3"]),
            "foo=1,bar=2,baz=3"
        );
        assert_eq!(
            header(&["foo=1\t \t,\t \tbar=2,\t \tbaz=3"]),
            "foo=1,bar=2,baz=3"
        );
        for v in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            assert_eq!(header(&[v]), "foo=1", "{v:?}");
        }
        // OWS is only allowed around list-members, not around '='.
        assert_eq!(parse(&["foo =1"]), Err(TraceStateError::InvalidKey));
        // A leading space is a legal value character.
        assert_eq!(parse(&["foo= 1"]).unwrap().get("foo"), Some(" 1"));
    }

    #[test]
    fn member_count_limit() {
        let ts = parse(&[
            &numbered(1..=10),
            &numbered(11..=20),
            &numbered(21..=30),
            &numbered(31..=32),
        ])
        .unwrap();
        assert_eq!(ts.get("bar01"), Some("01"));
        assert_eq!(ts.get("bar32"), Some("32"));
        assert_eq!((&ts).into_iter().len(), 32);
        assert_eq!(
            parse(&[
                &numbered(1..=10),
                &numbered(11..=20),
                &numbered(21..=30),
                &numbered(31..=33),
            ]),
            Err(TraceStateError::TooManyMembers)
        );
        // Empty members do not count.
        assert!(parse(&[&numbered(1..=32), ",,,"]).is_ok());
    }

    #[test]
    fn duplicated_keys_keep_the_first_member() {
        for values in [
            &["foo=1,foo=1"][..],
            &["foo=1,foo=2"],
            &["foo=1", "foo=1"],
            &["foo=1", "foo=2"],
        ] {
            assert_eq!(header(values), "foo=1", "{values:?}");
        }
        assert_eq!(header(&["a=1,foo=1,b=2", "c=3,foo=9"]), "a=1,foo=1,b=2,c=3");
        // Duplicates still count towards the 32 list-members received.
        let dups: String = (0..33).map(|_| "foo=1,").collect();
        assert_eq!(parse(&[&dups]), Err(TraceStateError::TooManyMembers));
        // An invalid duplicate is still invalid.
        assert_eq!(parse(&["foo=1,foo="]), Err(TraceStateError::InvalidValue));
    }

    #[test]
    fn illegal_keys() {
        for bad in [
            "FOO=1",
            "foo.bar=1",
            "1foo=1",
            "_foo=1",
            "foo@=1,bar=2",
            "@foo=1,bar=2",
            "foo@@bar=1,bar=2",
            "foo@bar@baz=1,bar=2",
            "foo@1bar=1",
            "=1",
            "Foo@bar=1",
            "foo@Bar=1",
            "f\u{e9}=1",
        ] {
            assert_eq!(parse(&[bad]), Err(TraceStateError::InvalidKey), "{bad:?}");
        }
        assert_eq!(parse(&["foo"]), Err(TraceStateError::InvalidMember));
        assert_eq!(parse(&["foo=1,bar"]), Err(TraceStateError::InvalidMember));
        // Multi-tenant keys may start with a digit.
        assert_eq!(
            parse(&["1tenant@vendor=1"]).unwrap().get("1tenant@vendor"),
            Some("1")
        );
    }

    #[test]
    fn key_length_limits() {
        let z256 = format!("{}=1", "z".repeat(256));
        let z257 = format!("{}=1", "z".repeat(257));
        assert_eq!(header(&["foo=1", &z256]), format!("foo=1,{z256}"));
        assert_eq!(parse(&["foo=1", &z257]), Err(TraceStateError::InvalidKey));
        let tenant241 = format!("{}@v=1", "t".repeat(241));
        let tenant242 = format!("{}@v=1", "t".repeat(242));
        assert_eq!(header(&[&tenant241]), tenant241);
        assert_eq!(
            parse(&["foo=1", &tenant242]),
            Err(TraceStateError::InvalidKey)
        );
        let system13 = format!("t@{}=1", "v".repeat(13));
        let system15 = format!("t@{}=1", "v".repeat(15));
        assert_eq!(header(&[&system13]), system13);
        assert_eq!(
            parse(&["foo=1", &system15]),
            Err(TraceStateError::InvalidKey)
        );
    }

    #[test]
    fn fourteen_char_system_id_is_valid_but_unrepresentable_upstream() {
        // Test suite: `'t' * 241 + '@' + 'v' * 14` must keep `foo`.
        let key = format!("{}@{}", "t".repeat(241), "v".repeat(14));
        assert!(valid_key(key.as_bytes()));
        assert!(
            TraceState::from_key_value([(key.as_str(), "1")]).is_err(),
            "opentelemetry now accepts 14-char system ids: drop the fallback"
        );
        let ts = parse(&["foo=1", &format!("{key}=1"), "bar=2"]).unwrap();
        assert_eq!(ts.header(), "foo=1,bar=2");
    }

    #[test]
    fn all_allowed_characters() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let value: String = (0x20u8..=0x7e)
            .filter(|&b| b != b',' && b != b'=')
            .map(char::from)
            .collect();
        let ts = parse(&[&format!("{key}={value}")]).unwrap();
        assert_eq!(ts.get(key), Some(value.as_str()));
        let vendor_key = format!("{key}@a-z0-9_-*/");
        let ts = parse(&[&format!("{vendor_key}={value}")]).unwrap();
        assert_eq!(ts.get(&vendor_key), Some(value.as_str()));
    }

    #[test]
    fn illegal_values() {
        for bad in [
            "foo=bar=baz",
            "foo=,bar=3",
            "foo=",
            "foo=a\tb",
            "foo=\u{e9}",
            "foo=a\x7f",
        ] {
            assert_eq!(parse(&[bad]), Err(TraceStateError::InvalidValue), "{bad:?}");
        }
        let v256 = format!("foo={}", "v".repeat(256));
        let v257 = format!("foo={}", "v".repeat(257));
        assert!(parse(&[&v256]).is_ok());
        assert_eq!(parse(&[&v257]), Err(TraceStateError::InvalidValue));
        // A trailing space belongs to the OWS, not to the value.
        assert_eq!(parse(&["foo=a b "]).unwrap().get("foo"), Some("a b"));
    }

    #[test]
    fn invalid_member_anywhere_drops_all_headers() {
        let mut h = HeaderMap::new();
        h.append(TRACESTATE, HeaderValue::from_static("foo=1"));
        h.append(TRACESTATE, HeaderValue::from_static("BAR=2"));
        assert_eq!(parse_tracestate(&h), TraceState::default());
        let mut h = HeaderMap::new();
        h.append(TRACESTATE, HeaderValue::from_static("foo=1"));
        h.append(TRACESTATE, HeaderValue::from_bytes(b"bar=\xff").unwrap());
        assert_eq!(parse_tracestate(&h), TraceState::default());
    }

    #[test]
    fn format_round_trip_and_filtering() {
        let ts = TraceState::from_key_value([("foo", "1"), ("tenant@sys", "a b")]).unwrap();
        let value = format_tracestate(&ts).unwrap();
        assert_eq!(value, "foo=1,tenant@sys=a b");
        assert_eq!(parse_tracestate_values([value.as_bytes()]).unwrap(), ts);
        assert!(format_tracestate(&TraceState::default()).is_none());
        // opentelemetry accepts these, the spec does not: they are not sent.
        let loose =
            TraceState::from_key_value([("1abc", "x"), ("ok", "trailing "), ("k", "")]).unwrap();
        assert!(format_tracestate(&loose).is_none());
        let mixed = loose.insert("good", "v").unwrap();
        assert_eq!(format_tracestate(&mixed).unwrap(), "good=v");
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet = b"ab@=, \t-*/_0\xff~";
        let mut state: u32 = 7;
        for len in 0..120usize {
            for _ in 0..40 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        alphabet[(state >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                if let Ok(ts) = parse_tracestate_values([bytes.as_slice()]) {
                    // Whatever is accepted must format back into something that parses the same.
                    if let Some(v) = format_tracestate(&ts) {
                        assert_eq!(parse_tracestate_values([v.as_bytes()]).unwrap(), ts);
                    }
                }
            }
        }
    }
}
