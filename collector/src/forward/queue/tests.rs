#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn config(dir: &Path) -> QueueConfig {
    QueueConfig {
        dir: dir.to_owned(),
        max_bytes: 1 << 30,
        segment_bytes: 256,
        announced: Announced::default(),
        commit_linger: group::DEFAULT_LINGER,
    }
}

fn append(q: &Queue, tag: u8, spans: u32) {
    let payload = Bytes::from(vec![tag; 40]);
    q.append(payload, spans).unwrap().wait().unwrap();
}

/// Every unsent record, read back one batch at a time: (first payload byte, spans) per record.
fn drain(q: &Queue) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(b) = q.take(u64::MAX, u64::MAX, u64::MAX) {
        let bytes = q.read(&b).unwrap();
        out.push((b.first_seq, b.last_seq, bytes));
    }
    out
}

/// Records above an unacknowledged one count against the window even when done, so a record
/// waiting to be retried holds the sender back instead of letting it run away from the cursor
/// (what a crash would send again).
#[test]
fn take_stops_at_the_window_until_the_oldest_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open("t", &config(dir.path())).unwrap();
    for i in 0..8 {
        append(&q, i, 2);
    }
    // Window 6: three records of 2 spans out, one at a time.
    let first = q.take(2, u64::MAX, 6).unwrap();
    let second = q.take(2, u64::MAX, 6).unwrap();
    let third = q.take(2, u64::MAX, 6).unwrap();
    assert_eq!(
        (first.first_seq, second.first_seq, third.first_seq),
        (1, 2, 3)
    );
    assert_eq!(q.take(2, u64::MAX, 6), None, "6 spans out");
    // The later two done, the first not (waiting to retry): still 6 out.
    assert_eq!(q.complete(2, 2), None);
    assert_eq!(q.complete(3, 3), None);
    assert_eq!(
        q.take(2, u64::MAX, 6),
        None,
        "done above the prefix still counts"
    );
    // Once the first is done the prefix moves past all three, and batches are capped by
    // what the window has left.
    assert_eq!(q.complete(1, 1), Some(3));
    let b = q.take(u64::MAX, u64::MAX, 6).unwrap();
    assert_eq!((b.first_seq, b.last_seq, b.spans), (4, 6, 6));
    assert_eq!(q.take(u64::MAX, u64::MAX, 6), None);
    assert_eq!(q.complete(4, 6), Some(6));
    // A record larger than the window goes out alone once nothing else is.
    append(&q, 9, 10);
    let b = q.take(u64::MAX, u64::MAX, 6).unwrap();
    assert_eq!((b.first_seq, b.last_seq, b.spans), (7, 8, 4));
    assert_eq!(
        q.take(u64::MAX, u64::MAX, 6),
        None,
        "4 spans out, 10 do not fit"
    );
    assert_eq!(q.complete(7, 8), Some(8));
    let b = q.take(u64::MAX, u64::MAX, 6).unwrap();
    assert_eq!((b.first_seq, b.spans), (9, 10));
}

fn segment_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            segment::parse_name(e.as_ref().unwrap().file_name().to_str().unwrap()).is_some()
        })
        .count()
}

#[test]
fn append_take_ack_recover() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open("t", &config(dir.path())).unwrap();
    for i in 0..10 {
        append(&q, i, 2);
    }
    assert_eq!(q.stats().spans.load(Ordering::Relaxed), 20);
    assert!(q.stats().oldest_ms.load(Ordering::Relaxed) > 0);
    // Batches are bounded by spans: 3 records of 2 spans fit in 6.
    let b = q.take(6, u64::MAX, u64::MAX).unwrap();
    assert_eq!((b.first_seq, b.last_seq, b.spans), (1, 3, 6));
    let bytes = q.read(&b).unwrap();
    assert_eq!(bytes.len(), 120);
    assert!(bytes[..40].iter().all(|&x| x == 0) && bytes[80..].iter().all(|&x| x == 2));
    let b2 = q.take(4, u64::MAX, u64::MAX).unwrap();
    assert_eq!((b2.first_seq, b2.last_seq), (4, 5));
    // Out-of-order completion: nothing is acknowledged until the prefix is done.
    assert_eq!(q.complete(4, 5), None);
    assert_eq!(q.complete(1, 3), Some(5));
    q.persist(5).unwrap();
    assert_eq!(q.stats().spans.load(Ordering::Relaxed), 10);
    // Small segments: the acknowledged ones are gone.
    let files_before = segment_files(dir.path());
    drop(q);

    // Restart: records 6..=10 come back; the acknowledged ones do not.
    let q = Queue::open("t", &config(dir.path())).unwrap();
    assert_eq!(q.stats().spans.load(Ordering::Relaxed), 10);
    let rest = drain(&q);
    assert_eq!(rest.len(), 1);
    assert_eq!((rest[0].0, rest[0].1), (6, 10));
    assert_eq!(rest[0].2[0], 5);
    assert_eq!(q.complete(6, 10), Some(10));
    q.persist(10).unwrap();
    append(&q, 11, 1);
    let b = q.take(u64::MAX, u64::MAX, u64::MAX).unwrap();
    assert_eq!(b.first_seq, 11, "sequence numbers continue after a restart");
    assert!(segment_files(dir.path()) <= files_before);
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open("t", &config(dir.path())).unwrap();
    for i in 0..3 {
        append(&q, i, 1);
    }
    drop(q);
    // Tear the newest record: cut the last 7 bytes of the newest non-empty segment.
    let mut files: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect();
    files.sort();
    let last = files.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let q = Queue::open("t", &config(dir.path())).unwrap();
    let got = drain(&q);
    assert_eq!((got[0].0, got[0].1), (1, 2));
    // New appends still work and get fresh numbers.
    append(&q, 9, 1);
    let b = q.take(u64::MAX, u64::MAX, u64::MAX).unwrap();
    assert_eq!(q.read(&b).unwrap()[0], 9);
}

#[test]
fn cap_refuses_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_bytes = 3 * (40 + HEADER_BYTES as u64);
    // One record per segment: acknowledged segments (not the active one) are deleted.
    c.segment_bytes = 40 + HEADER_BYTES as u64;
    let q = Queue::open("t", &c).unwrap();
    append(&q, 0, 1);
    append(&q, 1, 1);
    assert!(q.has_room());
    append(&q, 2, 1);
    assert!(!q.has_room());
    let b = q.take(u64::MAX, u64::MAX, u64::MAX).unwrap();
    let acked = q.complete(b.first_seq, b.last_seq).unwrap();
    q.persist(acked).unwrap();
    assert!(q.has_room(), "acknowledged segments free the cap");
    assert_eq!(
        q.stats().disk_bytes.load(Ordering::Relaxed),
        40 + HEADER_BYTES as u64
    );
}

#[test]
fn concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(Queue::open("t", &config(dir.path())).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    append(&q, t, 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(q.stats().spans.load(Ordering::Relaxed), 200);
    let got = drain(&q);
    assert_eq!(got.iter().map(|g| g.2.len()).sum::<usize>(), 200 * 40);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Model test: any interleaving of appends, takes, completions and restarts never loses
    /// an appended record that was not completed, never hands out a record twice within one
    /// run, and after a restart hands out exactly the records above the completed prefix that
    /// were not completed, plus those completed out of order above it (the duplicates); and
    /// that a take keeps the spans out above the completed prefix within its window (apart
    /// from one record taken while nothing is out).
    #[test]
    fn model(ops in prop::collection::vec((0u8..5, 1u64..6), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open("m", &config(dir.path())).unwrap();
        let mut appended: BTreeSet<u64> = BTreeSet::new();
        let mut completed: BTreeSet<u64> = BTreeSet::new();
        let mut taken: Vec<Batch> = Vec::new();
        let mut handed: BTreeSet<u64> = BTreeSet::new();
        let mut spans_of: BTreeMap<u64, u64> = BTreeMap::new();
        let mut next = 1u64;
        // Spans handed out in this run and not in the completed prefix: in flight, or completed
        // above a record that is not.
        let out = |appended: &BTreeSet<u64>, completed: &BTreeSet<u64>, handed: &BTreeSet<u64>, spans_of: &BTreeMap<u64, u64>| {
            let min_open = appended.difference(completed).next().copied().unwrap_or(u64::MAX);
            handed.range(min_open..).map(|s| spans_of[s]).sum::<u64>()
        };
        // After a restart, only the completed prefix stays completed.
        let restart = |appended: &BTreeSet<u64>, completed: &mut BTreeSet<u64>| {
            let min_open = appended.difference(completed).next().copied().unwrap_or(u64::MAX);
            completed.retain(|s| *s < min_open);
        };
        for (op, n) in ops {
            match op {
                0 | 1 => {
                    append(&q, 7, u32::try_from(n).unwrap());
                    appended.insert(next);
                    spans_of.insert(next, n);
                    next += 1;
                }
                2 => {
                    // Records of 1-5 spans; windows of 4-16 spans, or none.
                    let window = if n == 5 { u64::MAX } else { n * 4 };
                    let before = out(&appended, &completed, &handed, &spans_of);
                    if let Some(b) = q.take(n * 3, u64::MAX, window) {
                        for s in b.first_seq..=b.last_seq {
                            prop_assert!(appended.contains(&s) && handed.insert(s), "record {} handed out twice", s);
                        }
                        let after = out(&appended, &completed, &handed, &spans_of);
                        prop_assert!(
                            after <= window || (before == 0 && b.first_seq == b.last_seq),
                            "{} spans out after a take with a window of {} ({} before)", after, window, before
                        );
                        taken.push(b);
                    } else {
                        let unsent = appended.iter().any(|s| !handed.contains(s) && !completed.contains(s));
                        prop_assert!(
                            !unsent || before > 0,
                            "nothing taken while records wait and nothing is out"
                        );
                    }
                }
                3 => {
                    if !taken.is_empty() {
                        let b = taken.remove(usize::try_from(n).unwrap() % taken.len());
                        completed.extend(b.first_seq..=b.last_seq);
                        if let Some(acked) = q.complete(b.first_seq, b.last_seq) {
                            q.persist(acked).unwrap();
                        }
                    }
                }
                _ => {
                    drop(q);
                    q = Queue::open("m", &config(dir.path())).unwrap();
                    taken.clear();
                    handed.clear();
                    restart(&appended, &mut completed);
                }
            }
        }
        drop(q);
        let q = Queue::open("m", &config(dir.path())).unwrap();
        let mut back = BTreeSet::new();
        while let Some(b) = q.take(u64::MAX, u64::MAX, u64::MAX) {
            q.read(&b).unwrap();
            back.extend(b.first_seq..=b.last_seq);
        }
        restart(&appended, &mut completed);
        let expected: BTreeSet<u64> = appended.difference(&completed).copied().collect();
        prop_assert_eq!(back, expected);
    }
}

#[test]
fn the_commit_thread_waits_for_an_announced_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Long enough that the second append always arrives within it; the wait ends when it does.
    cfg.commit_linger = Duration::from_secs(30);
    let announced = cfg.announced.clone();
    let q = Queue::open("t", &cfg).unwrap();
    let pending = announced.announce();
    let first = q.append(Bytes::from_static(b"first"), 1).unwrap();
    // Still decoding: without the wait, the first record would be committed alone by now.
    std::thread::sleep(Duration::from_millis(50));
    drop(pending);
    let second = q.append(Bytes::from_static(b"second"), 1).unwrap();
    first.wait().unwrap();
    second.wait().unwrap();
    assert_eq!(q.group_commits(), 1);
    // Nothing announced: the next append is committed on its own at once.
    append(&q, 3, 1);
    assert_eq!(q.group_commits(), 2);
}

/// A new queue in a temporary directory, once it has written its first (zero-filled) spare
/// segment, which it does on its own thread; and the spare's path.
fn open_with_spare() -> (tempfile::TempDir, PathBuf, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let spare = dir.path().join(SPARE_FILE);
    let q = Queue::open("t", &config(dir.path())).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !spare.exists() {
        assert!(std::time::Instant::now() < deadline, "no spare segment");
        std::thread::sleep(Duration::from_millis(5));
    }
    (dir, spare, q)
}

#[test]
fn records_in_a_spare_segment_survive_a_restart() {
    let (dir, _spare, q) = open_with_spare();
    // 68-byte records, 256-byte segments: the fifth append rotates into the spare.
    for i in 0..6 {
        append(&q, i, 1);
    }
    let second = segment::path(dir.path(), 5);
    assert_eq!(
        fs::metadata(&second).unwrap().len(),
        256,
        "the second segment is the zero-filled spare"
    );
    drop(q);

    let q = Queue::open("t", &config(dir.path())).unwrap();
    let got = drain(&q);
    let seqs: Vec<(u64, u64)> = got.iter().map(|(a, b, _)| (*a, *b)).collect();
    assert_eq!(seqs, vec![(1, 6)]);
    assert_eq!(got[0].2.len(), 6 * 40);
    assert_eq!(q.stats().spans.load(Ordering::Relaxed), 6);
    // The zeros after the records were dropped at recovery.
    assert_eq!(fs::metadata(&second).unwrap().len(), 2 * 68);
}

#[test]
fn an_acknowledged_segment_becomes_the_spare_and_its_records_never_come_back() {
    let (dir, spare, q) = open_with_spare();
    // 68-byte records, 256-byte segments: records 1..=4 in segment 1, the fifth rotates
    // into the zero-filled spare (segment 5).
    for i in 1..=5 {
        append(&q, i, 1);
    }
    assert!(!spare.exists(), "taken by the rotation");
    let b = q.take(u64::MAX, u64::MAX, u64::MAX).unwrap();
    assert_eq!((b.first_seq, b.last_seq), (1, 5));
    assert_eq!(q.complete(1, 5), Some(5));
    q.persist(5).unwrap();
    // Segment 1 is acknowledged: it is the spare now, records and all.
    assert!(!segment::path(dir.path(), 1).exists());
    let reused = fs::read(&spare).unwrap();
    assert_eq!(reused.len(), 4 * 68);
    assert_eq!(reused[..4], 40u32.to_le_bytes(), "segment 1's first record");
    // Records 6..=8 fill segment 5; record 9 rotates into the reused file, over record 1.
    for i in 6..=9 {
        append(&q, i, 1);
    }
    let ninth = segment::path(dir.path(), 9);
    assert_eq!(fs::metadata(&ninth).unwrap().len(), 4 * 68);
    drop(q);

    let q = Queue::open("t", &config(dir.path())).unwrap();
    let got = drain(&q);
    let seqs: Vec<(u64, u64)> = got.iter().map(|(a, b, _)| (*a, *b)).collect();
    assert_eq!(seqs, vec![(6, 9)]);
    let tags: Vec<u8> = got[0].2.chunks(40).map(|p| p[0]).collect();
    assert_eq!(tags, [6, 7, 8, 9]);
    assert_eq!(q.stats().spans.load(Ordering::Relaxed), 4);
    // Records 2..=4 of the file's first use were cut at recovery.
    assert_eq!(fs::metadata(&ninth).unwrap().len(), 68);
    // Sequence numbers go on after the reused file's own.
    append(&q, 10, 1);
    let b = q.take(u64::MAX, u64::MAX, u64::MAX).unwrap();
    assert_eq!(b.first_seq, 10);
}
