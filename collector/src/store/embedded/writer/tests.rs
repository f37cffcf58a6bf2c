//! The commit thread's own tests (the store's behaviour: `tests/store_embedded.rs`, `tests/store_recovery.rs`).

#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use super::super::{EmbeddedConfig, PreparedChunk, Shared};
use super::{Command, SPARE_MAX_BYTES, SPARE_MIN_BYTES, Writer, now_ns, spare_bytes};
use crate::model::{BatchView, Resource, Scope, Span, SpanId, SpanKind, Status, TraceId};
use crate::store::{EmbeddedStore, SpanStore as _, WriteDone};

#[test]
fn refused_direct_writes_fall_back_to_buffered_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.block_spans = 10_000; // everything stays in the WAL
    let shared = Arc::new(Shared::new(&cfg));
    let mut writer = Writer::open(cfg.clone(), Arc::clone(&shared)).unwrap();
    let start = now_ns() - 60_000_000_000;
    let chunk = |trace: u8| {
        let span = Span {
            trace_id: TraceId::from_bytes([trace; 16]).unwrap(),
            span_id: SpanId::from_slice(&[trace; 8]).unwrap(),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "op".to_owned(),
            kind: SpanKind::Server,
            start_ns: start,
            end_ns: start + 1_000,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: Status::default(),
            resource: Arc::new(Resource {
                service_name: "svc".to_owned(),
                attributes: Vec::new(),
            }),
            scope: Arc::new(Scope::default()),
        };
        PreparedChunk::new(&BatchView::from_spans(&[span]))
    };
    let (tx, rx) = sync_channel(4);
    let commit = |writer: &mut Writer, trace: u8| {
        let p = chunk(trace);
        let tx = tx.clone();
        writer.commit(vec![(
            p.chunk,
            p.crc,
            WriteDone::new(move |r| tx.send(r.is_ok()).unwrap()),
        )]);
        rx.recv().unwrap()
    };
    assert!(commit(&mut writer, 1), "a direct commit");
    writer
        .direct
        .as_mut()
        .expect("direct I/O here")
        .refuse_next();
    assert!(
        commit(&mut writer, 2),
        "the refused write is committed buffered"
    );
    assert!(writer.direct.is_none());
    assert!(commit(&mut writer, 3), "and so are the next ones");
    // A rotation does not try direct writes again on the next WAL file.
    drop(writer.freeze().unwrap());
    assert!(writer.direct.is_none(), "not retried after a refusal");
    assert!(commit(&mut writer, 4));
    let (reply, _rx) = sync_channel(1);
    writer.stop(Command::Crash {
        mid_seal: false,
        reply,
    });
    drop(writer);
    drop(shared);
    let store = EmbeddedStore::open(cfg).unwrap();
    for trace in 1..=4 {
        let id = TraceId::from_bytes([trace; 16]).unwrap();
        assert!(store.get_trace(id).unwrap().is_some(), "trace {trace}");
    }
    assert_eq!(store.corrupt_records(), 0);
}

#[test]
fn the_spare_size_follows_the_last_wal_within_bounds() {
    assert_eq!(spare_bytes(0, u64::MAX), SPARE_MIN_BYTES);
    assert_eq!(spare_bytes(4 << 20, u64::MAX), 5 << 20);
    assert_eq!(spare_bytes(1 << 30, u64::MAX), SPARE_MAX_BYTES);
    assert_eq!(spare_bytes(4 << 20, 16 << 20), 1 << 20);
}
