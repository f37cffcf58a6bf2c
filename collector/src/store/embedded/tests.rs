//! Tests that need the store's internals: blocks in the format earlier versions wrote are
//! still read, next to blocks in the current format.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::block::{Format, build_format};
use super::record::{KIND_BLOCK, frame};
use super::tags::TagHash;
use super::{EmbeddedConfig, EmbeddedStore, PreparedChunk};
use crate::model::{
    AttrValue, Event, KeyValue, Resource, Scope, Span, SpanBatch, SpanId, SpanKind, Status,
    StatusCode, Trace, TraceId,
};
use crate::store::{MemoryStore, SpanStore, TraceQuery};

fn kv(key: &str, value: AttrValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value,
    }
}

/// 40 traces of 3 spans; trace `t` has user `u{t % 7}` and `t % 5 == 0` are errors.
fn batch(first_trace: u64, base: u64) -> Vec<Span> {
    let resource = Arc::new(Resource {
        service_name: "svc".to_owned(),
        attributes: vec![kv("service.name", AttrValue::String("svc".to_owned()))],
    });
    let scope = Arc::new(Scope::default());
    let mut out = Vec::new();
    for t in first_trace..first_trace + 40 {
        for i in 0..3u64 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&(t + 1).to_be_bytes());
            out.push(Span {
                trace_id: TraceId::from_bytes(id).unwrap(),
                span_id: SpanId::from_bytes((t * 8 + i + 1).to_be_bytes()).unwrap(),
                parent_span_id: None,
                trace_state: String::new(),
                flags: 1,
                name: format!("op{i}"),
                kind: SpanKind::Server,
                start_ns: base + t * 1000 + i,
                end_ns: base + t * 1000 + i + 500,
                attributes: vec![
                    kv("user.id", AttrValue::String(format!("u{}", t % 7))),
                    kv(
                        "url.full",
                        AttrValue::String(format!("https://example.com/orders/{t}")),
                    ),
                    kv("status", AttrValue::Int(if t % 5 == 0 { 500 } else { 200 })),
                ],
                events: vec![Event {
                    time_ns: base + t * 1000 + i + 1,
                    name: "ev".to_owned(),
                    attributes: vec![kv("attempt", AttrValue::Int((i + 1) as i64))],
                }],
                links: vec![],
                status: Status {
                    code: if t % 5 == 0 {
                        StatusCode::Error
                    } else {
                        StatusCode::Unset
                    },
                    message: String::new(),
                },
                resource: Arc::clone(&resource),
                scope: Arc::clone(&scope),
            });
        }
    }
    out
}

fn shape(traces: &[Trace]) -> Vec<(TraceId, Vec<SpanId>)> {
    traces
        .iter()
        .map(|t| (t.trace_id, t.spans.iter().map(|s| s.span_id).collect()))
        .collect()
}

#[test]
fn blocks_of_formats_2_and_3_are_still_read_next_to_format_4_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 3_600_000_000_000;
    // One segment holding a format-2 block (plain tag filter, as earlier versions wrote), a
    // format-3 block (line-blocked tag filter) and a format-4 block (the same, rapidhash
    // tags), each of two chunks. A search must probe each with its own tag hashes.
    let batches: Vec<Vec<Span>> = (0..6).map(|i| batch(i * 40, base)).collect();
    let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
    let mut segment = Vec::new();
    let formats = [Format::Plain, Format::Lines, Format::RapidTags];
    for (n, format) in formats.into_iter().enumerate() {
        let chunks: Vec<_> = batches[n * 2..n * 2 + 2]
            .iter()
            .map(|spans| {
                let batch = SpanBatch {
                    spans: spans.clone(),
                };
                let view = crate::model::BatchView::from_spans(&batch.spans);
                let mut chunk = PreparedChunk::new(&view).chunk;
                chunk.sum.tags = format.tag_hash().hashes(&view);
                Arc::new(chunk)
            })
            .collect();
        let built = build_format(&chunks, n as u64 + 1, &mut compressor, format).unwrap();
        assert_eq!(built.meta.tag_hash, format.tag_hash());
        segment.extend(frame(
            KIND_BLOCK,
            &built.meta_bytes,
            &built.tag_filter,
            &built.data,
        ));
    }
    std::fs::write(dir.path().join("seg-0000000001.tld"), &segment).unwrap();

    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    let written: Vec<(bool, TagHash)> = store
        .shared
        .state
        .read()
        .blocks
        .iter()
        .map(|b| (b.meta.line_filter, b.meta.tag_hash))
        .collect();
    assert_eq!(
        written,
        [
            (false, TagHash::Mix),
            (true, TagHash::Mix),
            (true, TagHash::Rapid)
        ]
    );
    let model = MemoryStore::new(100_000);
    for spans in &batches {
        model
            .write_batch(SpanBatch {
                spans: spans.clone(),
            })
            .unwrap();
    }

    let all = TraceQuery {
        start_min_ns: base,
        start_max_ns: base + 1_000_000_000,
        limit: 1000,
        ..TraceQuery::default()
    };
    let tag = |k: &str, v: &str| TraceQuery {
        tags: vec![(k.to_owned(), v.to_owned())],
        ..all.clone()
    };
    let queries = [
        all.clone(),
        tag("user.id", "u3"),
        tag("url.full", "https://example.com/orders/17"),
        tag("url.full", "https://example.com/orders/121"),
        tag("status", "500"),
        tag("error", "true"),
        tag("attempt", "3"),
        tag("user.id", "nobody"),
        TraceQuery {
            tags: vec![
                ("user.id".to_owned(), "u2".to_owned()),
                ("status".to_owned(), "500".to_owned()),
            ],
            ..all.clone()
        },
        TraceQuery {
            limit: 7,
            ..tag("service.name", "svc")
        },
    ];
    for q in &queries {
        let got = store.find_traces(q).unwrap();
        let want = model.find_traces(q).unwrap();
        assert_eq!(shape(&got), shape(&want), "{q:?}");
    }
    assert_eq!(store.find_traces(&queries[2]).unwrap().len(), 1);
    assert_eq!(store.find_traces(&queries[3]).unwrap().len(), 1);
    for spans in &batches {
        let id = spans[0].trace_id;
        assert_eq!(
            shape(&[store.get_trace(id).unwrap().unwrap()]),
            shape(&[model.get_trace(id).unwrap().unwrap()])
        );
    }
}
