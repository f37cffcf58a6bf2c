//! Attribute values that repeat from request to request (`server.address`,
//! `user_agent.original`), shared instead of copied into a new `String` for every span.
//!
//! A service sees a handful of distinct host names and user agents at any time, so each thread
//! keeps the last few of each as `Arc<str>`: a span attribute then costs a reference count
//! instead of an allocation. The caches are per thread (no lock, no contention) and small (a
//! few short strings), so memory stays bounded whatever the requests carry.

use std::cell::RefCell;
use std::sync::Arc;

use opentelemetry::Value;

/// Entries per cache and thread.
const SLOTS: usize = 8;
/// Longer values are not cached (copied per request as before): they are unlikely to repeat.
const MAX_LEN: usize = 256;

/// The last [`SLOTS`] distinct values of one attribute on this thread, replaced round-robin.
#[derive(Default)]
pub(crate) struct Recent {
    slots: [Option<Arc<str>>; SLOTS],
    next: usize,
}

impl Recent {
    fn get(&mut self, text: &str) -> Value {
        if text.len() > MAX_LEN {
            return text.to_owned().into();
        }
        if let Some(hit) = self.slots.iter().flatten().find(|s| ***s == *text) {
            return Value::from(Arc::clone(hit));
        }
        let value: Arc<str> = Arc::from(text);
        if let Some(slot) = self.slots.get_mut(self.next % SLOTS) {
            *slot = Some(Arc::clone(&value));
        }
        self.next = self.next.wrapping_add(1);
        Value::from(value)
    }
}

thread_local! {
    static SERVER_ADDRESS: RefCell<Recent> = RefCell::default();
    static USER_AGENT: RefCell<Recent> = RefCell::default();
}

/// `server.address`: the host name, shared with earlier requests to the same host.
pub(crate) fn server_address(host: &str) -> Value {
    SERVER_ADDRESS.with(|r| match r.try_borrow_mut() {
        Ok(mut recent) => recent.get(host),
        Err(_) => host.to_owned().into(),
    })
}

/// `user_agent.original`, shared with earlier requests from the same kind of client.
pub(crate) fn user_agent(ua: &str) -> Value {
    USER_AGENT.with(|r| match r.try_borrow_mut() {
        Ok(mut recent) => recent.get(ua),
        Err(_) => ua.to_owned().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_share_one_string() {
        let (Value::String(a), Value::String(b)) = (
            server_address("shop.example"),
            server_address("shop.example"),
        ) else {
            panic!("string values expected");
        };
        assert_eq!(a.as_str(), "shop.example");
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
    }

    #[test]
    fn cache_is_bounded_and_stays_correct() {
        for i in 0..3 * SLOTS {
            let ua = format!("agent/{i}");
            assert_eq!(user_agent(&ua).as_str(), ua);
        }
        let long = "x".repeat(MAX_LEN + 1);
        assert_eq!(user_agent(&long).as_str(), long);
        USER_AGENT.with(|r| {
            let r = r.borrow();
            assert!(r.slots.iter().flatten().all(|s| s.len() <= MAX_LEN));
        });
    }
}
