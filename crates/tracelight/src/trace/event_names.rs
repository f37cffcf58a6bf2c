//! Span event names from `tracing` messages, without a `String` per event when a callsite's
//! message never varies.
//!
//! A span event is named after its log message. Most messages are fixed text
//! (`info!(id, "order created")`), and formatting each into a new `String` cost an allocation
//! (often two) per event. The message is now formatted into a stack buffer; a callsite whose
//! message was the same on its first two events has its text leaked once and used as a
//! `&'static str` from then on, until it differs (the callsite is then marked as varying and
//! always allocates, as before). Once interned, a message is compared with the interned text
//! while it is formatted, without being copied anywhere. Memory is bounded: at most one name of
//! at most [`INLINE`] bytes per callsite, and callsites are the program's own `tracing` macros
//! (capped at [`MAX_CALLSITES`] all the same).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use hashbrown::HashMap;
use parking_lot::RwLock;

/// Messages up to this many bytes are formatted on the stack and may be interned.
pub(crate) const INLINE: usize = 128;
/// Most callsites tracked process-wide.
pub(crate) const MAX_CALLSITES: usize = 4096;

/// What is known about the message of one callsite.
#[derive(Debug)]
enum Seen {
    /// One event so far, with this message.
    Once(Box<str>),
    /// The same message every time so far.
    Stable(&'static str),
    /// Messages differ between events.
    Varying,
}

static CALLSITES: LazyLock<RwLock<HashMap<usize, Seen>>> = LazyLock::new(Default::default);

/// Slots of the per-thread cache in front of [`CALLSITES`].
const RECENT_SLOTS: usize = 64;

thread_local! {
    /// Direct-mapped by callsite address: (callsite, its stable message).
    static RECENT: [Cell<Option<(usize, &'static str)>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

/// A message formatted into a fixed buffer; `None` once it does not fit.
struct StackText {
    buf: [u8; INLINE],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Compares what is written into it with `expected`, copying nothing; fails at the first
/// difference (or once past the end of `expected`).
struct SameAs<'a> {
    expected: &'a [u8],
    matched: usize,
}

impl fmt::Write for SameAs<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.matched + s.len();
        match self.expected.get(self.matched..end) {
            Some(part) if part == s.as_bytes() => {
                self.matched = end;
                Ok(())
            }
            _ => Err(fmt::Error),
        }
    }
}

/// The event name for `message` (a `tracing` `message` field) logged at `callsite` (the address
/// of the callsite's `'static` metadata).
pub(crate) fn event_name(callsite: usize, message: &dyn fmt::Debug) -> Cow<'static, str> {
    let slot = (callsite >> 4) % RECENT_SLOTS;
    if let Some((c, name)) = RECENT.with(|r| r[slot].get())
        && c == callsite
    {
        // The usual case: the callsite's interned message, checked while it is formatted
        // instead of formatted into a buffer first.
        let mut same = SameAs {
            expected: name.as_bytes(),
            matched: 0,
        };
        if write!(same, "{message:?}").is_ok() && same.matched == name.len() {
            return Cow::Borrowed(name);
        }
        // The message changed: `intern` below marks the callsite as varying.
        RECENT.with(|r| r[slot].set(None));
    }
    let mut text = StackText {
        buf: [0; INLINE],
        len: 0,
    };
    if write!(text, "{message:?}").is_err() {
        return Cow::Owned(format!("{message:?}"));
    }
    // Only whole `str`s were copied in, so the bytes are UTF-8.
    let Ok(text) = std::str::from_utf8(&text.buf[..text.len]) else {
        return Cow::Owned(format!("{message:?}"));
    };
    match intern(callsite, text) {
        Some(name) => {
            RECENT.with(|r| r[slot].set(Some((callsite, name))));
            Cow::Borrowed(name)
        }
        None => Cow::Owned(text.to_owned()),
    }
}

/// The interned name for `text` at `callsite`, if the callsite's message is stable.
fn intern(callsite: usize, text: &str) -> Option<&'static str> {
    match CALLSITES.read().get(&callsite) {
        Some(Seen::Stable(name)) if *name == text => return Some(name),
        Some(Seen::Varying) => return None,
        _ => {}
    }
    let mut map = CALLSITES.write();
    if map.len() >= MAX_CALLSITES && !map.contains_key(&callsite) {
        return None;
    }
    let Some(seen) = map.get_mut(&callsite) else {
        map.insert(callsite, Seen::Once(Box::from(text)));
        return None;
    };
    let (next, name) = match seen {
        Seen::Once(first) if **first == *text => {
            let name: &'static str = Box::leak(Box::from(text));
            (Seen::Stable(name), Some(name))
        }
        Seen::Stable(name) if *name == text => return Some(name),
        _ => (Seen::Varying, None),
    };
    *seen = next;
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    // Distinct fake callsite addresses per test (tests run in parallel on one map).
    const A: usize = 0x1000_0010;
    const B: usize = 0x1000_0020;
    const C: usize = 0x1000_0030;

    #[test]
    fn stable_message_is_interned_from_the_second_event() {
        let first = event_name(A, &format_args!("order created"));
        assert!(matches!(first, Cow::Owned(_)));
        let second = event_name(A, &format_args!("order created"));
        let third = event_name(A, &format_args!("order created"));
        let (Cow::Borrowed(b), Cow::Borrowed(c)) = (&second, &third) else {
            panic!("interned names expected: {second:?} {third:?}");
        };
        assert_eq!(*b, "order created");
        assert!(std::ptr::eq(*b, *c));
    }

    #[test]
    fn varying_message_is_never_interned() {
        for i in 0..5 {
            let name = event_name(B, &format_args!("order {i}"));
            assert_eq!(name, format!("order {i}"));
            assert!(matches!(name, Cow::Owned(_)));
        }
        // Once varying, even a repeated message stays owned.
        assert!(matches!(event_name(B, &format_args!("x")), Cow::Owned(_)));
        assert!(matches!(event_name(B, &format_args!("x")), Cow::Owned(_)));
    }

    #[test]
    fn a_stable_callsite_that_changes_stays_correct() {
        let _ = event_name(C, &format_args!("same"));
        let _ = event_name(C, &format_args!("same"));
        assert_eq!(event_name(C, &format_args!("other")), "other");
        assert_eq!(event_name(C, &format_args!("same")), "same");
    }

    #[test]
    fn a_message_that_only_extends_or_shortens_the_interned_one_is_not_it() {
        const D: usize = 0x1000_0040;
        let _ = event_name(D, &format_args!("stock {}", "low"));
        assert_eq!(event_name(D, &format_args!("stock {}", "low")), "stock low");
        assert_eq!(
            event_name(D, &format_args!("stock {}", "low!")),
            "stock low!"
        );
        assert_eq!(event_name(D, &format_args!("stock {}", "lo")), "stock lo");
        assert_eq!(event_name(D, &format_args!("stock {}", "low")), "stock low");
    }

    #[test]
    fn long_messages_are_formatted_whole() {
        let long = "y".repeat(INLINE + 10);
        assert_eq!(event_name(A + 1, &format_args!("{long}")), long);
    }
}
