//! The embedded store against the memory store as a model (proptest), across a clean reopen
//! and a crash. Recovery, torn tails, corruption and retention: `store_recovery.rs`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

#[path = "support/store.rs"]
mod store_support;

use proptest::prelude::*;
use store_support::*;
use tracelight_collector::model::{Span, SpanBatch, SpanKind, Trace, TraceId};
use tracelight_collector::store::{EmbeddedStore, MemoryStore, SpanStore, TraceQuery};

#[derive(Debug, Clone)]
struct QuerySpec {
    service: Option<usize>,
    operation: Option<usize>,
    tags: Vec<usize>,
    start: (u64, u64),
    duration: (Option<u64>, Option<u64>),
    limit: usize,
}

const TAGS: [(&str, &str); 11] = [
    ("http.status_code", "500"),
    ("user", "u1"),
    ("env", "prod"),
    ("error", "true"),
    ("span.kind", "server"),
    ("attempt", "2"),
    ("url", "https://example.com/items/1"),
    ("cached", "true"),
    ("ratio", "0.5"),
    // Not how the integer prints: matches nothing.
    ("http.status_code", "0500"),
    ("user", "nobody"),
];

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    (
        proptest::option::of(0..SERVICES.len() + 1),
        proptest::option::of(0..OPERATIONS.len()),
        proptest::collection::vec(0..TAGS.len(), 0..3),
        (0u64..50, 0u64..60),
        (
            proptest::option::of(0u64..20),
            proptest::option::of(0u64..20),
        ),
        0usize..8,
    )
        .prop_map(
            |(service, operation, tags, start, duration, limit)| QuerySpec {
                service,
                operation,
                tags,
                start,
                duration,
                limit,
            },
        )
}

impl QuerySpec {
    fn query(&self, base: u64) -> TraceQuery {
        TraceQuery {
            service: self
                .service
                .map(|s| SERVICES.get(s).copied().unwrap_or("nope").to_owned()),
            operation: self.operation.map(|o| OPERATIONS[o].to_owned()),
            tags: self
                .tags
                .iter()
                .map(|t| (TAGS[*t].0.to_owned(), TAGS[*t].1.to_owned()))
                .collect(),
            start_min_ns: base + self.start.0 * 1000,
            start_max_ns: base + self.start.1 * 1000,
            duration_min_ns: self.duration.0.map(|d| d * 100),
            duration_max_ns: self.duration.1.map(|d| d * 100),
            limit: self.limit,
        }
    }
}

fn flat(traces: Vec<Trace>) -> Vec<(TraceId, Vec<Span>)> {
    traces
        .into_iter()
        .map(|t| (t.trace_id, t.spans.iter().map(|s| (**s).clone()).collect()))
        .collect()
}

/// Every read of the store equals the model's.
fn assert_same(store: &dyn SpanStore, model: &MemoryStore, base: u64, queries: &[QuerySpec]) {
    assert_eq!(store.services().unwrap(), model.services().unwrap());
    for svc in SERVICES.iter().chain(&["nope"]) {
        for kind in [None, Some(SpanKind::Server), Some(SpanKind::Client)] {
            assert_eq!(
                store.operations(svc, kind).unwrap(),
                model.operations(svc, kind).unwrap()
            );
        }
    }
    for t in 0..7 {
        let got = store.get_trace(trace_id(t)).unwrap();
        let want = model.get_trace(trace_id(t)).unwrap();
        assert_eq!(got.map(|t| flat(vec![t])), want.map(|t| flat(vec![t])));
    }
    for q in queries {
        let query = q.query(base);
        assert_eq!(
            flat(store.find_traces(&query).unwrap()),
            flat(model.find_traces(&query).unwrap()),
            "{query:?}"
        );
        let (lo, hi) = (query.start_min_ns, query.start_max_ns);
        assert_eq!(
            store.dependencies(lo, hi).unwrap(),
            model.dependencies(lo, hi).unwrap()
        );
    }
    assert_eq!(store.stats().spans, model.stats().spans);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn embedded_store_matches_memory_model(
        specs in proptest::collection::vec(spec(), 1..120),
        cuts in proptest::collection::vec(1usize..40, 1..8),
        flush_after in proptest::collection::vec(any::<bool>(), 8),
        queries in proptest::collection::vec(query_spec(), 1..12),
    ) {
        let dir = temp_dir();
        let base = now_ns() - HOUR_NS;
        let spans = build(&specs, base, &resources());
        let model = MemoryStore::new(1 << 20);
        {
            let store = EmbeddedStore::open(config(dir.path())).unwrap();
            let mut rest = &spans[..];
            for (i, cut) in cuts.iter().cycle().enumerate() {
                if rest.is_empty() {
                    break;
                }
                let (batch, tail) = rest.split_at((*cut).min(rest.len()));
                rest = tail;
                for s in [&store as &dyn SpanStore, &model] {
                    s.write_batch(SpanBatch { spans: batch.to_vec() }).unwrap();
                }
                if flush_after[i % flush_after.len()] {
                    store.flush().unwrap();
                }
            }
            assert_same(&store, &model, base, &queries);
        }
        // Reopen after a clean close, and after a crash.
        let store = EmbeddedStore::open(config(dir.path())).unwrap();
        assert_same(&store, &model, base, &queries);
        store.simulate_crash(false).unwrap();
        let store = EmbeddedStore::open(config(dir.path())).unwrap();
        assert_same(&store, &model, base, &queries);
        prop_assert_eq!(store.corrupt_records(), 0);
    }
}
