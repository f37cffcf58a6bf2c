//! A set of labelled series with a hard cap, an overflow series and idle expiry.
//!
//! Every derived metric keeps its series in a [`SeriesTable`]. A span whose labels are not yet
//! known creates a series only while the table holds fewer than `cap`; past that it is folded
//! into the one overflow series (rendered with `otel_metric_overflow="true"`) and counted, so a
//! flood of unique span names costs one series, not one per name
//! (`shared/reference/metric-names.md` §B.4). Series not updated for the expiry time are
//! removed on [`SeriesTable::expire`].
//!
//! Keys carry their own hash: the caller hashes the borrowed label values of a span with
//! [`LabelHasher`] and compares in place, so a hit allocates nothing.

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::model::SpanKind;

/// Hashes label values; the same hasher must hash the lookup and the stored key.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelHasher(hashbrown::DefaultHashBuilder);

impl LabelHasher {
    /// Starts a hash.
    pub(crate) fn start(&self) -> impl Hasher {
        self.0.build_hasher()
    }

    /// The hash of an operation: service, span name and kind. Span metrics and the Monitor-tab
    /// history key their series by it (span metrics adding the status and dimensions), so a
    /// span's two label strings are hashed once for both.
    pub(crate) fn operation(&self, service: &str, name: &str, kind: SpanKind) -> u64 {
        let mut h = self.start();
        service.hash(&mut h);
        name.hash(&mut h);
        kind.hash(&mut h);
        h.finish()
    }

    /// Hashes one value on its own.
    #[cfg(test)]
    pub(crate) fn one<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        let mut h = self.start();
        value.hash(&mut h);
        h.finish()
    }
}

#[derive(Debug)]
struct Slot<K, V> {
    hash: u64,
    key: K,
    value: V,
    touched: u64,
}

/// A capped, expiring set of series keyed by `K` with values `V`.
#[derive(Debug)]
pub(crate) struct SeriesTable<K, V> {
    table: HashTable<Slot<K, V>>,
    overflow: Option<(V, u64)>,
    cap: usize,
    overflowed: u64,
    expired: u64,
}

impl<K, V> SeriesTable<K, V> {
    /// An empty table holding at most `cap` series besides the overflow series.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            table: HashTable::new(),
            overflow: None,
            cap,
            overflowed: 0,
            expired: 0,
        }
    }

    /// The series of `hash`/`eq`, created with `make` if absent and the cap allows, else the
    /// overflow series. `now` (any monotonic seconds) marks it as updated.
    pub(crate) fn update(
        &mut self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
        now: u64,
    ) -> &mut V {
        let full = self.table.len() >= self.cap;
        match self.table.entry(hash, |s| eq(&s.key), |s| s.hash) {
            Entry::Occupied(slot) => {
                let slot = slot.into_mut();
                slot.touched = now;
                &mut slot.value
            }
            Entry::Vacant(vacant) if !full => {
                let (key, value) = make();
                let slot = vacant
                    .insert(Slot {
                        hash,
                        key,
                        value,
                        touched: now,
                    })
                    .into_mut();
                &mut slot.value
            }
            Entry::Vacant(_) => {
                self.overflowed += 1;
                let (value, touched) = self.overflow.get_or_insert_with(|| (make().1, now));
                *touched = now;
                value
            }
        }
    }

    /// Removes series (the overflow series included) not updated since `now - max_idle`.
    pub(crate) fn expire(&mut self, now: u64, max_idle: u64) {
        let before = self.table.len();
        self.table
            .retain(|slot| now.saturating_sub(slot.touched) <= max_idle);
        self.expired += (before - self.table.len()) as u64;
        if self
            .overflow
            .as_ref()
            .is_some_and(|(_, t)| now.saturating_sub(*t) > max_idle)
        {
            self.overflow = None;
            self.expired += 1;
        }
    }

    /// Series held, the overflow series included.
    pub(crate) fn len(&self) -> usize {
        self.table.len() + usize::from(self.overflow.is_some())
    }

    /// Updates folded into the overflow series so far.
    pub(crate) fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Series removed by expiry so far.
    pub(crate) fn expired(&self) -> u64 {
        self.expired
    }

    /// The series in the order of `order`, then the overflow series (key `None`).
    pub(crate) fn sorted_by<O: Ord>(&self, order: impl Fn(&K) -> O) -> Vec<(Option<&K>, &V)> {
        let mut series: Vec<_> = self.table.iter().map(|s| (&s.key, &s.value)).collect();
        series.sort_by_cached_key(|(k, _)| order(k));
        let mut out: Vec<_> = series.into_iter().map(|(k, v)| (Some(k), v)).collect();
        out.extend(self.overflow.as_ref().map(|(v, _)| (None, v)));
        out
    }
}

/// Cumulative histogram counts over fixed upper bounds (`+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    /// Per-bucket (not cumulative) counts; one more than the bounds, for `+Inf`.
    buckets: Box<[u64]>,
    sum: f64,
}

impl Histogram {
    /// An empty histogram for `bounds`.
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Self {
            buckets: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum: 0.0,
        }
    }

    /// Records `value` (bounds are inclusive upper limits, as Prometheus' `le`).
    pub(crate) fn observe(&mut self, bounds: &[f64], value: f64) {
        let i = bounds.partition_point(|b| *b < value);
        if let Some(bucket) = self.buckets.get_mut(i) {
            *bucket += 1;
        }
        self.sum += value;
    }

    /// Observations recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Sum of the observed values.
    pub(crate) fn sum(&self) -> f64 {
        self.sum
    }

    /// Per-bucket counts, `+Inf` last.
    pub(crate) fn buckets(&self) -> &[u64] {
        &self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(t: &mut SeriesTable<String, u64>, h: &LabelHasher, key: &str, now: u64) {
        *t.update(h.one(key), |k| k == key, || (key.to_owned(), 0), now) += 1;
    }

    #[test]
    fn cap_folds_new_series_into_overflow() {
        let h = LabelHasher::default();
        let mut t = SeriesTable::new(3);
        for i in 0..1000 {
            touch(&mut t, &h, &format!("name-{i}"), 0);
        }
        touch(&mut t, &h, "name-1", 0);
        assert_eq!(t.len(), 4, "three series and the overflow series");
        assert_eq!(t.overflowed(), 997);
        let rendered = t.sorted_by(|k| k.clone());
        let values: Vec<_> = rendered.iter().map(|(k, v)| (k.cloned(), **v)).collect();
        assert_eq!(
            values,
            vec![
                (Some("name-0".to_owned()), 1),
                (Some("name-1".to_owned()), 2),
                (Some("name-2".to_owned()), 1),
                (None, 997),
            ]
        );
    }

    #[test]
    fn expiry_removes_idle_series_and_frees_room() {
        let h = LabelHasher::default();
        let mut t = SeriesTable::new(2);
        touch(&mut t, &h, "a", 0);
        touch(&mut t, &h, "b", 10);
        touch(&mut t, &h, "c", 10);
        t.expire(20, 15);
        assert_eq!(t.len(), 2, "a expired, b kept, overflow kept");
        t.expire(40, 15);
        assert_eq!(t.len(), 0);
        assert_eq!(t.expired(), 3);
        touch(&mut t, &h, "d", 41);
        assert_eq!(t.len(), 1, "room again after expiry");
    }

    #[test]
    fn histogram_bounds_are_inclusive() {
        let bounds = [1.0, 5.0];
        let mut hist = Histogram::new(&bounds);
        for v in [0.5, 1.0, 1.01, 5.0, 99.0] {
            hist.observe(&bounds, v);
        }
        assert_eq!(hist.buckets(), &[2, 2, 1]);
        assert_eq!(hist.count(), 5);
        assert!((hist.sum() - 106.51).abs() < 1e-9);
    }
}
