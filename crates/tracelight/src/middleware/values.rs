//! Attribute values that repeat from request to request (`server.address` / `server.port`,
//! `user_agent.original`), shared instead of copied into a new `String` for every span.
//!
//! A service sees a handful of distinct host names and user agents at any time, so each thread
//! keeps the last few of each, keyed by the raw header bytes: a span attribute then costs a
//! byte comparison and a reference count, instead of validating the header (a browser's
//! `User-Agent` is over 100 bytes), parsing the authority and allocating. The caches are per
//! thread (no lock, no contention) and small (a few short strings), so memory stays bounded
//! whatever the requests carry.

use std::cell::RefCell;
use std::sync::Arc;

use opentelemetry::Value;

/// Entries per cache and thread.
const SLOTS: usize = 8;
/// Longer values are not cached (validated and copied per request): they are unlikely to repeat.
const MAX_LEN: usize = 256;

/// The last [`SLOTS`] distinct values of one header on this thread, replaced round-robin, each
/// with what was derived from it.
struct Recent<T> {
    slots: [Option<(Box<[u8]>, T)>; SLOTS],
    next: usize,
}

impl<T: Clone> Recent<T> {
    fn new() -> Self {
        Self {
            slots: Default::default(),
            next: 0,
        }
    }

    /// What `derive` made of `raw`, from the cache when `raw` was seen recently. `derive`
    /// returning `None` (an invalid value) is not cached.
    fn get(&mut self, raw: &[u8], derive: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
        if raw.len() > MAX_LEN {
            return derive(raw);
        }
        if let Some((_, hit)) = self.slots.iter().flatten().find(|(k, _)| **k == *raw) {
            return Some(hit.clone());
        }
        let value = derive(raw)?;
        if let Some(slot) = self.slots.get_mut(self.next % SLOTS) {
            *slot = Some((raw.into(), value.clone()));
        }
        self.next = self.next.wrapping_add(1);
        Some(value)
    }
}

/// `server.address` and `server.port` of one authority (`host[:port]`).
#[derive(Clone)]
pub(crate) struct Authority {
    pub(crate) host: Value,
    pub(crate) port: Option<u16>,
}

struct Caches {
    authority: Recent<Authority>,
    user_agent: Recent<Value>,
}

thread_local! {
    static CACHES: RefCell<Caches> = RefCell::new(Caches {
        authority: Recent::new(),
        user_agent: Recent::new(),
    });
}

/// The text of a header value, if it is visible ASCII (what [`http::HeaderValue::to_str`]
/// accepts); URI authorities always are.
fn text(raw: &[u8]) -> Option<&str> {
    raw.iter()
        .all(|&b| (32..127).contains(&b) || b == b'\t')
        .then(|| std::str::from_utf8(raw).ok())
        .flatten()
}

fn derive_authority(raw: &[u8]) -> Option<Authority> {
    let (host, port) = split_authority(text(raw)?);
    Some(Authority {
        host: Value::from(Arc::<str>::from(host)),
        port,
    })
}

fn derive_user_agent(raw: &[u8]) -> Option<Value> {
    text(raw).map(|ua| Value::from(Arc::<str>::from(ua)))
}

/// `server.address` / `server.port` of an authority (`Host` header or URI authority), shared
/// with earlier requests to the same authority; `None` if it is not visible ASCII.
pub(crate) fn authority(raw: &[u8]) -> Option<Authority> {
    CACHES.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => c.authority.get(raw, derive_authority),
        Err(_) => derive_authority(raw),
    })
}

/// `user_agent.original`, shared with earlier requests from the same kind of client; `None` if
/// the header is not visible ASCII.
pub(crate) fn user_agent(raw: &[u8]) -> Option<Value> {
    CACHES.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => c.user_agent.get(raw, derive_user_agent),
        Err(_) => derive_user_agent(raw),
    })
}

/// Splits `host[:port]`. IPv6 literals are bracketed ([::1]:8080): a port is only digits, so
/// the last `:` is followed by digits alone, never by the `]` of a bracketed literal. A port
/// that is not a number is dropped, the host kept.
pub(crate) fn split_authority(authority: &str) -> (&str, Option<u16>) {
    let bytes = authority.as_bytes();
    match bytes.iter().rposition(|&b| b == b':') {
        Some(i) if !bytes[i + 1..].contains(&b']') => {
            (&authority[..i], parse_port(&bytes[i + 1..]))
        }
        _ => (authority, None),
    }
}

/// A decimal port (1–5 digits, at most 65535); `None` otherwise, as `str::parse::<u16>` would
/// give (except that it also accepts a leading `+`, which no `Host` header has).
fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    let mut port: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        port = port * 10 + u32::from(d - b'0');
    }
    u16::try_from(port).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(v: &Value) -> &str {
        match v {
            Value::String(s) => s.as_str(),
            other => panic!("string value expected, got {other:?}"),
        }
    }

    #[test]
    fn repeated_values_share_one_string() {
        let a = authority(b"shop.example:8080").unwrap();
        let b = authority(b"shop.example:8080").unwrap();
        assert_eq!((string(&a.host), a.port), ("shop.example", Some(8080)));
        assert!(std::ptr::eq(string(&a.host), string(&b.host)));
        let c = user_agent(b"curl/8").unwrap();
        let d = user_agent(b"curl/8").unwrap();
        assert!(std::ptr::eq(string(&c), string(&d)));
    }

    /// Whether every User-Agent key in this thread's cache satisfies `f`.
    fn cached_user_agents_all(f: impl Fn(&[u8]) -> bool) -> bool {
        CACHES.with(|c| {
            c.borrow()
                .user_agent
                .slots
                .iter()
                .flatten()
                .all(|(k, _)| f(k))
        })
    }

    #[test]
    fn invalid_values_are_refused_and_not_cached() {
        assert!(user_agent(b"bad\x01agent").is_none());
        assert!(user_agent("agent/é".as_bytes()).is_none());
        assert!(authority(b"host\x7f").is_none());
        assert_eq!(string(&user_agent(b"tab\tok").unwrap()), "tab\tok");
        assert!(cached_user_agents_all(|k| k[0] != b'b'));
    }

    #[test]
    fn cache_is_bounded_and_stays_correct() {
        for i in 0..3 * SLOTS {
            let ua = format!("agent/{i}");
            assert_eq!(string(&user_agent(ua.as_bytes()).unwrap()), ua);
            let host = format!("h{i}.example:{i}");
            let a = authority(host.as_bytes()).unwrap();
            assert_eq!(string(&a.host), format!("h{i}.example"));
            assert_eq!(a.port, u16::try_from(i).ok());
        }
        let long = "x".repeat(MAX_LEN + 1);
        assert_eq!(string(&user_agent(long.as_bytes()).unwrap()), long);
        assert!(cached_user_agents_all(|k| k.len() <= MAX_LEN));
    }

    #[test]
    fn authorities_split_like_before() {
        assert_eq!(
            split_authority("shop.example:8080"),
            ("shop.example", Some(8080))
        );
        assert_eq!(split_authority("shop.example"), ("shop.example", None));
        assert_eq!(split_authority("[::1]:9000"), ("[::1]", Some(9000)));
        assert_eq!(split_authority("[::1]"), ("[::1]", None));
        assert_eq!(split_authority("shop.example:http"), ("shop.example", None));
    }

    #[test]
    fn ports_parse_like_u16() {
        for text in [
            "0", "80", "8080", "65535", "65536", "99999", "123456", "", "8a", "-1", " 80",
        ] {
            assert_eq!(
                parse_port(text.as_bytes()),
                text.parse::<u16>().ok(),
                "{text:?}"
            );
        }
    }
}
