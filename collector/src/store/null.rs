//! The store of agent mode (`--storage none`): keeps nothing. Spans are only forwarded; the
//! query API answers as for an empty store (no services, no traces, `404` for a trace id).

use crate::model::{BatchView, DependencyLink, SpanBatch, SpanKind, Trace, TraceId};
use crate::store::{Operation, SpanStore, StoreError, StoreStats, TraceQuery};

/// A store that discards every batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

impl SpanStore for NullStore {
    fn write_batch(&self, _batch: SpanBatch) -> Result<(), StoreError> {
        Ok(())
    }

    fn prepare(&self, _batch: &BatchView<'_>) -> Option<super::Prepared> {
        Some(super::Prepared::nothing())
    }

    fn get_trace(&self, _trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        Ok(None)
    }

    fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    fn operations(
        &self,
        _service: &str,
        _kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        Ok(Vec::new())
    }

    fn find_traces(&self, _query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        Ok(Vec::new())
    }

    fn dependencies(
        &self,
        _start_ns: u64,
        _end_ns: u64,
    ) -> Result<Vec<DependencyLink>, StoreError> {
        Ok(Vec::new())
    }

    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
