//! Span storage: the [`SpanStore`] contract and its implementations.
//!
//! The trait is synchronous on purpose: an on-disk engine does blocking I/O, so callers run it
//! on a blocking thread (the pipeline worker is one; the query API uses
//! [`tokio::task::spawn_blocking`]). [`SpanStore::write_batch`] returning `Ok` is the
//! durability point: the receivers acknowledge a request only after it, so a durable store must
//! have written (and fsynced, possibly as a group commit) the batch before returning.

mod embedded;
mod memory;
mod null;

use std::fmt;

pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use memory::MemoryStore;
pub use null::NullStore;

use crate::group::Incoming;
use crate::model::{BatchView, DependencyLink, SpanBatch, SpanKind, Trace, TraceId};

/// Default number of traces a search returns.
pub const DEFAULT_SEARCH_LIMIT: usize = 100;

/// Most traces one search may ask for (Jaeger UI's default `search.maxLimit`), and most trace
/// ids one v1 fetch may name. The query API answers more with a 400: a search decodes every
/// trace it returns, so an unbounded limit would let one request hold a whole store's spans in
/// memory.
pub const MAX_SEARCH_LIMIT: usize = 1500;

/// A failure of the storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was closed (shutdown in progress).
    #[error("store is closed")]
    Closed,
    /// The store's write queue is full ([`SpanStore::submit_prepared`] does not wait for
    /// room): the caller should ask the client to retry later.
    #[error("the store's write queue is full")]
    Busy,
    /// An I/O error of an on-disk engine.
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The data directory is used by another store (another collector process, or another
    /// store of this process).
    #[error(
        "the data directory {} (storage.data_dir) is in use by {owner}: stop that collector or \
         give this one another storage.data_dir",
        dir.display()
    )]
    Locked {
        /// The directory.
        dir: std::path::PathBuf,
        /// Who holds it (`pid N`, or this process).
        owner: String,
    },
}

/// An operation name with the span kind it was seen with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    /// Operation (span) name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
}

/// Trace search criteria. A trace matches when **one** of its spans meets all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    /// Service name; `None` searches every service.
    pub service: Option<String>,
    /// Operation (span) name.
    pub operation: Option<String>,
    /// Tags that must all match (span, resource or event attributes, or derived tags).
    pub tags: Vec<(String, String)>,
    /// Earliest span start, ns (inclusive).
    pub start_min_ns: u64,
    /// Latest span start, ns (inclusive).
    pub start_max_ns: u64,
    /// Minimum span duration, ns (inclusive).
    pub duration_min_ns: Option<u64>,
    /// Maximum span duration, ns (inclusive).
    pub duration_max_ns: Option<u64>,
    /// Maximum number of traces returned.
    pub limit: usize,
}

impl Default for TraceQuery {
    fn default() -> Self {
        Self {
            service: None,
            operation: None,
            tags: Vec::new(),
            start_min_ns: 0,
            start_max_ns: u64::MAX,
            duration_min_ns: None,
            duration_max_ns: None,
            limit: DEFAULT_SEARCH_LIMIT,
        }
    }
}

impl TraceQuery {
    /// Whether one span meets every criterion.
    pub fn matches_span(&self, span: &crate::model::Span) -> bool {
        self.service
            .as_deref()
            .is_none_or(|s| span.service_name() == s)
            && self.operation.as_deref().is_none_or(|o| span.name == o)
            && (self.start_min_ns..=self.start_max_ns).contains(&span.start_ns)
            && self.duration_min_ns.is_none_or(|d| span.duration_ns() >= d)
            && self.duration_max_ns.is_none_or(|d| span.duration_ns() <= d)
            && self.tags.iter().all(|(k, v)| span.matches_tag(k, v))
    }
}

/// Size figures for the admin metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Spans held.
    pub spans: u64,
    /// Traces held.
    pub traces: u64,
    /// Approximate bytes held (memory for the memory store, disk for a durable one).
    pub bytes: u64,
    /// Group commits of the write-ahead log since the store opened (0 for the memory store).
    /// The batches written divided by this is how many batches one durable write covered.
    pub wal_commits: u64,
}

/// A batch whose write work (encoding, summaries) was done ahead on the caller's thread by
/// [`SpanStore::prepare`]; written with [`SpanStore::write_prepared`] by the same store.
#[derive(Debug)]
pub struct Prepared(PreparedInner);

#[derive(Debug)]
enum PreparedInner {
    Embedded(embedded::PreparedChunk),
    Nothing,
}

impl Prepared {
    /// A batch the store keeps nothing of (the null store).
    pub(crate) fn nothing() -> Self {
        Self(PreparedInner::Nothing)
    }
}

/// Called once with the outcome of a write started by [`SpanStore::submit_prepared`] (what
/// [`SpanStore::write_prepared`] would have returned), on a store thread or the caller's.
pub type WriteDone = crate::completion::Done<StoreError>;

/// A span store. See the module docs for the threading and durability contract.
///
/// Search results are ordered newest first: by the start time of the newest matching span,
/// ties broken by higher trace id.
pub trait SpanStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a batch; once this returns `Ok` the spans may be acknowledged to the sender.
    fn write_batch(&self, batch: SpanBatch) -> Result<(), StoreError>;
    /// Does the CPU work of writing `batch` on the calling thread (the receiver's, where the
    /// spans were just built and are still in cache), so that the batch can be freed there;
    /// `None` (the default) when the store keeps the spans themselves (use
    /// [`write_batch`](Self::write_batch)).
    fn prepare(&self, batch: &BatchView<'_>) -> Option<Prepared> {
        let _ = batch;
        None
    }
    /// Stores a batch prepared by this store's [`prepare`](Self::prepare); same contract as
    /// [`write_batch`](Self::write_batch).
    fn write_prepared(&self, prepared: Prepared) -> Result<(), StoreError> {
        match prepared.0 {
            PreparedInner::Nothing => Ok(()),
            PreparedInner::Embedded(_) => Err(StoreError::Io(std::io::Error::other(
                "a batch prepared by the embedded store was written to another store",
            ))),
        }
    }
    /// Starts storing a batch prepared by [`prepare`](Self::prepare) without blocking the
    /// caller, which may be an async task: `done` gets the outcome once the batch is durable
    /// (or failed). When the store cannot take the batch now (its write queue is full:
    /// [`StoreError::Busy`], or it is closed), this returns the error and drops `done`
    /// uncalled. The default writes here, so it suits only stores whose
    /// [`write_prepared`](Self::write_prepared) does not block.
    fn submit_prepared(&self, prepared: Prepared, done: WriteDone) -> Result<(), StoreError> {
        done.call(self.write_prepared(prepared));
        Ok(())
    }
    /// Announces a batch that the caller is about to [`prepare`](Self::prepare) and
    /// [`submit_prepared`](Self::submit_prepared); the caller drops the [`Incoming`] before
    /// submitting (see [`crate::group`]). The default announces nothing.
    fn incoming(&self) -> Incoming {
        Incoming::default()
    }
    /// All spans of one trace, or `None`.
    fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError>;
    /// Service names, sorted.
    fn services(&self) -> Result<Vec<String>, StoreError>;
    /// Operations of a service, sorted by (name, kind); `kind` filters when given.
    fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError>;
    /// Traces matching `query`, newest first, at most `query.limit`.
    fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError>;
    /// Cross-service call counts of traces having a span that starts in `[start_ns, end_ns]`.
    fn dependencies(&self, start_ns: u64, end_ns: u64) -> Result<Vec<DependencyLink>, StoreError>;
    /// Current size figures.
    fn stats(&self) -> StoreStats;
    /// Makes every written batch durable (no-op for memory); called once at shutdown.
    fn flush(&self) -> Result<(), StoreError>;
}
