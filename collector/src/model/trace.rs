//! Trace assembly: the spans of one trace in a stable order, and service dependencies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::ids::{SpanId, TraceId};
use super::span::Span;

/// All stored spans of one trace, sorted by start time then span id, without duplicates.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The trace id.
    pub trace_id: TraceId,
    /// The spans.
    pub spans: Vec<Arc<Span>>,
}

impl Trace {
    /// Assembles a trace: sorts by (start, span id) and drops repeated span ids.
    pub fn new(trace_id: TraceId, mut spans: Vec<Arc<Span>>) -> Self {
        spans.sort_by_key(|s| (s.start_ns, s.span_id));
        let mut seen = HashSet::with_capacity(spans.len());
        spans.retain(|s| seen.insert(s.span_id));
        Self { trace_id, spans }
    }

    /// Earliest span start, ns.
    pub fn start_ns(&self) -> u64 {
        self.spans.iter().map(|s| s.start_ns).min().unwrap_or(0)
    }

    /// Latest span end, ns.
    pub fn end_ns(&self) -> u64 {
        self.spans.iter().map(|s| s.end_ns).max().unwrap_or(0)
    }

    /// The root span: the first span without a parent, else the first span whose parent is
    /// missing from the trace.
    pub fn root(&self) -> Option<&Arc<Span>> {
        self.spans
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .or_else(|| {
                let ids = self.span_ids();
                self.spans
                    .iter()
                    .find(|s| s.parent_span_id.is_some_and(|p| !ids.contains(&p)))
            })
    }

    /// Spans whose parent is set but not part of the trace.
    pub fn orphan_count(&self) -> usize {
        let ids = self.span_ids();
        self.spans
            .iter()
            .filter(|s| s.parent_span_id.is_some_and(|p| !ids.contains(&p)))
            .count()
    }

    fn span_ids(&self) -> HashSet<SpanId> {
        self.spans.iter().map(|s| s.span_id).collect()
    }
}

/// Calls from one service to another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DependencyLink {
    /// Calling service.
    pub parent: String,
    /// Called service.
    pub child: String,
    /// Number of parent→child span pairs.
    pub call_count: u64,
}

/// Adds the cross-service parent→child pairs of `spans` (one trace) to `counts`.
pub fn count_dependencies(spans: &[Arc<Span>], counts: &mut BTreeMap<(String, String), u64>) {
    let by_id: HashMap<SpanId, &Span> = spans.iter().map(|s| (s.span_id, s.as_ref())).collect();
    for child in spans {
        let Some(parent) = child.parent_span_id.and_then(|p| by_id.get(&p)) else {
            continue;
        };
        if parent.service_name() != child.service_name() {
            *counts
                .entry((
                    parent.service_name().to_owned(),
                    child.service_name().to_owned(),
                ))
                .or_default() += 1;
        }
    }
}

/// Turns pair counts into links, sorted by (parent, child).
pub fn links_from_counts(counts: BTreeMap<(String, String), u64>) -> Vec<DependencyLink> {
    counts
        .into_iter()
        .map(|((parent, child), call_count)| DependencyLink {
            parent,
            child,
            call_count,
        })
        .collect()
}
