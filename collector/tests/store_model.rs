//! Property test: the memory store's indexes (search, services, operations, dependencies,
//! eviction) give the same answers as a naive model that scans everything.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use tracelight_collector::model::{
    AttrValue, KeyValue, Resource, Scope, Span, SpanBatch, SpanId, SpanKind, Status, StatusCode,
    Trace, TraceId, count_dependencies, links_from_counts,
};
use tracelight_collector::store::{MemoryStore, Operation, SpanStore, TraceQuery};

const SERVICES: [&str; 3] = ["a", "b", "c"];
const OPERATIONS: [&str; 2] = ["x", "y"];

fn trace_id(n: u8) -> TraceId {
    TraceId::from_bytes([n; 16]).unwrap()
}

fn span_id(n: u8) -> SpanId {
    SpanId::from_bytes([n; 8]).unwrap()
}

#[derive(Debug, Clone)]
struct SpanSpec {
    trace: u8,
    span: u8,
    parent: Option<u8>,
    service: usize,
    operation: usize,
    server: bool,
    start: u64,
    duration: u64,
    tag: Option<u8>,
    error: bool,
}

impl SpanSpec {
    fn build(&self) -> Span {
        Span {
            trace_id: trace_id(self.trace),
            span_id: span_id(self.span),
            parent_span_id: self.parent.map(span_id),
            trace_state: String::new(),
            flags: 0,
            name: OPERATIONS[self.operation].to_owned(),
            kind: if self.server {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            start_ns: self.start,
            end_ns: self.start + self.duration,
            attributes: self
                .tag
                .map(|t| KeyValue {
                    key: "k".to_owned(),
                    value: AttrValue::Int(i64::from(t)),
                })
                .into_iter()
                .collect(),
            events: Vec::new(),
            links: Vec::new(),
            status: Status {
                code: if self.error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                message: String::new(),
            },
            resource: Arc::new(Resource {
                service_name: SERVICES[self.service].to_owned(),
                attributes: vec![KeyValue {
                    key: "service.name".to_owned(),
                    value: AttrValue::String(SERVICES[self.service].to_owned()),
                }],
            }),
            scope: Arc::new(Scope::default()),
        }
    }
}

fn span_spec() -> impl Strategy<Value = SpanSpec> {
    (
        1u8..=6,
        1u8..=8,
        proptest::option::of(1u8..=8),
        0..SERVICES.len(),
        0..OPERATIONS.len(),
        any::<bool>(),
        0u64..50,
        0u64..20,
        proptest::option::of(1u8..=2),
        any::<bool>(),
    )
        .prop_map(
            |(trace, span, parent, service, operation, server, start, duration, tag, error)| {
                SpanSpec {
                    trace,
                    span,
                    parent: parent.filter(|p| *p != span),
                    service,
                    operation,
                    server,
                    start,
                    duration,
                    tag,
                    error,
                }
            },
        )
}

fn query() -> impl Strategy<Value = TraceQuery> {
    (
        proptest::option::of(0..SERVICES.len()),
        proptest::option::of(0..OPERATIONS.len()),
        prop_oneof![
            Just(Vec::new()),
            Just(vec![("k".to_owned(), "1".to_owned())]),
            Just(vec![("error".to_owned(), "true".to_owned())]),
            Just(vec![("service.name".to_owned(), "b".to_owned())]),
        ],
        0u64..50,
        0u64..60,
        proptest::option::of(0u64..20),
        proptest::option::of(0u64..20),
        1usize..6,
    )
        .prop_map(
            |(service, operation, tags, lo, span, dmin, dmax, limit)| TraceQuery {
                service: service.map(|s| SERVICES[s].to_owned()),
                operation: operation.map(|o| OPERATIONS[o].to_owned()),
                tags,
                start_min_ns: lo,
                start_max_ns: lo + span,
                duration_min_ns: dmin,
                duration_max_ns: dmax,
                limit,
            },
        )
}

/// Traces in first-seen order; whole traces evicted from the front past `max` spans.
struct Model {
    max: usize,
    traces: Vec<(TraceId, Vec<Arc<Span>>)>,
}

impl Model {
    fn write(&mut self, batch: &[Span]) {
        for span in batch {
            let index = match self.traces.iter().position(|(id, _)| *id == span.trace_id) {
                Some(i) => i,
                None => {
                    self.traces.push((span.trace_id, Vec::new()));
                    self.traces.len() - 1
                }
            };
            let spans = &mut self.traces[index].1;
            if !spans.iter().any(|s| s.span_id == span.span_id) {
                spans.push(Arc::new(span.clone()));
            }
        }
        while self.traces.iter().map(|(_, s)| s.len()).sum::<usize>() > self.max {
            self.traces.remove(0);
        }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Span>> {
        self.traces.iter().flat_map(|(_, s)| s)
    }

    fn find(&self, q: &TraceQuery) -> Vec<Trace> {
        let mut best: BTreeMap<TraceId, u64> = BTreeMap::new();
        for span in self.all().filter(|s| q.matches_span(s)) {
            let e = best.entry(span.trace_id).or_insert(span.start_ns);
            *e = (*e).max(span.start_ns);
        }
        let mut ranked: Vec<(u64, TraceId)> = best.into_iter().map(|(id, t)| (t, id)).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        ranked
            .into_iter()
            .take(q.limit)
            .map(|(_, id)| self.trace(id))
            .collect()
    }

    fn trace(&self, id: TraceId) -> Trace {
        let spans = self
            .traces
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        Trace::new(id, spans)
    }
}

fn shape(traces: &[Trace]) -> Vec<(TraceId, Vec<SpanId>)> {
    traces
        .iter()
        .map(|t| (t.trace_id, t.spans.iter().map(|s| s.span_id).collect()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_store_matches_naive_model(
        max in 3usize..20,
        batches in proptest::collection::vec(proptest::collection::vec(span_spec(), 1..6), 1..10),
        queries in proptest::collection::vec(query(), 1..8),
    ) {
        let store = MemoryStore::new(max);
        let mut model = Model { max, traces: Vec::new() };
        for batch in &batches {
            let spans: Vec<Span> = batch.iter().map(SpanSpec::build).collect();
            model.write(&spans);
            store.write_batch(SpanBatch { spans }).unwrap();
        }

        prop_assert_eq!(store.stats().spans as usize, model.all().count());
        prop_assert_eq!(store.stats().traces as usize, model.traces.len());

        let services: BTreeSet<String> = model.all().map(|s| s.service_name().to_owned()).collect();
        prop_assert_eq!(store.services().unwrap(), services.into_iter().collect::<Vec<_>>());

        for service in SERVICES {
            for kind in [None, Some(SpanKind::Server), Some(SpanKind::Client)] {
                let expected: BTreeSet<Operation> = model
                    .all()
                    .filter(|s| s.service_name() == service && kind.is_none_or(|k| s.kind == k))
                    .map(|s| Operation { name: s.name.clone(), kind: s.kind })
                    .collect();
                prop_assert_eq!(
                    store.operations(service, kind).unwrap(),
                    expected.into_iter().collect::<Vec<_>>()
                );
            }
        }

        for id in 1..=6 {
            let stored = store.get_trace(trace_id(id)).unwrap();
            let expected = model.trace(trace_id(id));
            match stored {
                Some(t) => prop_assert_eq!(shape(&[t]), shape(&[expected])),
                None => prop_assert!(expected.spans.is_empty()),
            }
        }

        for q in &queries {
            let got = store.find_traces(q).unwrap();
            prop_assert_eq!(shape(&got), shape(&model.find(q)), "query {:?}", q);

            let (lo, hi) = (q.start_min_ns, q.start_max_ns);
            let mut counts = BTreeMap::new();
            for (id, spans) in &model.traces {
                if spans.iter().any(|s| (lo..=hi).contains(&s.start_ns)) {
                    count_dependencies(&model.trace(*id).spans, &mut counts);
                }
            }
            prop_assert_eq!(store.dependencies(lo, hi).unwrap(), links_from_counts(counts));
        }
    }
}
