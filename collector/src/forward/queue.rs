//! The persistent queue of one upstream: segment files of encoded OTLP requests, a commit
//! thread doing group commit, an in-memory index of the unacknowledged records, and the
//! acknowledged cursor.
//!
//! - **Append** ([`Queue::append`]): the record goes to the commit thread, which takes every
//!   append queued meanwhile, writes them with one `pwrite` and one `fdatasync`, and only then
//!   publishes them to the sender and answers. An answered append is on disk.
//! - **Send**: [`Queue::take`] hands out the next unsent records (several merged into one
//!   request, see `forward.rs`), [`Queue::read`] reads their payloads back.
//! - **Acknowledge**: [`Queue::complete`] marks a range done; the acknowledged prefix advances
//!   and [`Queue::persist`] writes it to the cursor file and deletes the segments it covers
//!   entirely, or makes one of them the spare for the next rotation (no zero-filling: see
//!   `segment.rs` for why its old records cannot come back).
//! - **Recover** ([`Queue::open`]): every segment is scanned, a torn tail truncated, records at
//!   or below the cursor skipped; appends go to a fresh segment.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

use super::cursor::Cursor;
use super::segment::{self, HEADER_BYTES, RecordHeader};
use crate::completion::Done;
use crate::group::{self, Announced};
use crate::prealloc::{self, Spare};

const CURSOR_FILE: &str = "acked.cursor";
/// The next segment, written ahead (see [`crate::prealloc`]).
const SPARE_FILE: &str = "segment.spare";
/// Most appends folded into one group commit.
const MAX_GROUP: usize = 256;
/// Appends waiting for the commit thread before `append` blocks.
const COMMIT_QUEUE: usize = 1024;

/// A failure of a forward queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Opening or recovering the queue directory failed.
    #[error("forward queue {queue}: I/O error: {source}")]
    Io {
        /// Queue (upstream) name.
        queue: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A write or fsync failed; the queue refuses further appends.
    #[error("forward queue {queue} failed: {message}")]
    Failed {
        /// Queue (upstream) name.
        queue: String,
        /// The first error.
        message: String,
    },
    /// The queue is closed (shutdown).
    #[error("forward queue {queue} is closed")]
    Closed {
        /// Queue (upstream) name.
        queue: String,
    },
    /// The commit thread's intake is full ([`Queue::submit`] does not wait for room).
    #[error("forward queue {queue} is busy")]
    Busy {
        /// Queue (upstream) name.
        queue: String,
    },
}

/// Gauges of one queue, updated as records are appended and acknowledged.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Spans in unacknowledged records.
    pub spans: AtomicU64,
    /// Bytes of unacknowledged records (headers included).
    pub bytes: AtomicU64,
    /// Bytes of segment files on disk (what the cap limits).
    pub disk_bytes: AtomicU64,
    /// Append time of the oldest unacknowledged record, ms since the epoch (0: empty).
    pub oldest_ms: AtomicU64,
}

/// Tuning of one queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The queue's directory.
    pub dir: PathBuf,
    /// Disk cap: appends are refused (by [`Queue::has_room`]) at or above it.
    pub max_bytes: u64,
    /// A new segment is started once the active one reaches this size.
    pub segment_bytes: u64,
    /// Appends announced by receivers still decoding them: the commit thread waits for
    /// them, at most `commit_linger` ([`crate::group`]).
    pub announced: Announced,
    /// Longest wait for announced appends before a group commit.
    pub commit_linger: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    segment: u64,
    offset: u64,
    len: u32,
    spans: u32,
    enqueued_ms: u64,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
struct SegmentInfo {
    first_seq: u64,
    /// Highest record in it (0 while empty).
    last_seq: u64,
    bytes: u64,
}

#[derive(Debug)]
struct State {
    /// Unacknowledged records, in sequence order.
    entries: VecDeque<Entry>,
    /// Segment files, oldest first; the last one is the active segment.
    segments: VecDeque<SegmentInfo>,
    /// Every record up to here is done (acknowledged or rejected).
    acked: u64,
    /// The first record not yet handed to the sender.
    next_unsent: u64,
}

#[derive(Debug)]
struct Shared {
    name: String,
    dir: PathBuf,
    state: Mutex<State>,
    cursor: Mutex<Cursor>,
    notify: tokio::sync::Notify,
    stats: Arc<QueueStats>,
    /// Group commits (fsyncs of the active segment) since open.
    commits: AtomicU64,
    /// The next segment file, ready before the rotation that takes it.
    spare: Spare,
    /// Set while a spare is being written or installed.
    preparing: Arc<AtomicBool>,
}

/// Records handed to the sender by [`Queue::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// First record.
    pub first_seq: u64,
    /// Last record.
    pub last_seq: u64,
    /// Spans in the records.
    pub spans: u64,
    /// Payload bytes.
    pub bytes: u64,
    reads: Vec<(u64, u64)>,
}

/// Called once the record is durable (or failed).
pub type AppendDone = Done<QueueError>;

struct Append {
    payload: Bytes,
    spans: u32,
    done: AppendDone,
}

/// One upstream's queue. See the module docs.
#[derive(Debug)]
pub struct Queue {
    shared: Arc<Shared>,
    max_bytes: u64,
    commit: Mutex<Option<SyncSender<Append>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// An append in progress: [`wait`](Self::wait) for the fsync.
#[derive(Debug)]
pub struct PendingAppend {
    queue: String,
    done: Receiver<Result<(), QueueError>>,
}

impl PendingAppend {
    /// Blocks until the record is durable.
    pub fn wait(self) -> Result<(), QueueError> {
        self.done
            .recv()
            .unwrap_or(Err(QueueError::Closed { queue: self.queue }))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Queue {
    /// Opens or recovers the queue in `config.dir` and starts its commit thread. Blocking I/O.
    pub fn open(name: &str, config: &QueueConfig) -> Result<Self, QueueError> {
        let io_err = |source| QueueError::Io {
            queue: name.to_owned(),
            source,
        };
        let (shared, writer) = recover(name, config).map_err(io_err)?;
        let (tx, rx) = sync_channel(COMMIT_QUEUE);
        let thread = std::thread::Builder::new()
            .name(format!(
                "fwd-queue-{}",
                name.chars().take(5).collect::<String>()
            ))
            .spawn(move || writer.run(&rx))
            .map_err(io_err)?;
        Ok(Self {
            shared,
            max_bytes: config.max_bytes,
            commit: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The queue's (upstream's) name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Group commits since open: each appended and fsynced one or more records.
    pub fn group_commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// The queue's gauges.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.shared.stats
    }

    /// Whether the disk cap leaves room for more records.
    pub fn has_room(&self) -> bool {
        self.shared.stats.disk_bytes.load(Ordering::Relaxed) < self.max_bytes
    }

    /// Queues a record for the commit thread; [`PendingAppend::wait`] returns once it is
    /// durable. Blocks only when the commit thread is far behind.
    pub fn append(&self, payload: Bytes, spans: u32) -> Result<PendingAppend, QueueError> {
        let closed = || QueueError::Closed {
            queue: self.shared.name.clone(),
        };
        let tx = self.commit.lock().clone().ok_or_else(closed)?;
        let (reply, done) = sync_channel(1);
        tx.send(Append {
            payload,
            spans,
            done: Done::new(move |result| {
                let _ = reply.send(result);
            }),
        })
        .map_err(|_| closed())?;
        Ok(PendingAppend {
            queue: self.shared.name.clone(),
            done,
        })
    }

    /// Queues a record for the commit thread without waiting: `done` gets the outcome once it
    /// is durable. When the commit thread's intake is full ([`QueueError::Busy`]) or closed,
    /// returns the error and drops `done` uncalled.
    pub fn submit(&self, payload: Bytes, spans: u32, done: AppendDone) -> Result<(), QueueError> {
        let queue = || self.shared.name.clone();
        let tx = self
            .commit
            .lock()
            .clone()
            .ok_or_else(|| QueueError::Closed { queue: queue() })?;
        tx.try_send(Append {
            payload,
            spans,
            done,
        })
        .map_err(|e| match e {
            TrySendError::Full(_) => QueueError::Busy { queue: queue() },
            TrySendError::Disconnected(_) => QueueError::Closed { queue: queue() },
        })
    }

    /// Waits until records may have been appended since the last call.
    pub async fn appended(&self) {
        self.shared.notify.notified().await;
    }

    /// Hands out the next unsent records: at least one, then more while the totals stay within
    /// `max_spans` and `max_bytes`. `None` when everything was handed out, or when `window`
    /// spans are already out: handed out earlier and not yet in the acknowledged prefix, be
    /// they in flight or done above an older record that is not (one waiting to be retried).
    ///
    /// The window is what bounds the records a crash sends again: everything above the
    /// acknowledged prefix. Without it, a record waiting out a long retry delay would let the
    /// sender deliver the whole backlog past it while the cursor stays put, and the segments
    /// with it. A record larger than the window is still handed out once nothing else is out.
    pub fn take(&self, max_spans: u64, max_bytes: u64, window: u64) -> Option<Batch> {
        let mut st = self.shared.state.lock();
        let start = st.entries.partition_point(|e| e.seq < st.next_unsent);
        let out: u64 = st.entries.range(..start).map(|e| u64::from(e.spans)).sum();
        let max_spans = max_spans.min(window.saturating_sub(out));
        let mut batch: Option<Batch> = None;
        for e in st.entries.range(start..) {
            let (spans, len) = (u64::from(e.spans), u64::from(e.len));
            match &mut batch {
                None if out > 0 && spans > max_spans => break,
                None => {
                    batch = Some(Batch {
                        first_seq: e.seq,
                        last_seq: e.seq,
                        spans,
                        bytes: len,
                        reads: vec![(e.segment, e.offset)],
                    });
                }
                Some(b) if b.spans + spans <= max_spans && b.bytes + len <= max_bytes => {
                    b.last_seq = e.seq;
                    b.spans += spans;
                    b.bytes += len;
                    b.reads.push((e.segment, e.offset));
                }
                Some(_) => break,
            }
        }
        if let Some(b) = &batch {
            st.next_unsent = b.last_seq + 1;
        }
        batch
    }

    /// Reads a batch's payloads, concatenated (a valid merged `ExportTraceServiceRequest`).
    /// Blocking I/O.
    pub fn read(&self, batch: &Batch) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(batch.bytes).unwrap_or(0));
        self.read_into(batch, &mut out)?;
        Ok(out)
    }

    /// Like [`read`](Self::read), appending to `out` (which may start with room for a frame
    /// header, so the payload is not copied again). Blocking I/O.
    pub fn read_into(&self, batch: &Batch, out: &mut Vec<u8>) -> io::Result<()> {
        let mut open: Option<(u64, File)> = None;
        for &(seg, offset) in &batch.reads {
            let file = match &open {
                Some((id, f)) if *id == seg => f,
                _ => {
                    &open
                        .insert((seg, File::open(segment::path(&self.shared.dir, seg))?))
                        .1
                }
            };
            segment::read_payload(file, offset, out)?;
        }
        Ok(())
    }

    /// Marks records `first..=last` done. Returns the new acknowledged sequence number when
    /// the done prefix advanced (then call [`persist`](Self::persist)).
    pub fn complete(&self, first: u64, last: u64) -> Option<u64> {
        let mut st = self.shared.state.lock();
        let start = st.entries.partition_point(|e| e.seq < first);
        let end = st.entries.partition_point(|e| e.seq <= last);
        for e in st.entries.range_mut(start..end) {
            e.done = true;
        }
        let before = st.acked;
        let (mut spans, mut bytes) = (0u64, 0u64);
        while let Some(e) = st.entries.front().copied().filter(|e| e.done) {
            st.entries.pop_front();
            st.acked = e.seq;
            spans += u64::from(e.spans);
            bytes += u64::from(e.len) + HEADER_BYTES as u64;
        }
        let stats = &self.shared.stats;
        stats.spans.fetch_sub(spans, Ordering::Relaxed);
        stats.bytes.fetch_sub(bytes, Ordering::Relaxed);
        let oldest = st.entries.front().map_or(0, |e| e.enqueued_ms);
        stats.oldest_ms.store(oldest, Ordering::Relaxed);
        (st.acked > before).then_some(st.acked)
    }

    /// Durably records `acked` in the cursor file, then deletes the segments it covers
    /// entirely (never the active one). Blocking I/O.
    pub fn persist(&self, acked: u64) -> io::Result<()> {
        self.shared.cursor.lock().store(acked)?;
        let mut doomed = Vec::new();
        {
            let mut st = self.shared.state.lock();
            while st.segments.len() > 1 && st.segments.front().is_some_and(|s| s.last_seq <= acked)
            {
                if let Some(s) = st.segments.pop_front() {
                    doomed.push(s);
                }
            }
        }
        let mut recycled = false;
        for s in doomed {
            let path = segment::path(&self.shared.dir, s.first_seq);
            if !recycled && self.recycle(&path) {
                recycled = true;
            } else {
                fs::remove_file(&path)?;
            }
            self.shared
                .stats
                .disk_bytes
                .fetch_sub(s.bytes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Makes the acknowledged segment at `path` the spare, unless one is ready or being
    /// written; `true` if it did. Its records stay until overwritten; their sequence numbers,
    /// lower than any later segment's name, end that segment's scan (`segment::scan`).
    fn recycle(&self, path: &Path) -> bool {
        let shared = &self.shared;
        if shared.preparing.swap(true, Ordering::AcqRel) {
            return false;
        }
        let done = match shared.spare.ready_bytes() {
            Ok(0) => match shared.spare.install(path) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(queue = %shared.name, error = %e, "forward queue: could not reuse a segment as the spare");
                    false
                }
            },
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(queue = %shared.name, error = %e, "forward queue: could not look for a spare segment");
                false
            }
        };
        shared.preparing.store(false, Ordering::Release);
        done
    }

    /// Stops the commit thread after the appends already queued (called at shutdown; the
    /// sender may still complete and persist acknowledgements).
    pub fn close(&self) {
        drop(self.commit.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            // A panic of the commit thread has been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.close();
    }
}

/// The commit thread's state.
struct Writer {
    shared: Arc<Shared>,
    file: File,
    /// First sequence number of the active segment (its name).
    active: u64,
    active_len: u64,
    next_seq: u64,
    segment_bytes: u64,
    failed: Option<String>,
    announced: Announced,
    commit_linger: Duration,
}

fn recover(name: &str, config: &QueueConfig) -> io::Result<(Arc<Shared>, Writer)> {
    let dir = &config.dir;
    fs::create_dir_all(dir)?;
    let spare = Spare::new(dir, SPARE_FILE);
    spare.clean()?;
    let cursor = Cursor::open(&dir.join(CURSOR_FILE))?;
    let acked = cursor.acked();
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| segment::parse_name(e.ok()?.file_name().to_str()?))
        .collect();
    ids.sort_unstable();
    let stats = Arc::new(QueueStats::default());
    let mut entries = VecDeque::new();
    let mut segments = VecDeque::new();
    let mut last_seq = acked;
    for (i, &id) in ids.iter().enumerate() {
        let path = segment::path(dir, id);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let scan = segment::scan(&file, id)?;
        let len = file.metadata()?.len();
        if scan.valid_end < len {
            // The unused zeros of a spare end a segment quietly. Other bytes are an
            // interrupted write, or (usually) the records of the file's earlier use.
            if !prealloc::is_zero(&file, scan.valid_end)? {
                tracing::info!(
                    queue = name,
                    segment = %path.display(),
                    dropped_bytes = len - scan.valid_end,
                    "forward queue: segment truncated after its last valid record \
                     (an interrupted write, or records of the file's earlier use)"
                );
            }
            file.set_len(scan.valid_end)?;
            file.sync_all()?;
        }
        let seg_last = scan.records.last().map_or(0, |r| r.header.seq);
        let is_last = i + 1 == ids.len();
        if !is_last && seg_last <= acked {
            fs::remove_file(&path)?;
            continue;
        }
        for r in &scan.records {
            // Acknowledged, or out of order (names sort in record order).
            if r.header.seq <= last_seq {
                continue;
            }
            last_seq = r.header.seq;
            entries.push_back(Entry {
                seq: r.header.seq,
                segment: id,
                offset: r.offset,
                len: r.header.len,
                spans: r.header.spans,
                enqueued_ms: r.header.enqueued_ms,
                done: false,
            });
            stats
                .spans
                .fetch_add(u64::from(r.header.spans), Ordering::Relaxed);
            stats.bytes.fetch_add(
                u64::from(r.header.len) + HEADER_BYTES as u64,
                Ordering::Relaxed,
            );
        }
        last_seq = last_seq.max(seg_last);
        stats
            .disk_bytes
            .fetch_add(scan.valid_end, Ordering::Relaxed);
        segments.push_back(SegmentInfo {
            first_seq: id,
            last_seq: seg_last,
            bytes: scan.valid_end,
        });
    }
    let mut next_seq = last_seq + 1;
    // Appends go to a fresh segment, unless the newest one is empty.
    let reuse = segments
        .back()
        .filter(|s| s.bytes == 0)
        .map(|s| s.first_seq);
    let active = if let Some(first_seq) = reuse {
        next_seq = next_seq.max(first_seq);
        first_seq
    } else {
        segments.push_back(SegmentInfo {
            first_seq: next_seq,
            last_seq: 0,
            bytes: 0,
        });
        next_seq
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(segment::path(dir, active))?;
    sync_dir(dir)?;
    if let Some(front) = entries.front() {
        stats.oldest_ms.store(front.enqueued_ms, Ordering::Relaxed);
    }
    if !entries.is_empty() {
        tracing::info!(
            queue = name,
            records = entries.len(),
            spans = stats.spans.load(Ordering::Relaxed),
            "forward queue: unacknowledged records recovered"
        );
    }
    let next_unsent = entries.front().map_or(next_seq, |e| e.seq);
    let shared = Arc::new(Shared {
        name: name.to_owned(),
        dir: dir.clone(),
        state: Mutex::new(State {
            entries,
            segments,
            acked,
            next_unsent,
        }),
        cursor: Mutex::new(cursor),
        notify: tokio::sync::Notify::new(),
        stats,
        commits: AtomicU64::new(0),
        spare,
        preparing: Arc::new(AtomicBool::new(false)),
    });
    let writer = Writer {
        shared: Arc::clone(&shared),
        file,
        active,
        active_len: 0,
        next_seq,
        segment_bytes: config.segment_bytes.max(1),
        failed: None,
        announced: config.announced.clone(),
        commit_linger: config.commit_linger,
    };
    writer.prepare_spare();
    Ok((shared, writer))
}

impl Writer {
    fn run(mut self, rx: &Receiver<Append>) {
        while let Ok(first) = rx.recv() {
            let group = group::gather(
                rx,
                first,
                MAX_GROUP,
                &self.announced,
                self.commit_linger,
                |_| true,
            );
            let result = self.commit(&group);
            if let Err(e) = &result {
                tracing::error!(queue = %self.shared.name, error = %e, "forward queue write failed");
            }
            for a in group {
                let answer = result.clone().map_err(|message| QueueError::Failed {
                    queue: self.shared.name.clone(),
                    message,
                });
                // The appender may have gone; the record is written anyway.
                a.done.call(answer);
            }
        }
    }

    fn commit(&mut self, group: &[Append]) -> Result<(), String> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        let result = self.write(group);
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result.map_err(|e| e.to_string())
    }

    /// Starts writing a zero-filled spare for the next rotation on its own thread, unless one
    /// is ready or being written. A failure only costs that rotation the spare. Called when
    /// the queue opens, and after a rotation that found no spare (no acknowledged segment was
    /// there to reuse, e.g. during an upstream outage).
    fn prepare_spare(&self) {
        if self.shared.preparing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (spare, preparing, bytes) = (
            self.shared.spare.clone(),
            Arc::clone(&self.shared.preparing),
            self.segment_bytes,
        );
        let queue = self.shared.name.clone();
        let spawned = std::thread::Builder::new()
            .name("fwd-queue-spare".to_owned())
            .spawn(move || {
                if let Err(e) = spare.prepare(bytes) {
                    tracing::warn!(queue, error = %e, "forward queue: could not write a spare segment");
                }
                preparing.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            self.shared.preparing.store(false, Ordering::Release);
            tracing::warn!(queue = %self.shared.name, error = %e, "forward queue: could not start the spare writer");
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let dir = &self.shared.dir;
        let path = segment::path(dir, self.next_seq);
        let (file, had_spare) = match self.shared.spare.take(&path)? {
            Some(file) => (file, true),
            None => (
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?,
                false,
            ),
        };
        sync_dir(dir)?;
        // In the steady state the acknowledged segment before this one becomes the next
        // spare (`Queue::persist`); without a spare now, none is coming that way.
        if !had_spare {
            self.prepare_spare();
        }
        self.file = file;
        self.active = self.next_seq;
        self.active_len = 0;
        self.shared.state.lock().segments.push_back(SegmentInfo {
            first_seq: self.active,
            last_seq: 0,
            bytes: 0,
        });
        Ok(())
    }

    fn write(&mut self, group: &[Append]) -> io::Result<()> {
        if self.active_len >= self.segment_bytes {
            self.rotate()?;
        }
        let now = now_ms();
        let mut buf =
            Vec::with_capacity(group.iter().map(|a| a.payload.len() + HEADER_BYTES).sum());
        let mut entries = Vec::with_capacity(group.len());
        for a in group {
            let len = u32::try_from(a.payload.len())
                .ok()
                .filter(|l| *l as usize <= segment::MAX_PAYLOAD_BYTES)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
            let header = RecordHeader {
                len,
                seq: self.next_seq,
                spans: a.spans,
                enqueued_ms: now,
            };
            entries.push(Entry {
                seq: self.next_seq,
                segment: self.active,
                offset: self.active_len + buf.len() as u64,
                len,
                spans: a.spans,
                enqueued_ms: now,
                done: false,
            });
            segment::encode(&mut buf, header, &a.payload);
            self.next_seq += 1;
        }
        self.file.write_all_at(&buf, self.active_len)?;
        self.file.sync_data()?;
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.active_len += buf.len() as u64;
        let stats = &self.shared.stats;
        let (spans, last) = (
            entries.iter().map(|e| u64::from(e.spans)).sum::<u64>(),
            self.next_seq - 1,
        );
        {
            let mut st = self.shared.state.lock();
            if st.entries.is_empty() {
                stats.oldest_ms.store(now, Ordering::Relaxed);
            }
            st.entries.extend(entries);
            if let Some(seg) = st.segments.back_mut() {
                seg.last_seq = last;
                seg.bytes = self.active_len;
            }
        }
        stats.spans.fetch_add(spans, Ordering::Relaxed);
        stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        stats
            .disk_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.shared.notify.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
