//! Reads: trace by id, search and dependencies over the memtable and the sealed blocks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::Shared;
use super::block::{parts, trace_hash};
use super::chunk::Chunk;
use super::codec::{DecodeError, Decoded};
use super::state::Block;
use super::tags::TagHash;
use crate::model::{DependencyLink, Span, SpanId, Trace, TraceId, links_from_counts};
use crate::store::{StoreError, TraceQuery};

/// Spans per partition when computing dependencies: bounds the memory of one pass.
const DEPENDENCY_PASS_SPANS: u64 = 1_000_000;

/// Calls `f` with each group of a block's spans (`only`: just that trace; `filter`: just the
/// groups passing the cheap criteria). Corrupt blocks are reported and yield nothing.
fn for_each_group(
    shared: &Shared,
    block: &Block,
    only: Option<TraceId>,
    filter: Option<&TraceQuery>,
    mut f: impl FnMut(TraceId, Vec<Span>),
) -> Result<(), StoreError> {
    let Some(raw) = shared.reader.raw(block)? else {
        return Ok(());
    };
    for part in parts(&raw, block.meta.parts) {
        let scanned = part.and_then(|p| scan_encoding(p, only, filter, &mut f));
        if let Err(e) = scanned {
            shared.reader.report_decode_error(block, e.0);
            return Ok(());
        }
    }
    Ok(())
}

/// Calls `f` with each group of a memtable chunk (see [`for_each_group`]).
fn for_each_chunk_group(
    chunk: &Chunk,
    only: Option<TraceId>,
    filter: Option<&TraceQuery>,
    mut f: impl FnMut(TraceId, Vec<Span>),
) {
    if let Err(e) = scan_encoding(&chunk.data, only, filter, &mut f) {
        // The chunk was encoded by this process (or decoded once at recovery): unreachable
        // unless memory is corrupt.
        tracing::error!(
            reason = e.0,
            "undecodable recent batch in the span store: skipped"
        );
    }
}

/// The groups of one encoding (see [`for_each_group`]).
fn scan_encoding(
    encoded: &[u8],
    only: Option<TraceId>,
    filter: Option<&TraceQuery>,
    f: &mut impl FnMut(TraceId, Vec<Span>),
) -> Result<(), DecodeError> {
    let mut decoded = Decoded::new(encoded)?;
    let prefilter = match filter {
        Some(q) => match decoded.prefilter(
            q.service.as_deref(),
            q.operation.as_deref(),
            (q.start_min_ns, q.start_max_ns),
            (
                q.duration_min_ns.unwrap_or(0),
                q.duration_max_ns.unwrap_or(u64::MAX),
            ),
            &q.tags,
        ) {
            Some(p) => Some(p),
            None => return Ok(()),
        },
        None => None,
    };
    while let Some(group) = decoded.next_group()? {
        if let Some(id) = only {
            if group.trace_id < id {
                continue;
            }
            if group.trace_id > id {
                return Ok(()); // groups are sorted by trace id
            }
        }
        if let Some(p) = &prefilter
            && !decoded.group_may_match(&group, p)?
        {
            continue;
        }
        f(group.trace_id, decoded.decode_group(&group)?);
    }
    Ok(())
}

/// Builds a trace from spans in write order: the first copy of a span id wins.
fn assemble(id: TraceId, spans: Vec<Arc<Span>>) -> Option<Trace> {
    if spans.is_empty() {
        return None;
    }
    let mut seen = HashSet::with_capacity(spans.len());
    let spans = spans
        .into_iter()
        .filter(|s| seen.insert(s.span_id))
        .collect();
    Some(Trace::new(id, spans))
}

pub(crate) fn get_trace(shared: &Shared, id: TraceId) -> Result<Option<Trace>, StoreError> {
    let (blocks, recent) = {
        let st = shared.state.read();
        let blocks: Vec<Arc<Block>> = st
            .blocks
            .iter()
            .filter(|b| b.meta.may_contain_trace(id))
            .cloned()
            .collect();
        let recent: Vec<Arc<Chunk>> = st
            .memtable
            .iter()
            .filter(|c| c.sum.has_trace(id))
            .cloned()
            .collect();
        (blocks, recent)
    };
    let mut spans = Vec::new();
    for block in &blocks {
        for_each_group(shared, block, Some(id), None, |_, group| {
            spans.extend(group.into_iter().map(Arc::new));
        })?;
    }
    for chunk in &recent {
        for_each_chunk_group(chunk, Some(id), None, |_, group| {
            spans.extend(group.into_iter().map(Arc::new));
        });
    }
    Ok(assemble(id, spans))
}

/// The `limit`-th best `(start, trace id)` so far, if there are that many.
fn threshold(found: &HashMap<TraceId, u64>, limit: usize) -> Option<(u64, TraceId)> {
    if found.len() < limit || limit == 0 {
        return None;
    }
    let mut all: Vec<(u64, TraceId)> = found.iter().map(|(t, s)| (*s, *t)).collect();
    let (_, kth, _) = all.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
    Some(*kth)
}

fn note(found: &mut HashMap<TraceId, u64>, span: &Span) {
    let best = found.entry(span.trace_id).or_insert(span.start_ns);
    *best = (*best).max(span.start_ns);
}

pub(crate) fn find_traces(shared: &Shared, q: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
    if q.limit == 0 || q.start_min_ns > q.start_max_ns {
        return Ok(Vec::new());
    }
    let (mut blocks, recent) = {
        let st = shared.state.read();
        let ops: Option<Vec<u32>> = (q.service.is_some() || q.operation.is_some())
            .then(|| st.matching_ops(q.service.as_deref(), q.operation.as_deref()));
        let dur_min = q.duration_min_ns.unwrap_or(0);
        let dur_max = q.duration_max_ns.unwrap_or(u64::MAX);
        let blocks: Vec<Arc<Block>> = st
            .blocks
            .iter()
            .filter(|b| {
                let m = &b.meta;
                m.min_start <= q.start_max_ns
                    && m.max_start >= q.start_min_ns
                    && m.min_duration <= dur_max
                    && m.max_duration >= dur_min
                    && ops
                        .as_ref()
                        .is_none_or(|ids| b.ops.iter().any(|(id, _)| ids.contains(id)))
            })
            .cloned()
            .collect();
        let recent: Vec<Arc<Chunk>> = st
            .memtable
            .iter()
            .filter(|c| c.sum.may_match(q))
            .cloned()
            .collect();
        (blocks, recent)
    };
    // Blocks of formats 1–3 hold filters of `Mix` hashes, format 4 of `Rapid` ones.
    let tag_hashes =
        |hash: TagHash| -> Vec<u64> { q.tags.iter().map(|(k, v)| hash.of(k, v)).collect() };
    let (mix_hashes, rapid_hashes) = (tag_hashes(TagHash::Mix), tag_hashes(TagHash::Rapid));
    let mut found: HashMap<TraceId, u64> = HashMap::new();
    for chunk in &recent {
        for_each_chunk_group(chunk, None, Some(q), |_, spans| {
            for span in &spans {
                if q.matches_span(span) {
                    note(&mut found, span);
                }
            }
        });
    }
    blocks.sort_by_key(|b| std::cmp::Reverse(b.meta.max_start));
    for block in &blocks {
        if let Some((start, _)) = threshold(&found, q.limit)
            && start > block.meta.max_start
        {
            break; // nothing in this or any later block can make the top `limit`
        }
        let hashes = match block.meta.tag_hash {
            TagHash::Mix => &mix_hashes,
            TagHash::Rapid => &rapid_hashes,
        };
        if !shared.reader.may_contain_tags(block, hashes)? {
            continue;
        }
        for_each_group(shared, block, None, Some(q), |_, spans| {
            for span in &spans {
                if q.matches_span(span) {
                    note(&mut found, span);
                }
            }
        })?;
    }
    let mut ranked: Vec<(u64, TraceId)> = found.into_iter().map(|(t, s)| (s, t)).collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.truncate(q.limit);
    let mut out = Vec::with_capacity(ranked.len());
    for (_, id) in ranked {
        if let Some(trace) = get_trace(shared, id)? {
            out.push(trace);
        }
    }
    Ok(out)
}

/// One span reduced to what dependency counting needs.
#[derive(Debug, Clone, Copy)]
struct Edge {
    span: SpanId,
    parent: Option<SpanId>,
    service: u32,
}

#[derive(Debug, Default)]
struct DependencyPass {
    services: Vec<String>,
    service_ids: HashMap<String, u32>,
    traces: HashMap<TraceId, Vec<Edge>>,
    qualifying: HashSet<TraceId>,
}

impl DependencyPass {
    fn add(&mut self, span: &Span) {
        let next = self.services.len() as u32;
        let service = match self.service_ids.get(span.service_name()) {
            Some(id) => *id,
            None => {
                self.services.push(span.service_name().to_owned());
                self.service_ids
                    .insert(span.service_name().to_owned(), next);
                next
            }
        };
        self.traces.entry(span.trace_id).or_default().push(Edge {
            span: span.span_id,
            parent: span.parent_span_id,
            service,
        });
    }

    fn count(&self, counts: &mut BTreeMap<(String, String), u64>) {
        for id in &self.qualifying {
            let Some(edges) = self.traces.get(id) else {
                continue;
            };
            let mut by_id: HashMap<SpanId, u32> = HashMap::with_capacity(edges.len());
            let unique: Vec<&Edge> = edges
                .iter()
                .filter(|e| match by_id.entry(e.span) {
                    std::collections::hash_map::Entry::Occupied(_) => false,
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(e.service);
                        true
                    }
                })
                .collect();
            for child in unique {
                let Some(parent) = child.parent.and_then(|p| by_id.get(&p)) else {
                    continue;
                };
                if *parent != child.service {
                    *counts
                        .entry((
                            self.services[*parent as usize].clone(),
                            self.services[child.service as usize].clone(),
                        ))
                        .or_default() += 1;
                }
            }
        }
    }
}

pub(crate) fn dependencies(
    shared: &Shared,
    start_ns: u64,
    end_ns: u64,
) -> Result<Vec<DependencyLink>, StoreError> {
    if start_ns > end_ns {
        return Ok(Vec::new());
    }
    let (blocks, recent) = {
        let st = shared.state.read();
        (st.blocks.clone(), st.memtable.clone())
    };
    let in_range = |b: &Block| b.meta.min_start <= end_ns && b.meta.max_start >= start_ns;
    let scanned_spans: u64 = blocks
        .iter()
        .filter(|b| in_range(b))
        .map(|b| u64::from(b.meta.spans))
        .sum();
    let passes = scanned_spans.div_ceil(DEPENDENCY_PASS_SPANS).max(1);
    let mut counts = BTreeMap::new();
    for pass in 0..passes {
        let mine = |id: TraceId| trace_hash(id) % passes == pass;
        let mut p = DependencyPass::default();
        let take = |p: &mut DependencyPass, span: &Span| {
            if mine(span.trace_id) {
                p.add(span);
                if (start_ns..=end_ns).contains(&span.start_ns) {
                    p.qualifying.insert(span.trace_id);
                }
            }
        };
        for block in blocks.iter().filter(|b| in_range(b)) {
            for_each_group(shared, block, None, None, |_, spans| {
                for span in &spans {
                    take(&mut p, span);
                }
            })?;
        }
        for chunk in &recent {
            for_each_chunk_group(chunk, None, None, |_, spans| {
                for span in &spans {
                    take(&mut p, span);
                }
            });
        }
        // Spans of qualifying traces that sit in blocks outside the time range.
        for block in blocks.iter().filter(|b| !in_range(b)) {
            if !p
                .qualifying
                .iter()
                .any(|id| block.meta.may_contain_trace(*id))
            {
                continue;
            }
            for_each_group(shared, block, None, None, |id, spans| {
                if p.qualifying.contains(&id) {
                    for span in &spans {
                        p.add(span);
                    }
                }
            })?;
        }
        p.count(&mut counts);
    }
    Ok(links_from_counts(counts))
}
