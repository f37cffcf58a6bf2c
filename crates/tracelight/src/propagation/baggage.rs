//! The W3C `baggage` header (W3C Baggage).

use http::{HeaderMap, HeaderValue};
use opentelemetry::baggage::{Baggage, BaggageMetadata};

use super::{BAGGAGE, trim_ows};

/// Most bytes of combined `baggage` header read or written (Baggage "Limits").
const MAX_BYTES: usize = 8192;
/// Most list-members considered on extract (the grammar's `0*179` repetition).
const MAX_MEMBERS: usize = 180;

/// The [`Baggage`] of every `baggage` field of `headers`, combined in order.
///
/// List-members are `key=value` with optional `;property` / `;key=value` properties; spaces/tabs
/// around list-members, keys, `=` and properties are ignored. Keys must be RFC 9110 tokens and
/// values `*baggage-octet`; values are percent-decoded, invalid UTF-8 becoming U+FFFD (Baggage "value").
/// A malformed list-member (no `=`, bad key, bad character, bad property) is skipped, not the
/// whole header. Members ending past byte 8192 of the combined header or past the 180th, and
/// members [`Baggage`] itself refuses (it keeps at most 64 entries / 8192 bytes), are dropped
/// whole. A repeated key keeps its last value. Properties are kept verbatim as the entry's
/// [`BaggageMetadata`] (`k1=v1;k2`).
pub fn parse_baggage(headers: &HeaderMap) -> Baggage {
    let mut baggage = Baggage::new();
    let mut offset = 0usize;
    let mut members = 0usize;
    'fields: for value in headers.get_all(BAGGAGE) {
        for member in value.as_bytes().split(|&b| b == b',') {
            // Position just past this member in the comma-joined combined value.
            offset += member.len() + 1;
            if offset > MAX_BYTES + 1 {
                break 'fields;
            }
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            members += 1;
            if members > MAX_MEMBERS {
                break 'fields;
            }
            if let Some((key, value, metadata)) = parse_member(member) {
                let _ = baggage.insert_with_metadata(key.to_owned(), value, metadata);
            }
        }
    }
    baggage
}

/// The `baggage` value for `baggage`, or `None` when there is nothing to send.
///
/// Values are percent-encoded (every byte outside `baggage-octet`, and `%`: Baggage "value"); metadata
/// is written after `;` only when it is made of property characters, else left out. List-members
/// that would take the header past 8192 bytes are left out whole (Baggage "Limits").
pub fn format_baggage(baggage: &Baggage) -> Option<HeaderValue> {
    if baggage.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (key, (value, metadata)) in baggage {
        let key = key.as_str();
        if !is_token(key.as_bytes()) {
            continue;
        }
        let start = out.len();
        if start > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        percent_encode_into(value.as_str(), &mut out);
        let metadata = metadata.as_str().trim_matches([' ', '\t']);
        if !metadata.is_empty() && metadata.bytes().all(is_property_char) {
            out.push(';');
            out.push_str(metadata);
        }
        if out.len() > MAX_BYTES {
            out.truncate(start);
        }
    }
    if out.is_empty() {
        return None;
    }
    HeaderValue::try_from(out).ok()
}

/// `key OWS "=" OWS value *( OWS ";" OWS property )`, already trimmed.
fn parse_member(member: &[u8]) -> Option<(&str, String, BaggageMetadata)> {
    let mut parts = member.split(|&b| b == b';');
    let key_value = parts.next()?;
    let eq = key_value.iter().position(|&b| b == b'=')?;
    let (key, value) = key_value.split_at(eq);
    let key = trim_ows(key);
    let value = trim_ows(value.get(1..).unwrap_or_default());
    if !is_token(key) || !value.iter().all(|&b| is_baggage_octet(b)) {
        return None;
    }
    let mut metadata = String::new();
    for property in parts {
        let property = trim_ows(property);
        if property.is_empty() {
            continue;
        }
        let (pkey, pvalue) = match property.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let (k, v) = property.split_at(eq);
                (trim_ows(k), Some(trim_ows(v.get(1..).unwrap_or_default())))
            }
            None => (property, None),
        };
        if !is_token(pkey)
            || !pvalue
                .unwrap_or_default()
                .iter()
                .all(|&b| is_baggage_octet(b))
        {
            return None;
        }
        if !metadata.is_empty() {
            metadata.push(';');
        }
        // ASCII checked above.
        metadata.push_str(std::str::from_utf8(pkey).ok()?);
        if let Some(pvalue) = pvalue {
            metadata.push('=');
            metadata.push_str(std::str::from_utf8(pvalue).ok()?);
        }
    }
    let key = std::str::from_utf8(key).ok()?;
    Some((key, percent_decode(value), BaggageMetadata::from(metadata)))
}

/// RFC 9110 `token` (`1*tchar`).
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`: ASCII without controls, whitespace, `"`,
/// `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// A byte that may appear in serialized properties (`;`-joined `key[=value]`, with OWS).
fn is_property_char(b: u8) -> bool {
    is_baggage_octet(b) || matches!(b, b';' | b' ' | b'\t')
}

/// Decodes `%XY` escapes (either case); a `%` not followed by two hex digits stays as is.
fn percent_decode(value: &[u8]) -> String {
    if !value.contains(&b'%') {
        return String::from_utf8_lossy(value).into_owned();
    }
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%'
            && let [hi, lo, after @ ..] = tail
            && let (Some(hi), Some(lo)) = (hex_any_case(*hi), hex_any_case(*lo))
        {
            bytes.push((hi << 4) | lo);
            rest = after;
            continue;
        }
        bytes.push(b);
        rest = tail;
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex_any_case(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Appends `value`, percent-encoding `%` and every byte outside `baggage-octet`.
fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(value.len());
    for b in value.bytes() {
        if is_baggage_octet(b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::StringValue;

    fn parse(values: &[&str]) -> Baggage {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(BAGGAGE, HeaderValue::from_str(v).unwrap());
        }
        parse_baggage(&h)
    }

    fn get(b: &Baggage, key: &str) -> Option<String> {
        b.get(key).map(|v| v.as_str().to_owned())
    }

    #[test]
    fn simple_members_and_ows() {
        let b = parse(&["key1=val1,key2=val2"]);
        assert_eq!(b.len(), 2);
        assert_eq!(get(&b, "key1").as_deref(), Some("val1"));
        let b = parse(&[" key1 =   val1\t,  key2 =val2   "]);
        assert_eq!(get(&b, "key1").as_deref(), Some("val1"));
        assert_eq!(get(&b, "key2").as_deref(), Some("val2"));
    }

    #[test]
    fn multiple_headers_are_combined() {
        let b = parse(&["a=1", "b=2,c=3"]);
        assert_eq!(b.len(), 3);
        assert_eq!(get(&b, "c").as_deref(), Some("3"));
        assert!(parse(&[]).is_empty());
    }

    #[test]
    fn percent_decoding() {
        let b = parse(&["k=Hello%2C%20World%21,u=%E2%9C%93,l=%e2%9c%93,bad=%zz%4,pct=100%25"]);
        assert_eq!(get(&b, "k").as_deref(), Some("Hello, World!"));
        assert_eq!(get(&b, "u").as_deref(), Some("\u{2713}"));
        assert_eq!(get(&b, "l").as_deref(), Some("\u{2713}"));
        assert_eq!(get(&b, "bad").as_deref(), Some("%zz%4"));
        assert_eq!(get(&b, "pct").as_deref(), Some("100%"));
        // Invalid UTF-8 becomes U+FFFD (Baggage "value").
        let b = parse(&["k=a%FFb"]);
        assert_eq!(get(&b, "k").as_deref(), Some("a\u{fffd}b"));
    }

    #[test]
    fn invalid_members_are_skipped_not_the_header() {
        let b =
            parse(&["good=1,noequals,=novalue,bad key=1,k=\"quoted\",k2=a b,k3=a\\b,(k)=1,last=2"]);
        let mut keys: Vec<_> = b.iter().map(|(k, _)| k.as_str().to_owned()).collect();
        keys.sort();
        assert_eq!(keys, ["good", "last"]);
        // Non-ASCII raw bytes are invalid (values must be percent-encoded).
        let mut h = HeaderMap::new();
        h.insert(BAGGAGE, HeaderValue::from_bytes(b"a=\xc3\xa9,b=2").unwrap());
        let b = parse_baggage(&h);
        assert_eq!(b.len(), 1);
        assert_eq!(get(&b, "b").as_deref(), Some("2"));
    }

    #[test]
    fn empty_value_and_empty_members() {
        let b = parse(&[",,a=,  ,b=2,"]);
        assert_eq!(get(&b, "a").as_deref(), Some(""));
        assert_eq!(get(&b, "b").as_deref(), Some("2"));
    }

    #[test]
    fn properties_become_metadata() {
        let b = parse(&["key=value ; p1 = v1 ;flag;;p2=v%2C2"]);
        let (value, metadata) = b.get_with_metadata("key").unwrap();
        assert_eq!(value, &StringValue::from("value"));
        assert_eq!(metadata.as_str(), "p1=v1;flag;p2=v%2C2");
        // A bad property invalidates the member.
        assert!(parse(&["key=value;bad prop"]).is_empty());
        assert!(parse(&["key=value;p=\"x\""]).is_empty());
    }

    #[test]
    fn limits_drop_excess_members_whole() {
        // 200 small members: opentelemetry keeps 64 of them.
        let many: String = (0..200).map(|i| format!("k{i}=v,")).collect();
        let b = parse(&[&many]);
        assert_eq!(b.len(), 64);
        assert!(get(&b, "k0").is_some() && get(&b, "k63").is_some() && get(&b, "k64").is_none());
        // A member that ends past byte 8192 of the combined header is dropped whole.
        let big = "v".repeat(8000);
        let b = parse(&[
            &format!("a={big}"),
            &format!("b={}", "w".repeat(300)),
            "c=1",
        ]);
        assert_eq!(b.len(), 1);
        assert_eq!(get(&b, "a").map(|v| v.len()), Some(8000));
        // One member over the limit on its own is dropped, not truncated.
        let b = parse(&[&format!("huge={}", "x".repeat(9000))]);
        assert!(b.is_empty());
    }

    #[test]
    fn member_count_limit_counts_members_not_entries() {
        // 180 members considered: invalid ones count, the 181st is never read.
        let invalid: String = (0..180).map(|_| "bad,").collect();
        assert!(parse(&[&format!("{invalid}ok=1")]).is_empty());
        let invalid: String = (0..179).map(|_| "bad,").collect();
        assert_eq!(parse(&[&format!("{invalid}ok=1")]).len(), 1);
    }

    #[test]
    fn format_percent_encodes_and_round_trips() {
        let mut b = Baggage::new();
        let tricky = "a b,c;d=e\"f\\g%h\u{e9}\u{1F600}\t!#$&'()*+-./:<>?@[]^_`{|}~";
        let _ = b.insert("tricky", tricky);
        let _ = b.insert_with_metadata("m", "v", "p1=x;flag");
        let _ = b.insert("empty", "");
        let _ = b.insert("pct", "%41 100%");
        let value = format_baggage(&b).unwrap();
        let s = value.to_str().unwrap();
        assert!(s.contains("m=v;p1=x;flag"), "{s}");
        assert!(
            !s.contains(' ') && !s.contains('"') && !s.contains('\\'),
            "{s}"
        );
        let mut h = HeaderMap::new();
        h.insert(BAGGAGE, value);
        let back = parse_baggage(&h);
        assert_eq!(get(&back, "tricky").as_deref(), Some(tricky));
        assert_eq!(get(&back, "empty").as_deref(), Some(""));
        assert_eq!(back.get_with_metadata("m").unwrap().1.as_str(), "p1=x;flag");
        assert_eq!(get(&back, "pct").as_deref(), Some("%41 100%"));
        assert_eq!(back.len(), 4);
        let mut b = Baggage::new();
        let _ = b.insert("k", "50% a,b;c\\d\"\u{e9}=x");
        assert_eq!(
            format_baggage(&b).unwrap(),
            "k=50%25%20a%2Cb%3Bc%5Cd%22%C3%A9=x"
        );
    }

    #[test]
    fn format_round_trips_generated_values() {
        let mut state: u32 = 99;
        for round in 0..200 {
            let value: String = (0..(round % 40))
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    char::from_u32(32 + (state >> 16) % 0x300).unwrap_or('x')
                })
                .collect();
            let mut b = Baggage::new();
            let _ = b.insert("k", value.clone());
            let mut h = HeaderMap::new();
            h.insert(BAGGAGE, format_baggage(&b).unwrap());
            assert_eq!(get(&parse_baggage(&h), "k"), Some(value));
        }
    }

    #[test]
    fn format_skips_members_past_8192_bytes_and_bad_metadata() {
        assert!(format_baggage(&Baggage::new()).is_none());
        let mut b = Baggage::new();
        // 4000 bytes that each encode to 3: 12000 bytes once encoded.
        let _ = b.insert("big", "\u{e9}".repeat(2000));
        let _ = b.insert("small", "1");
        assert_eq!(format_baggage(&b).unwrap(), "small=1");
        let mut b = Baggage::new();
        let _ = b.insert_with_metadata("k", "v", "bad,meta");
        assert_eq!(format_baggage(&b).unwrap(), "k=v");
    }
}
