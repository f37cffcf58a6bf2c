//! In-memory store bounded by a span count; evicts whole traces, oldest first.
//!
//! "Oldest" means first seen: a trace keeps the eviction position it got with its first span.
//! It also serves as the reference model for the durable store's tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Operation, SpanStore, StoreError, StoreStats, TraceQuery};
use crate::model::{
    DependencyLink, Span, SpanBatch, SpanId, SpanKind, Trace, TraceId, count_dependencies,
    links_from_counts,
};

/// Index key: (span start ns, trace id, span id). Reverse order is "newest first".
type TimeKey = (u64, TraceId, SpanId);

/// A bounded in-memory [`SpanStore`].
#[derive(Debug)]
pub struct MemoryStore {
    max_spans: usize,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    traces: HashMap<TraceId, HashMap<SpanId, Arc<Span>>>,
    /// Trace ids in first-seen order (eviction order).
    order: VecDeque<TraceId>,
    /// service → operation → number of stored spans with it.
    operations: BTreeMap<String, BTreeMap<Operation, u64>>,
    /// service → spans by start time.
    by_service: HashMap<String, BTreeMap<TimeKey, Arc<Span>>>,
    /// All spans by start time.
    by_time: BTreeMap<TimeKey, Arc<Span>>,
    spans: u64,
    bytes: u64,
}

impl MemoryStore {
    /// A store holding at most `max_spans` spans (at least one).
    pub fn new(max_spans: usize) -> Self {
        Self {
            max_spans: max_spans.max(1),
            inner: RwLock::new(Inner::default()),
        }
    }
}

fn key(span: &Span) -> TimeKey {
    (span.start_ns, span.trace_id, span.span_id)
}

impl Inner {
    fn insert(&mut self, span: Span) {
        let trace_id = span.trace_id;
        let spans = match self.traces.get_mut(&trace_id) {
            Some(spans) => spans,
            None => {
                self.order.push_back(trace_id);
                self.traces.entry(trace_id).or_default()
            }
        };
        if spans.contains_key(&span.span_id) {
            // A retried export: the first copy wins.
            return;
        }
        let span = Arc::new(span);
        spans.insert(span.span_id, Arc::clone(&span));
        let service = span.service_name().to_owned();
        *self
            .operations
            .entry(service.clone())
            .or_default()
            .entry(Operation {
                name: span.name.clone(),
                kind: span.kind,
            })
            .or_default() += 1;
        self.by_service
            .entry(service)
            .or_default()
            .insert(key(&span), Arc::clone(&span));
        self.by_time.insert(key(&span), Arc::clone(&span));
        self.spans += 1;
        self.bytes += span.approx_size() as u64;
    }

    fn evict_oldest(&mut self) -> bool {
        let Some(trace_id) = self.order.pop_front() else {
            return false;
        };
        let Some(spans) = self.traces.remove(&trace_id) else {
            return true;
        };
        for span in spans.into_values() {
            let service = span.service_name();
            if let Some(ops) = self.operations.get_mut(service) {
                let op = Operation {
                    name: span.name.clone(),
                    kind: span.kind,
                };
                if let Some(count) = ops.get_mut(&op) {
                    *count -= 1;
                    if *count == 0 {
                        ops.remove(&op);
                    }
                }
                if ops.is_empty() {
                    self.operations.remove(service);
                }
            }
            if let Some(index) = self.by_service.get_mut(service) {
                index.remove(&key(&span));
                if index.is_empty() {
                    self.by_service.remove(service);
                }
            }
            self.by_time.remove(&key(&span));
            self.spans -= 1;
            self.bytes = self.bytes.saturating_sub(span.approx_size() as u64);
        }
        true
    }

    fn trace(&self, trace_id: TraceId) -> Option<Trace> {
        let spans = self.traces.get(&trace_id)?;
        Some(Trace::new(trace_id, spans.values().cloned().collect()))
    }

    /// Spans starting in `[min, max]`, newest first.
    fn range<'a>(
        index: &'a BTreeMap<TimeKey, Arc<Span>>,
        min: u64,
        max: u64,
    ) -> impl Iterator<Item = &'a Arc<Span>> + 'a {
        let (lo, hi) = (
            (min, TraceId::MIN, SpanId::MIN),
            (max, TraceId::MAX, SpanId::MAX),
        );
        let iter = if lo <= hi {
            Some(index.range(lo..=hi).rev().map(|(_, s)| s))
        } else {
            None
        };
        iter.into_iter().flatten()
    }
}

impl SpanStore for MemoryStore {
    fn write_batch(&self, batch: SpanBatch) -> Result<(), StoreError> {
        let mut inner = self.inner.write();
        for span in batch.spans {
            inner.insert(span);
        }
        while inner.spans > self.max_spans as u64 && inner.evict_oldest() {}
        Ok(())
    }

    fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        Ok(self.inner.read().trace(trace_id))
    }

    fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.inner.read().operations.keys().cloned().collect())
    }

    fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let inner = self.inner.read();
        Ok(inner
            .operations
            .get(service)
            .map(|ops| {
                ops.keys()
                    .filter(|op| kind.is_none_or(|k| op.kind == k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        let inner = self.inner.read();
        let index = match &query.service {
            Some(service) => match inner.by_service.get(service) {
                Some(index) => index,
                None => return Ok(Vec::new()),
            },
            None => &inner.by_time,
        };
        let mut found: Vec<TraceId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for span in Inner::range(index, query.start_min_ns, query.start_max_ns) {
            if found.len() >= query.limit {
                break;
            }
            if !seen.contains(&span.trace_id) && query.matches_span(span) {
                seen.insert(span.trace_id);
                found.push(span.trace_id);
            }
        }
        Ok(found.into_iter().filter_map(|id| inner.trace(id)).collect())
    }

    fn dependencies(&self, start_ns: u64, end_ns: u64) -> Result<Vec<DependencyLink>, StoreError> {
        let inner = self.inner.read();
        let mut trace_ids = BTreeSet::new();
        for span in Inner::range(&inner.by_time, start_ns, end_ns) {
            trace_ids.insert(span.trace_id);
        }
        let mut counts = BTreeMap::new();
        for id in trace_ids {
            if let Some(trace) = inner.trace(id) {
                count_dependencies(&trace.spans, &mut counts);
            }
        }
        Ok(links_from_counts(counts))
    }

    fn stats(&self) -> StoreStats {
        let inner = self.inner.read();
        StoreStats {
            spans: inner.spans,
            traces: inner.traces.len() as u64,
            bytes: inner.bytes,
            wal_commits: 0,
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
