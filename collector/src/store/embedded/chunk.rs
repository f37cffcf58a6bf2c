//! Memtable chunks: one acknowledged batch kept in its WAL encoding until it is sealed.
//!
//! `write_batch` encodes a batch once (the WAL record's bytes) and summarises it while the spans
//! are still hot in the caller's cache; the spans are then freed on that thread. The memtable
//! holds these chunks, queries decode them on demand, and the sealer builds a block by
//! concatenating chunks and merging their summaries: no span is walked, allocated or freed a
//! second time on the store's threads.

use std::cell::RefCell;
use std::sync::Arc;

use super::codec::FxMap;
use super::tags::{tag_hash, tag_hashes};
use crate::intern::Names;
use crate::model::{BatchView, Span, SpanKind, TraceId};
use crate::store::TraceQuery;

/// Distinct operations (service, span name, kind) a chunk's summary makes room for at first:
/// the load generator's 100-span requests have ~10.
const OPS_CAPACITY: usize = 32;
/// Service and operation names each receiving thread shares between its chunks' summaries
/// ([`Names`]), and the longest name shared: ~100 KiB per thread at most. Requests of 1 MiB
/// or more are summarised on blocking threads, as many as the decode budget admits at once
/// (32 by default), so the bound stays small.
const MAX_NAMES: usize = 1024;
const MAX_NAME_LEN: usize = 64;

thread_local! {
    /// The names of this thread's summaries: a batch's operations are mostly the previous
    /// batch's, so a summary costs no allocation for their names.
    static NAMES: RefCell<Names> = RefCell::new(Names::new(MAX_NAMES, MAX_NAME_LEN));
}

/// `(service, operation, kind) → span count`.
pub(crate) type OpCount = (Arc<str>, Arc<str>, SpanKind, u64);

/// What queries and block summaries need to know about a chunk without decoding it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) spans: u32,
    /// Distinct trace ids, sorted.
    pub(crate) traces: Vec<TraceId>,
    pub(crate) min_start: u64,
    pub(crate) max_start: u64,
    pub(crate) max_end: u64,
    pub(crate) min_duration: u64,
    pub(crate) max_duration: u64,
    /// `(service, operation, kind) → span count`, sorted.
    pub(crate) ops: Vec<OpCount>,
    /// Searchable tag hashes ([`tag_hashes`]), sorted and deduplicated.
    pub(crate) tags: Vec<u64>,
}

impl Summary {
    /// Summarises `spans`.
    pub(crate) fn of(spans: &[Span]) -> Self {
        Self::of_batch(&BatchView::from_spans(spans))
    }

    /// Summarises the spans of `batch`.
    pub(crate) fn of_batch(batch: &BatchView<'_>) -> Self {
        let mut traces: Vec<TraceId> = batch.spans().map(|s| s.trace_id).collect();
        traces.sort_unstable();
        traces.dedup();
        Self::of_batch_with_traces(batch, traces)
    }

    /// [`of_batch`](Self::of_batch) given the batch's distinct trace ids in ascending order
    /// (as [`encode_batch_traces`](super::codec::encode_batch_traces) returns them).
    pub(crate) fn of_batch_with_traces(batch: &BatchView<'_>, traces: Vec<TraceId>) -> Self {
        debug_assert!(
            traces.is_sorted_by(|a, b| a < b),
            "sorted, distinct trace ids"
        );
        // Sized for a batch's usual operations, so that counting them does not rehash.
        let mut ops: FxMap<(&str, &str, SpanKind), u64> =
            FxMap::with_capacity_and_hasher(OPS_CAPACITY, Default::default());
        let (mut min_start, mut max_start, mut max_end) = (u64::MAX, 0, 0);
        let (mut min_duration, mut max_duration) = (u64::MAX, 0);
        for s in batch.spans() {
            *ops.entry((s.service_name(), s.name, s.kind)).or_default() += 1;
            min_start = min_start.min(s.start_ns);
            max_start = max_start.max(s.start_ns);
            max_end = max_end.max(s.end_ns);
            min_duration = min_duration.min(s.duration_ns());
            max_duration = max_duration.max(s.duration_ns());
        }
        let mut ops: Vec<OpCount> = NAMES.with_borrow_mut(|names| {
            ops.into_iter()
                .map(|((svc, name, kind), n)| (names.get(svc), names.get(name), kind, n))
                .collect()
        });
        ops.sort();
        Self {
            spans: u32::try_from(batch.len()).unwrap_or(u32::MAX),
            traces,
            min_start,
            max_start,
            max_end,
            min_duration,
            max_duration,
            ops,
            tags: tag_hashes(batch),
        }
    }

    /// Merges several summaries (a block's chunks) into one.
    pub(crate) fn merge<'a>(parts: impl IntoIterator<Item = &'a Summary>) -> Self {
        let mut out = Self {
            min_start: u64::MAX,
            min_duration: u64::MAX,
            ..Self::default()
        };
        let mut ops: FxMap<(&Arc<str>, &Arc<str>, SpanKind), u64> = FxMap::default();
        for p in parts {
            out.spans = out.spans.saturating_add(p.spans);
            out.traces.extend_from_slice(&p.traces);
            out.tags.extend_from_slice(&p.tags);
            out.min_start = out.min_start.min(p.min_start);
            out.max_start = out.max_start.max(p.max_start);
            out.max_end = out.max_end.max(p.max_end);
            out.min_duration = out.min_duration.min(p.min_duration);
            out.max_duration = out.max_duration.max(p.max_duration);
            for (svc, name, kind, n) in &p.ops {
                *ops.entry((svc, name, *kind)).or_default() += n;
            }
        }
        out.traces.sort_unstable();
        out.traces.dedup();
        out.tags.sort_unstable();
        out.tags.dedup();
        out.ops = ops
            .into_iter()
            .map(|((svc, name, kind), n)| (Arc::clone(svc), Arc::clone(name), kind, n))
            .collect();
        out.ops.sort();
        out
    }

    /// Whether some span of the chunk may match `q` (exact on trace-level criteria of the
    /// summary: time and duration ranges, service/operation, tags).
    pub(crate) fn may_match(&self, q: &TraceQuery) -> bool {
        let dur_min = q.duration_min_ns.unwrap_or(0);
        let dur_max = q.duration_max_ns.unwrap_or(u64::MAX);
        self.spans > 0
            && self.min_start <= q.start_max_ns
            && self.max_start >= q.start_min_ns
            && self.min_duration <= dur_max
            && self.max_duration >= dur_min
            && (q.service.is_none() && q.operation.is_none()
                || self.ops.iter().any(|(svc, name, _, _)| {
                    q.service.as_deref().is_none_or(|s| s == &**svc)
                        && q.operation.as_deref().is_none_or(|o| o == &**name)
                }))
            && q.tags
                .iter()
                .all(|(k, v)| self.tags.binary_search(&tag_hash(k, v)).is_ok())
    }

    /// Whether the chunk holds spans of trace `id`.
    pub(crate) fn has_trace(&self, id: TraceId) -> bool {
        self.traces.binary_search(&id).is_ok()
    }
}

/// One acknowledged batch: its encoding (the WAL record's data) and its summary.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) data: Vec<u8>,
    pub(crate) sum: Summary,
}
