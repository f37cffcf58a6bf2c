//! A circuit breaker: stop calling a dependency that keeps failing, probe it after a pause.
//!
//! ```text
//! Closed ──(failure_threshold consecutive failures)──▶ Open
//! Open ──(open_for elapsed, next call is the probe)──▶ HalfOpen
//! HalfOpen ──(half_open_probes successful probes)──▶ Closed
//! HalfOpen ──(a probe fails)──▶ Open (the pause starts again)
//! ```
//!
//! Unlike the seed article's version, half-open lets **one probe at a time** through (the other
//! calls are refused, so a recovering service is not hit by the whole backlog at once), and a
//! probe whose caller vanished (cancelled future) stops blocking the breaker after `open_for`.
//!
//! The state machine takes `now` as an argument, so tests drive the clock. Each transition is
//! observed where it happens: `shop_circuit_breaker_transitions_total{from,to}` counts it,
//! `shop_circuit_breaker_state{state}` follows it, and an event on the current span (a span
//! event in the trace) records it.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::names;

/// When the breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker (at least 1).
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting a probe through.
    pub open_for: Duration,
    /// Consecutive successful probes that close a half-open breaker (at least 1).
    pub half_open_probes: u32,
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe call at a time goes through.
    HalfOpen,
}

impl BreakerState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    /// The `state` / `from` / `to` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
}

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {breaker} is open")]
pub struct Rejected {
    /// The breaker's name.
    pub breaker: &'static str,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_started: Option<Instant>,
    probe_successes: u32,
}

/// A named circuit breaker, shared by all calls to one dependency.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker. Sets the state gauge.
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        let breaker = Self {
            name,
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_started: None,
                probe_successes: 0,
            }),
        };
        set_state_gauge(name, BreakerState::Closed);
        breaker
    }

    /// The breaker's name (the `breaker` label).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current state. An open breaker whose pause is over still reads `Open` until the next
    /// call becomes the probe.
    pub fn state(&self) -> BreakerState {
        self.inner.lock().state
    }

    /// Asks to make a call at `now`. `Ok` means go ahead, then report with
    /// [`on_success`](Self::on_success) or [`on_failure`](Self::on_failure); the transition, if
    /// any, has been observed already and is returned for the caller's information.
    pub fn try_acquire(&self, now: Instant) -> Result<Option<Transition>, Rejected> {
        let transition = {
            let mut inner = self.inner.lock();
            match inner.state {
                BreakerState::Closed => None,
                BreakerState::Open => {
                    let reopen = inner.opened_at.map_or(now, |at| at + self.config.open_for);
                    if now < reopen {
                        drop(inner);
                        self.rejected();
                        return Err(Rejected { breaker: self.name });
                    }
                    inner.state = BreakerState::HalfOpen;
                    inner.probe_started = Some(now);
                    inner.probe_successes = 0;
                    Some(Transition {
                        from: BreakerState::Open,
                        to: BreakerState::HalfOpen,
                    })
                }
                BreakerState::HalfOpen => {
                    let busy = inner
                        .probe_started
                        .is_some_and(|at| now < at + self.config.open_for);
                    if busy {
                        drop(inner);
                        self.rejected();
                        return Err(Rejected { breaker: self.name });
                    }
                    inner.probe_started = Some(now);
                    None
                }
            }
        };
        self.observe(transition);
        Ok(transition)
    }

    /// Reports a successful call.
    pub fn on_success(&self, _now: Instant) -> Option<Transition> {
        let transition = {
            let mut inner = self.inner.lock();
            match inner.state {
                BreakerState::Closed => {
                    inner.consecutive_failures = 0;
                    None
                }
                BreakerState::HalfOpen => {
                    inner.probe_started = None;
                    inner.probe_successes += 1;
                    if inner.probe_successes >= self.config.half_open_probes {
                        inner.state = BreakerState::Closed;
                        inner.consecutive_failures = 0;
                        inner.opened_at = None;
                        Some(Transition {
                            from: BreakerState::HalfOpen,
                            to: BreakerState::Closed,
                        })
                    } else {
                        None
                    }
                }
                // A call admitted before the breaker opened: too late to matter.
                BreakerState::Open => None,
            }
        };
        self.observe(transition);
        transition
    }

    /// Reports a failed call (an error or a timeout, not a refusal by the breaker).
    pub fn on_failure(&self, now: Instant) -> Option<Transition> {
        let transition = {
            let mut inner = self.inner.lock();
            match inner.state {
                BreakerState::Closed => {
                    inner.consecutive_failures += 1;
                    if inner.consecutive_failures >= self.config.failure_threshold {
                        inner.state = BreakerState::Open;
                        inner.opened_at = Some(now);
                        Some(Transition {
                            from: BreakerState::Closed,
                            to: BreakerState::Open,
                        })
                    } else {
                        None
                    }
                }
                BreakerState::HalfOpen => {
                    inner.state = BreakerState::Open;
                    inner.opened_at = Some(now);
                    inner.probe_started = None;
                    inner.probe_successes = 0;
                    Some(Transition {
                        from: BreakerState::HalfOpen,
                        to: BreakerState::Open,
                    })
                }
                BreakerState::Open => None,
            }
        };
        self.observe(transition);
        transition
    }

    fn rejected(&self) {
        metrics::counter!(names::BREAKER_REJECTED, names::LABEL_BREAKER => self.name).increment(1);
    }

    fn observe(&self, transition: Option<Transition>) {
        let Some(Transition { from, to }) = transition else {
            return;
        };
        metrics::counter!(
            names::BREAKER_TRANSITIONS,
            names::LABEL_BREAKER => self.name,
            names::LABEL_FROM => from.as_str(),
            names::LABEL_TO => to.as_str(),
        )
        .increment(1);
        set_state_gauge(self.name, to);
        // Inside a request this event lands on the current span: a span event in the trace.
        if to == BreakerState::Open {
            tracing::warn!(
                breaker = self.name,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            );
        } else {
            tracing::info!(
                breaker = self.name,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            );
        }
    }
}

fn set_state_gauge(breaker: &'static str, current: BreakerState) {
    for state in BreakerState::ALL {
        let value = if state == current { 1.0 } else { 0.0 };
        metrics::gauge!(
            names::BREAKER_STATE,
            names::LABEL_BREAKER => breaker,
            names::LABEL_STATE => state.as_str(),
        )
        .set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    fn breaker(threshold: u32, probes: u32) -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerConfig {
                failure_threshold: threshold,
                open_for: OPEN_FOR,
                half_open_probes: probes,
            },
        )
    }

    fn t(from: BreakerState, to: BreakerState) -> Option<Transition> {
        Some(Transition { from, to })
    }

    use BreakerState::{Closed, HalfOpen, Open};

    #[test]
    fn opens_after_n_consecutive_failures() {
        let b = breaker(3, 1);
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.try_acquire(now), Ok(None));
            assert_eq!(b.on_failure(now), None);
        }
        assert_eq!(b.state(), Closed);
        assert_eq!(b.try_acquire(now), Ok(None));
        assert_eq!(b.on_failure(now), t(Closed, Open));
        assert_eq!(b.state(), Open);
        assert_eq!(b.try_acquire(now), Err(Rejected { breaker: "test" }));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = breaker(2, 1);
        let now = Instant::now();
        b.on_failure(now);
        b.on_success(now);
        assert_eq!(b.on_failure(now), None);
        assert_eq!(b.state(), Closed);
        assert_eq!(b.on_failure(now), t(Closed, Open));
    }

    #[test]
    fn half_open_admits_one_probe_after_the_pause() {
        let b = breaker(1, 1);
        let start = Instant::now();
        b.on_failure(start);
        assert!(
            b.try_acquire(start + OPEN_FOR - Duration::from_millis(1))
                .is_err()
        );

        let later = start + OPEN_FOR;
        assert_eq!(b.try_acquire(later), Ok(t(Open, HalfOpen)));
        assert_eq!(b.state(), HalfOpen);
        // A second caller while the probe is in flight is refused.
        assert!(b.try_acquire(later).is_err());
    }

    #[test]
    fn a_successful_probe_closes_the_breaker() {
        let b = breaker(1, 1);
        let start = Instant::now();
        b.on_failure(start);
        let later = start + OPEN_FOR;
        b.try_acquire(later).unwrap();
        assert_eq!(b.on_success(later), t(HalfOpen, Closed));
        assert_eq!(b.state(), Closed);
        assert_eq!(b.try_acquire(later), Ok(None));
    }

    #[test]
    fn a_failed_probe_reopens_and_restarts_the_pause() {
        let b = breaker(1, 1);
        let start = Instant::now();
        b.on_failure(start);
        let probe_at = start + OPEN_FOR;
        b.try_acquire(probe_at).unwrap();
        assert_eq!(b.on_failure(probe_at), t(HalfOpen, Open));
        assert!(b.try_acquire(probe_at + OPEN_FOR / 2).is_err());
        assert_eq!(b.try_acquire(probe_at + OPEN_FOR), Ok(t(Open, HalfOpen)));
    }

    #[test]
    fn several_probes_needed_when_configured() {
        let b = breaker(1, 2);
        let start = Instant::now();
        b.on_failure(start);
        let now = start + OPEN_FOR;
        b.try_acquire(now).unwrap();
        assert_eq!(b.on_success(now), None);
        assert_eq!(b.state(), HalfOpen);
        assert_eq!(b.try_acquire(now), Ok(None));
        assert_eq!(b.on_success(now), t(HalfOpen, Closed));
    }

    #[test]
    fn an_abandoned_probe_stops_blocking_after_the_pause() {
        let b = breaker(1, 1);
        let start = Instant::now();
        b.on_failure(start);
        let probe_at = start + OPEN_FOR;
        b.try_acquire(probe_at).unwrap(); // caller never reports back
        assert!(b.try_acquire(probe_at + OPEN_FOR / 2).is_err());
        assert_eq!(b.try_acquire(probe_at + OPEN_FOR), Ok(None));
    }

    #[test]
    fn late_results_while_open_change_nothing() {
        let b = breaker(1, 1);
        let now = Instant::now();
        b.on_failure(now);
        assert_eq!(b.on_success(now), None);
        assert_eq!(b.on_failure(now), None);
        assert_eq!(b.state(), Open);
    }
}
