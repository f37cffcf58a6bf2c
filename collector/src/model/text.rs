//! Short strings on the hot path: an inline equality, and the per-position cache of validated
//! strings that the wire parser keeps from one span to the next.
//!
//! Spans of a batch mostly repeat their neighbours' attribute keys in the same order, and many
//! of their values (method, status, port, user agent). Comparing with the string found at the
//! same position in the previous span is much cheaper than validating UTF-8 again (`std`'s
//! validation goes byte by byte on short strings) or hashing it.

/// `a == b`, inline for the short keys and values that the per-position caches compare on
/// every span (a call to `memcmp` cost more than the comparison itself).
#[inline]
pub(crate) fn same_str(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// `a == b` on bytes, inline (see [`same_str`]).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words already compared.
    word(a, n - 8) == word(b, n - 8)
}

/// Attribute positions of a span whose key and string value are remembered.
const POSITIONS: usize = 32;

/// The strings last validated at each attribute position (its key, its string value) of the
/// previous span: bytes equal to them are the same valid UTF-8, so the parser takes the
/// remembered `&str` (equal text at another place in the same request) instead of
/// validating again.
pub(crate) struct RecentStrs<'a> {
    slots: [&'a str; 2 * POSITIONS],
}

impl Default for RecentStrs<'_> {
    fn default() -> Self {
        Self {
            slots: [""; 2 * POSITIONS],
        }
    }
}

/// Which string of an attribute a slot remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The key of the attribute at this position of a span.
    Key(usize),
    /// The string value of the attribute at this position of a span.
    Value(usize),
}

impl<'a> RecentStrs<'a> {
    /// `bytes` as a `&str`: the remembered one when equal, else validated (and remembered).
    #[inline]
    pub(crate) fn str(
        &mut self,
        slot: Slot,
        bytes: &'a [u8],
    ) -> Result<&'a str, std::str::Utf8Error> {
        let index = match slot {
            Slot::Key(i) if i < POSITIONS => 2 * i,
            Slot::Value(i) if i < POSITIONS => 2 * i + 1,
            _ => return std::str::from_utf8(bytes),
        };
        let last = &mut self.slots[index];
        if same_bytes(last.as_bytes(), bytes) {
            return Ok(last);
        }
        let s = std::str::from_utf8(bytes)?;
        *last = s;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn same_str_agrees_with_eq_at_every_length_and_position() {
        let base: String = (0..40u8).map(|i| char::from(b'a' + i % 26)).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            let copy = String::from(a); // another address: no shortcut on the pointer
            assert!(same_str(a, &copy));
            assert!(!same_str(a, &base[..n + 1]));
            for pos in 0..n {
                let mut b = a.as_bytes().to_vec();
                b[pos] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_str(a, &b), "n={n} pos={pos}");
            }
        }
    }

    #[test]
    fn recent_strs_give_equal_text_and_still_reject_invalid_utf8() {
        let buf = b"http.method GET http.method POST \xff\xfe".to_vec();
        let mut recent = RecentStrs::default();
        // First span: validated; second span: the same key from another place.
        let k1 = recent.str(Slot::Key(0), &buf[0..11]).unwrap();
        let k2 = recent.str(Slot::Key(0), &buf[16..27]).unwrap();
        assert_eq!((k1, k2), ("http.method", "http.method"));
        // A different value at the same slot replaces the remembered one.
        assert_eq!(recent.str(Slot::Value(0), &buf[12..15]).unwrap(), "GET");
        assert_eq!(recent.str(Slot::Value(0), &buf[28..32]).unwrap(), "POST");
        assert_eq!(recent.str(Slot::Value(0), &buf[12..15]).unwrap(), "GET");
        // Invalid bytes are an error at a remembered slot and beyond the slots.
        assert!(recent.str(Slot::Value(0), &buf[33..35]).is_err());
        assert!(recent.str(Slot::Key(POSITIONS), &buf[33..35]).is_err());
        // The empty string matches the initial slots and is valid.
        assert_eq!(recent.str(Slot::Key(3), b"").unwrap(), "");
        // An error leaves the remembered string in place.
        assert_eq!(recent.str(Slot::Value(0), &buf[12..15]).unwrap(), "GET");
    }
}
