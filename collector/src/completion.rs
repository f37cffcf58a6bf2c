//! One-shot completion callbacks: how a writer thread (the store's commit thread, a forward
//! queue's) tells whoever submitted a write, possibly an async task, that it is durable.
//!
//! A callback rather than a channel so that the submitter decides what completion does (wake
//! a task, return a budget, join several writes) without the writer knowing, and without a
//! thread blocked waiting for the answer.

use std::fmt;

/// Called once with the outcome of one submitted write.
pub struct Done<E>(Box<dyn FnOnce(Result<(), E>) + Send>);

impl<E> Done<E> {
    /// Wraps `f`.
    pub fn new(f: impl FnOnce(Result<(), E>) + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// Reports `result`.
    pub fn call(self, result: Result<(), E>) {
        (self.0)(result);
    }
}

impl<E> fmt::Debug for Done<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Done")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::Done;

    #[test]
    fn the_callback_gets_the_result_once() {
        let (tx, rx) = sync_channel(2);
        let done: Done<&str> = Done::new(move |r| {
            let _ = tx.send(r);
        });
        done.call(Err("disk full"));
        assert_eq!(rx.try_recv(), Ok(Err("disk full")));
        // The callback (and its sender) is gone after the call.
        assert!(rx.try_recv().is_err());
    }
}
