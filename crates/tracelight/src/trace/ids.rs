//! Random trace and span ids, for spans the middleware knows are dropped without asking the SDK.
//!
//! The same generator as the SDK's default `RandomIdGenerator` (a per-thread `SmallRng` seeded
//! from the OS); ids are never zero.

use std::cell::RefCell;

use opentelemetry::trace::{SpanId, TraceId};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// A new, valid (non-zero) trace id.
pub(crate) fn new_trace_id() -> TraceId {
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        loop {
            let id: u128 = r.random();
            if id != 0 {
                return TraceId::from(id);
            }
        }
    })
}

/// A new, valid (non-zero) span id.
pub(crate) fn new_span_id() -> SpanId {
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        loop {
            let id: u64 = r.random();
            if id != 0 {
                return SpanId::from(id);
            }
        }
    })
}
