//! The embedded store's recovery: acknowledged batches across a crash, group commits, torn
//! WAL and segment tails, recycled WAL files, corruption, garbage files, and retention by age
//! and size.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

#[path = "support/store.rs"]
mod store_support;

use std::fs::{self, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use store_support::*;
use tracelight_collector::model::{BatchView, SpanBatch};
use tracelight_collector::store::{
    EmbeddedConfig, EmbeddedStore, SpanStore, TraceQuery, WriteDone,
};

/// `n` spans of trace `trace`, starting at `start`.
fn trace_batch(trace: u64, n: u64, start: u64) -> SpanBatch {
    let specs: Vec<SpanSpec> = (0..n)
        .map(|i| SpanSpec {
            trace,
            parent: None,
            service: (trace % 3) as usize,
            operation: 0,
            server: true,
            start: i,
            duration: 1,
            status: 200,
            user: 0,
            error: false,
            event: false,
        })
        .collect();
    let mut spans = build(&specs, start, &resources());
    for (i, s) in spans.iter_mut().enumerate() {
        s.span_id = span_id(trace * 1000 + i as u64);
    }
    SpanBatch { spans }
}

fn span_count(store: &EmbeddedStore, trace: u64) -> usize {
    store
        .get_trace(trace_id(trace))
        .unwrap()
        .map_or(0, |t| t.spans.len())
}

fn wal(dir: &Path) -> PathBuf {
    dir.join("wal.log")
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tld"))
        .collect();
    v.sort();
    v
}

#[test]
fn acknowledged_batches_survive_a_crash_from_many_writers() {
    for mid_seal in [false, true] {
        let dir = temp_dir();
        let base = now_ns() - HOUR_NS;
        let store = Arc::new(EmbeddedStore::open(config(dir.path())).unwrap());
        let threads: Vec<_> = (0..4u64)
            .map(|w| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        store
                            .write_batch(trace_batch(w * 100 + i, 5, base))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = Arc::into_inner(store).unwrap();
        store.simulate_crash(mid_seal).unwrap();
        let store = EmbeddedStore::open(config(dir.path())).unwrap();
        for w in 0..4 {
            for i in 0..25 {
                assert_eq!(span_count(&store, w * 100 + i), 5, "mid_seal={mid_seal}");
            }
        }
        // No span is counted twice after a crash between a block write and the WAL reset.
        assert_eq!(store.stats().spans, 500, "mid_seal={mid_seal}");
        assert_eq!(store.corrupt_records(), 0);
    }
}

/// Submits `batch` without waiting; the returned channel gets the outcome.
fn submit(store: &EmbeddedStore, batch: &SpanBatch) -> std::sync::mpsc::Receiver<bool> {
    let (tx, rx) = std::sync::mpsc::channel();
    let prepared = store.prepare(&BatchView::from_spans(&batch.spans)).unwrap();
    store
        .submit_prepared(
            prepared,
            WriteDone::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        )
        .unwrap();
    rx
}

#[test]
fn the_commit_thread_waits_for_an_announced_batch_and_fsyncs_once_for_both() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    // Long enough that the second batch always arrives within it, even on a loaded machine;
    // the wait ends as soon as it does.
    cfg.commit_linger = Duration::from_secs(30);
    let store = EmbeddedStore::open(cfg).unwrap();
    let announced = store.incoming();
    let first = submit(&store, &trace_batch(1, 3, base));
    // Still decoding: without the wait, the first batch would be committed alone by now.
    std::thread::sleep(Duration::from_millis(50));
    // A receiver submits its batch after dropping its announcement.
    drop(announced);
    let second = submit(&store, &trace_batch(2, 3, base));
    assert!(first.recv().unwrap());
    assert!(second.recv().unwrap());
    assert_eq!(store.group_commits(), 1);
    assert_eq!(span_count(&store, 1) + span_count(&store, 2), 6);
}

#[test]
fn an_announced_batch_that_never_comes_delays_a_commit_by_the_linger_only() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.commit_linger = Duration::from_millis(20);
    let store = EmbeddedStore::open(cfg).unwrap();
    // A receiver that announced a batch and then failed to decode it, but still holds the
    // announcement: every commit waits the linger and then goes ahead alone.
    let never = store.incoming();
    for trace in 0..3 {
        assert!(submit(&store, &trace_batch(trace, 2, base)).recv().unwrap());
    }
    assert_eq!(store.group_commits(), 3);
    drop(never);
    assert!(submit(&store, &trace_batch(9, 2, base)).recv().unwrap());
    assert_eq!(store.group_commits(), 4);
    assert_eq!(store.stats().spans, 8);
}

#[test]
fn torn_wal_tail_is_truncated_and_earlier_records_kept() {
    for direct_io in [true, false] {
        torn_wal_tail(direct_io);
    }
}

/// Bytes of `path` up to its last non-zero byte: a few bytes short of the end of a WAL's
/// records (a record may end with zero bytes), which a direct write follows with zeros to the
/// end of their block.
fn records_end(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

fn torn_wal_tail(direct_io: bool) {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.block_spans = 10_000; // keep everything in the WAL
    cfg.direct_io = direct_io;
    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    for t in 1..=3 {
        store.write_batch(trace_batch(t, 4, base)).unwrap();
    }
    store.simulate_crash(false).unwrap();
    let len = fs::metadata(wal(dir.path())).unwrap().len();
    let end = records_end(&wal(dir.path()));
    if direct_io {
        assert_eq!(len % 4096, 0, "direct writes end on a block boundary");
        assert!(len - end < 4096, "{len} bytes, records end near {end}");
    } else {
        assert!(len - end < 16, "{len} bytes, records end near {end}");
    }
    OpenOptions::new()
        .write(true)
        .open(wal(dir.path()))
        .unwrap()
        .set_len(end - 17)
        .unwrap();

    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    assert_eq!(span_count(&store, 1), 4, "direct_io: {direct_io}");
    assert_eq!(span_count(&store, 2), 4);
    assert_eq!(span_count(&store, 3), 0, "the torn record is dropped");
    assert_eq!(store.corrupt_records(), 0, "a torn tail is not corruption");
    assert!(fs::metadata(wal(dir.path())).unwrap().len() < end - 17);
    appends_cleanly_after_recovery(store, cfg, 4, base, 12);
}

/// Writing after a recovery appends cleanly: trace `trace` (4 spans) written to the recovered
/// `store` is found after another crash, with `total` spans in all.
fn appends_cleanly_after_recovery(
    store: EmbeddedStore,
    cfg: EmbeddedConfig,
    trace: u64,
    base: u64,
    total: u64,
) {
    store.write_batch(trace_batch(trace, 4, base)).unwrap();
    store.simulate_crash(false).unwrap();
    let store = EmbeddedStore::open(cfg).unwrap();
    assert_eq!(span_count(&store, trace), 4);
    assert_eq!(store.stats().spans, total);
}

/// Bytes of the files in `dir` but `LOCK` (20 bytes, not span data).
fn bytes_on_disk(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn records_in_a_spare_wal_file_survive_a_crash_and_its_zeros_are_dropped() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.block_spans = 10_000; // rotate only on flush
    // The sealer writes a zero-filled spare when it starts, before it stops.
    drop(EmbeddedStore::open(cfg.clone()).unwrap());
    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    store.write_batch(trace_batch(1, 4, base)).unwrap();
    // A flush rotates the WAL, which makes the spare the WAL, and seals.
    store.flush().unwrap();
    for t in 2..=5 {
        store.write_batch(trace_batch(t, 4, base)).unwrap();
    }
    // The spare and the WAL's unused zeros count as store bytes (the disk cap sees them).
    assert_eq!(store.stats().bytes, bytes_on_disk(dir.path()));
    store.simulate_crash(false).unwrap();
    let spare_len = fs::metadata(wal(dir.path())).unwrap().len();
    assert!(
        spare_len >= 256 << 10,
        "the WAL is a spare: {spare_len} bytes"
    );

    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    for t in 1..=5 {
        assert_eq!(span_count(&store, t), 4, "trace {t}");
    }
    assert_eq!(store.corrupt_records(), 0, "zeros are not corruption");
    let wal_len = fs::metadata(wal(dir.path())).unwrap().len();
    assert!(
        wal_len < 64 << 10,
        "the zeros were dropped: {wal_len} bytes"
    );
    assert_eq!(store.stats().bytes, bytes_on_disk(dir.path()));
    appends_cleanly_after_recovery(store, cfg, 6, base, 24);
}

/// A sealed WAL file is used again as the spare; the records of its earlier use that the new
/// ones have not overwritten must never come back, even when the blocks that hold their
/// spans are gone (retention), which is when their sequence numbers alone would not tell.
#[test]
fn stale_records_of_a_recycled_wal_file_are_never_replayed() {
    for direct_io in [true, false] {
        stale_records_never_replayed(direct_io);
    }
}

fn stale_records_never_replayed(direct_io: bool) {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.block_spans = 10_000; // rotate only on flush
    cfg.segment_bytes = 1 << 20;
    cfg.direct_io = direct_io;
    // The sealer writes a zero-filled spare when it starts, before it stops: the first
    // rotation below takes it, not a new file, whatever the threads' timing.
    drop(EmbeddedStore::open(cfg.clone()).unwrap());
    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    // Records of ~5 KB (80 spans): all but the first start past the first 4 KiB block, which
    // a direct write of the file's next use fills with zeros after its records.
    for t in 1..=6 {
        store.write_batch(trace_batch(t, 80, base)).unwrap();
    }
    let first_wal = fs::metadata(wal(dir.path())).unwrap().len();
    // The WAL holding traces 1..=6 is sealed and becomes the spare; a second rotation makes
    // it the WAL again.
    store.flush().unwrap();
    store.write_batch(trace_batch(7, 4, base)).unwrap();
    store.flush().unwrap();
    assert_eq!(
        fs::metadata(wal(dir.path())).unwrap().len(),
        first_wal,
        "the WAL is the first WAL file, used again"
    );
    // One record, shorter than the six it overwrites the start of.
    store.write_batch(trace_batch(8, 2, base)).unwrap();
    assert_eq!(store.stats().bytes, bytes_on_disk(dir.path()));
    store.simulate_crash(false).unwrap();
    let stale = fs::read(wal(dir.path())).unwrap();
    assert_eq!(
        stale.windows(4).filter(|w| *w == b"TLR1").count(),
        2 + 5,
        "head, trace 8, and traces 2..=6 of the first use"
    );

    // Retention deleted every block: nothing but trace 8 is in the store.
    for seg in segments(dir.path()) {
        fs::remove_file(seg).unwrap();
    }
    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    assert_eq!(span_count(&store, 8), 2);
    for t in 1..=7 {
        assert_eq!(span_count(&store, t), 0, "trace {t} revived");
    }
    assert_eq!(store.stats().spans, 2);
    assert_eq!(
        store.corrupt_records(),
        0,
        "stale records are not corruption"
    );
    assert_eq!(store.stats().bytes, bytes_on_disk(dir.path()));
    appends_cleanly_after_recovery(store, cfg, 9, base, 6);
}

#[test]
fn torn_segment_tail_falls_back_to_the_wal() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.block_spans = 10_000;
    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    store.write_batch(trace_batch(1, 4, base)).unwrap();
    store.flush().unwrap();
    store.write_batch(trace_batch(2, 4, base)).unwrap();
    // A block is written but the WAL is not reset; then the block's tail is torn.
    store.simulate_crash(true).unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let store = EmbeddedStore::open(cfg).unwrap();
    assert_eq!(span_count(&store, 1), 4);
    assert_eq!(span_count(&store, 2), 4, "replayed from the WAL");
    assert_eq!(store.stats().spans, 8);
}

fn flip_byte(path: &Path, at_fraction: f64) {
    let bytes = fs::read(path).unwrap();
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    let at = ((bytes.len() as f64) * at_fraction) as usize;
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&[bytes[at] ^ 0x5a]).unwrap();
}

#[test]
fn corrupt_block_data_is_detected_and_skipped() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 1 << 20;
    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    for t in 1..=3 {
        store.write_batch(trace_batch(t, 20, base)).unwrap();
        store.flush().unwrap();
    }
    drop(store);
    let seg = segments(dir.path()).pop().unwrap();
    flip_byte(&seg, 0.5); // inside the second block's data
    let store = EmbeddedStore::open(cfg).unwrap();
    let counts: Vec<usize> = (1..=3).map(|t| span_count(&store, t)).collect();
    assert_eq!(counts.iter().filter(|c| **c == 20).count(), 2, "{counts:?}");
    let all = TraceQuery {
        limit: 10,
        ..TraceQuery::default()
    };
    assert_eq!(store.find_traces(&all).unwrap().len(), 2);
    assert_eq!(store.corrupt_records(), 1);
}

#[test]
fn corrupt_headers_are_skipped_at_open() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.block_spans = 10_000;
    let store = EmbeddedStore::open(cfg.clone()).unwrap();
    for t in 1..=3 {
        store.write_batch(trace_batch(t, 4, base)).unwrap();
    }
    store.simulate_crash(false).unwrap();
    // The second WAL record's header: the second of the last three records (the file's head
    // record comes first).
    let bytes = fs::read(wal(dir.path())).unwrap();
    let records: Vec<usize> = (0..bytes.len() - 4)
        .filter(|&i| bytes[i..i + 4] == *b"TLR1")
        .collect();
    let second = records[records.len() - 2] + 10;
    flip_byte(&wal(dir.path()), second as f64 / bytes.len() as f64);
    let store = EmbeddedStore::open(cfg).unwrap();
    assert_eq!(span_count(&store, 1), 4);
    assert_eq!(span_count(&store, 2), 0);
    assert_eq!(
        span_count(&store, 3),
        4,
        "resynchronised after the bad record"
    );
    assert_eq!(store.corrupt_records(), 1);
}

#[test]
fn garbage_files_do_not_panic() {
    let dir = temp_dir();
    fs::write(wal(dir.path()), b"TLR1 not really a record at all").unwrap();
    fs::write(dir.path().join("seg-0000000001.tld"), vec![0xff; 1000]).unwrap();
    let store = EmbeddedStore::open(config(dir.path())).unwrap();
    assert_eq!(store.stats().spans, 0);
    store
        .write_batch(trace_batch(1, 3, now_ns() - HOUR_NS))
        .unwrap();
    assert_eq!(span_count(&store, 1), 3);
}

#[test]
fn retention_by_age_removes_expired_segments() {
    let dir = temp_dir();
    let old = now_ns() - 10 * 24 * HOUR_NS;
    let fresh = now_ns() - HOUR_NS;
    let store = EmbeddedStore::open(config(dir.path())).unwrap();
    store.write_batch(trace_batch(1, 10, old)).unwrap();
    store.write_batch(trace_batch(3, 10, old)).unwrap();
    store.flush().unwrap();
    store.write_batch(trace_batch(2, 10, fresh)).unwrap();
    store.flush().unwrap();
    assert_eq!(span_count(&store, 1), 0);
    assert_eq!(span_count(&store, 3), 0);
    assert_eq!(span_count(&store, 2), 10);
    // Service of trace 2 only ("cache"); "db" and "api" were only in expired traces.
    assert_eq!(store.services().unwrap(), vec!["cache".to_owned()]);
    assert_eq!(store.stats().spans, 10);
    drop(store);
    let store = EmbeddedStore::open(config(dir.path())).unwrap();
    assert_eq!(span_count(&store, 2), 10);
    assert_eq!(store.stats().spans, 10);
}

/// With a disk cap under 16 bytes there is never a spare: every rotation creates a new WAL
/// file and writes its head record there, and those bytes are counted at once.
#[test]
fn a_new_wal_file_is_counted_from_its_head_on() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.max_disk_bytes = 15;
    let store = EmbeddedStore::open(cfg).unwrap();
    for t in 1..=3 {
        store.write_batch(trace_batch(t, 4, base)).unwrap();
        store.flush().unwrap();
        assert!(!dir.path().join("wal.spare").exists());
        assert_eq!(
            store.stats().bytes,
            bytes_on_disk(dir.path()),
            "after flush {t}"
        );
    }
}

#[test]
fn retention_by_size_keeps_the_newest_data_under_the_cap() {
    let dir = temp_dir();
    let base = now_ns() - HOUR_NS;
    let mut cfg = config(dir.path());
    cfg.max_disk_bytes = 16 << 10;
    cfg.block_spans = 64;
    cfg.segment_bytes = 1 << 20; // clamped to max_disk_bytes / 8
    let store = EmbeddedStore::open(cfg).unwrap();
    for t in 0..400 {
        store.write_batch(trace_batch(t, 8, base)).unwrap();
    }
    store.flush().unwrap();
    let stats = store.stats();
    // Segments and WAL (a spare WAL file included).
    let on_disk = bytes_on_disk(dir.path());
    assert_eq!(stats.bytes, on_disk);
    assert!(on_disk <= (16 << 10) + (2 << 10), "{on_disk}");
    assert!(stats.spans < 400 * 8, "something was deleted");
    assert_eq!(span_count(&store, 0), 0, "oldest gone");
    assert_eq!(span_count(&store, 399), 8, "newest kept");
}

#[test]
fn retention_runs_in_the_background() {
    let dir = temp_dir();
    let mut cfg = config(dir.path());
    cfg.retention = Duration::from_secs(1);
    cfg.retention_check_interval = Duration::from_millis(50);
    let store = EmbeddedStore::open(cfg).unwrap();
    store.write_batch(trace_batch(1, 10, now_ns())).unwrap();
    store.flush().unwrap();
    assert_eq!(span_count(&store, 1), 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while span_count(&store, 1) > 0 {
        assert!(std::time::Instant::now() < deadline, "not expired");
        std::thread::sleep(Duration::from_millis(50));
    }
}
