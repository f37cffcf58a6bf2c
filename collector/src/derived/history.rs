//! Recent per-minute aggregates per service, operation and span kind, for Jaeger's Monitor tab.
//!
//! Jaeger's SPM API (`/api/metrics/{calls,errors,latencies}`) asks for time series: at each
//! `step` over `lookback`, a rate (or quantile) over the preceding `ratePer`. Prometheus answers
//! that from scraped counters; the collector answers it from this history instead, so a Jaeger
//! UI pointed at the collector shows service performance without a Prometheus.
//!
//! Each operation keeps one slot per minute that saw spans (calls, errors and the span-duration
//! histogram in the span-metrics buckets), for [`RETENTION_SLOTS`] minutes, by arrival time.
//! Memory is bounded by the series cap: at most `cap` operations × [`RETENTION_SLOTS`] slots of
//! 76 bytes (≈ 9 KiB per operation busy for the whole retention).

use std::collections::VecDeque;

use super::names::SPAN_DURATION_BUCKETS_MS;
use super::series::SeriesTable;
use super::spanmetrics::{duration_ms, service_of};
use crate::model::{SpanKind, SpanRef, StatusCode};

/// Seconds per slot.
pub const SLOT_SECONDS: u64 = 60;
/// Slots kept per operation: two hours.
pub const RETENTION_SLOTS: u64 = 120;

const BUCKETS: usize = SPAN_DURATION_BUCKETS_MS.len() + 1;

#[derive(Debug)]
struct Key {
    service: Box<str>,
    operation: Box<str>,
    kind: SpanKind,
}

/// One minute of one operation.
#[derive(Debug, Clone, Copy)]
struct Slot {
    minute: u64,
    calls: u32,
    errors: u32,
    buckets: [u32; BUCKETS],
}

/// Sums over a window, as the SPM queries need them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Spans in the window.
    pub calls: u64,
    /// Spans with status ERROR in the window.
    pub errors: u64,
    /// Per-bucket (not cumulative) duration counts, `+Inf` last.
    pub buckets: [u64; BUCKETS],
}

impl Default for Window {
    fn default() -> Self {
        Self {
            calls: 0,
            errors: 0,
            buckets: [0; BUCKETS],
        }
    }
}

impl Window {
    fn add(&mut self, slot: &Slot) {
        self.calls += u64::from(slot.calls);
        self.errors += u64::from(slot.errors);
        for (sum, n) in self.buckets.iter_mut().zip(slot.buckets) {
            *sum += u64::from(n);
        }
    }

    /// Adds another window's sums.
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.errors += other.errors;
        for (sum, n) in self.buckets.iter_mut().zip(other.buckets) {
            *sum += n;
        }
    }

    /// The `q` quantile of the durations in milliseconds, interpolated linearly inside the
    /// bucket as Prometheus' `histogram_quantile` does; `None` without observations.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            let upto = below + n;
            if (upto as f64) >= rank && *n > 0 {
                let Some(upper) = SPAN_DURATION_BUCKETS_MS.get(i) else {
                    // The +Inf bucket: Prometheus answers the highest finite bound.
                    return SPAN_DURATION_BUCKETS_MS.last().copied();
                };
                let lower = if i == 0 {
                    0.0
                } else {
                    SPAN_DURATION_BUCKETS_MS[i - 1]
                };
                let into = (rank - below as f64) / *n as f64;
                return Some(lower + (upper - lower) * into);
            }
            below = upto;
        }
        SPAN_DURATION_BUCKETS_MS.last().copied()
    }
}

/// Per-operation minute slots.
#[derive(Debug)]
pub(crate) struct History {
    table: SeriesTable<Key, VecDeque<Slot>>,
}

impl History {
    /// History for at most `cap` operations.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            table: SeriesTable::new(cap),
        }
    }

    /// Adds one span that arrived at `unix_s` (seconds since the epoch); `operation` is
    /// [`LabelHasher::operation`](super::series::LabelHasher::operation) of its service, name
    /// and kind (unused when the span has no service name).
    pub(crate) fn observe(&mut self, operation: u64, span: &SpanRef<'_, '_>, unix_s: u64) {
        let Some(service) = service_of(span) else {
            return;
        };
        let minute = unix_s / SLOT_SECONDS;
        let slots = self.table.update(
            operation,
            |k| *k.service == *service && *k.operation == *span.name && k.kind == span.kind,
            || {
                let key = Key {
                    service: service.into(),
                    operation: span.name.into(),
                    kind: span.kind,
                };
                (key, VecDeque::new())
            },
            minute,
        );
        if slots.back().is_none_or(|s| s.minute != minute) {
            while slots
                .front()
                .is_some_and(|s| s.minute + RETENTION_SLOTS <= minute)
            {
                slots.pop_front();
            }
            slots.push_back(Slot {
                minute,
                calls: 0,
                errors: 0,
                buckets: [0; BUCKETS],
            });
        }
        if let Some(slot) = slots.back_mut() {
            slot.calls = slot.calls.saturating_add(1);
            if span.status_code == StatusCode::Error {
                slot.errors = slot.errors.saturating_add(1);
            }
            let ms = duration_ms(span);
            let i = SPAN_DURATION_BUCKETS_MS.partition_point(|b| *b < ms);
            if let Some(b) = slot.buckets.get_mut(i) {
                *b = b.saturating_add(1);
            }
        }
    }

    /// Drops operations with no slot within the retention (`now` in unix seconds).
    pub(crate) fn expire(&mut self, unix_s: u64) {
        self.table.expire(unix_s / SLOT_SECONDS, RETENTION_SLOTS);
    }

    /// For every operation of `services` with a kind in `kinds`: its service, operation and
    /// the sums over each of `windows` (`(from, to]` in unix seconds): every slot that
    /// overlaps the window counts whole, so a window spans up to one slot more than asked.
    pub(crate) fn windows(
        &self,
        services: &[String],
        kinds: &[SpanKind],
        windows: &[(u64, u64)],
    ) -> Vec<(String, String, Vec<Window>)> {
        let mut out = Vec::new();
        for (key, slots) in self
            .table
            .sorted_by(|k| (k.service.clone(), k.operation.clone()))
        {
            let Some(key) = key else { continue };
            if !kinds.contains(&key.kind) || !services.iter().any(|s| **s == *key.service) {
                continue;
            }
            let sums = windows
                .iter()
                .map(|(from, to)| {
                    let mut w = Window::default();
                    for slot in slots {
                        let start = slot.minute * SLOT_SECONDS;
                        if start <= *to && start + SLOT_SECONDS > *from {
                            w.add(slot);
                        }
                    }
                    w
                })
                .collect();
            out.push((key.service.to_string(), key.operation.to_string(), sums));
        }
        out
    }

    /// Operations held.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(buckets: &[(usize, u64)]) -> Window {
        let mut w = Window::default();
        for (i, n) in buckets {
            w.buckets[*i] = *n;
            w.calls += n;
        }
        w
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 10 spans in (0, 2] ms and 10 in (50, 100] ms.
        let w = window(&[(0, 10), (6, 10)]);
        assert_eq!(w.quantile_ms(0.5), Some(2.0));
        assert_eq!(w.quantile_ms(0.75), Some(75.0));
        assert_eq!(w.quantile_ms(0.25), Some(1.0));
        assert_eq!(Window::default().quantile_ms(0.5), None);
        let inf = window(&[(BUCKETS - 1, 3)]);
        assert_eq!(inf.quantile_ms(0.99), Some(15000.0));
    }
}
