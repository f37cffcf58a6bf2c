//! Group commit: how a commit thread (the embedded store's WAL, a forward queue's) gathers
//! the writes that one `fdatasync` covers, and how receivers announce writes still on their
//! way.
//!
//! A commit thread takes the first write, then every write already queued. Under concurrent
//! load that alone often leaves one write per fsync: the other requests are still being
//! decoded when the thread looks. So a receiver announces its request before decoding it
//! ([`Announced::announce`]) and withdraws the announcement just before it submits the write
//! ([`Incoming`] is dropped); while any announcement is out, the commit thread waits for more
//! writes, at most its linger (1 ms by default), and then commits what it has. A lone client
//! announces nothing that the thread could wait for, so it waits for nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// Default longest wait for announced writes: about the time to decode and encode a
/// 100-span request on a busy core.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);

/// A count of writes announced and not yet submitted, shared by the receivers and a commit
/// thread. Cheap to clone (clones count together).
#[derive(Debug, Clone, Default)]
pub struct Announced(Arc<AtomicUsize>);

impl Announced {
    /// Announces one write, until the returned [`Incoming`] is dropped.
    pub fn announce(&self) -> Incoming {
        self.0.fetch_add(1, Ordering::AcqRel);
        Incoming(vec![self.clone()])
    }

    /// Writes announced and not yet submitted.
    pub fn pending(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A write announced to one or more commit threads ([`Announced::announce`]): held while the
/// caller decodes and prepares its request, dropped just before the caller submits the write
/// (or gives up). The default announces nothing.
#[derive(Debug, Default)]
#[must_use = "an announcement is withdrawn when dropped"]
pub struct Incoming(Vec<Announced>);

impl Incoming {
    /// One announcement covering both `self`'s commit threads and `other`'s.
    pub fn and(mut self, mut other: Incoming) -> Incoming {
        self.0.append(&mut other.0);
        self
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        for a in &self.0 {
            a.0.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The writes of one group commit: `first`, every write already queued, and, while writes
/// are announced and the last item gathered is one that may wait (`may_wait`; a control
/// command should not), those arriving within `linger`. At most `max` items.
pub fn gather<T>(
    rx: &Receiver<T>,
    first: T,
    max: usize,
    announced: &Announced,
    linger: Duration,
    may_wait: impl Fn(&T) -> bool,
) -> Vec<T> {
    let mut group = vec![first];
    let mut deadline = None;
    while group.len() < max && group.last().is_some_and(&may_wait) {
        match rx.try_recv() {
            Ok(item) => {
                group.push(item);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        if announced.pending() == 0 {
            break;
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + linger);
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match rx.recv_timeout(left) {
            Ok(item) => group.push(item),
            Err(_) => break,
        }
    }
    group
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use std::sync::mpsc::channel;

    use super::*;

    #[test]
    fn announcements_count_until_dropped_and_combine() {
        let (a, b) = (Announced::default(), Announced::default());
        let one = a.announce();
        let both = a.announce().and(b.announce());
        assert_eq!((a.pending(), b.pending()), (2, 1));
        drop(one);
        assert_eq!((a.pending(), b.pending()), (1, 1));
        drop(both);
        assert_eq!((a.pending(), b.pending()), (0, 0));
        drop(Incoming::default());
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn without_announcements_only_queued_items_join_the_group() {
        let (tx, rx) = channel();
        for i in 1..=3 {
            tx.send(i).unwrap();
        }
        let announced = Announced::default();
        let group = gather(&rx, 0, 10, &announced, Duration::from_secs(60), |_| true);
        assert_eq!(group, [0, 1, 2, 3]);
    }

    #[test]
    fn the_group_is_capped() {
        let (tx, rx) = channel();
        for i in 1..=5 {
            tx.send(i).unwrap();
        }
        let announced = Announced::default();
        let _pending = announced.announce();
        let group = gather(&rx, 0, 3, &announced, Duration::from_secs(60), |_| true);
        assert_eq!(group, [0, 1, 2]);
    }

    #[test]
    fn an_announced_item_is_waited_for() {
        let (tx, rx) = channel();
        let announced = Announced::default();
        let pending = announced.announce();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(pending);
            tx.send(1).unwrap();
        });
        let group = gather(&rx, 0, 10, &announced, Duration::from_secs(60), |_| true);
        assert_eq!(group, [0, 1]);
        sender.join().unwrap();
    }

    #[test]
    fn the_wait_ends_after_the_linger_and_never_after_a_control_item() {
        let (_tx, rx) = channel::<i32>();
        let announced = Announced::default();
        let _never = announced.announce();
        let group = gather(&rx, 0, 10, &announced, Duration::from_millis(10), |_| true);
        assert_eq!(group, [0]);
        // Negative items stand for control commands: no waiting behind them.
        let group = gather(
            &rx,
            -1,
            10,
            &announced,
            Duration::from_secs(60),
            |i: &i32| *i >= 0,
        );
        assert_eq!(group, [-1]);
    }
}
