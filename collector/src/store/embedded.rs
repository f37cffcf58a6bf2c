//! The default on-disk store: a write-ahead log, zstd-compressed span blocks in append-only
//! segment files, and small in-memory summaries that let queries skip most blocks.
//!
//! Design and measurements: `collector/docs/storage.md`.
//!
//! # Data directory
//!
//! ```text
//! wal.log              batches acknowledged since the last seal began (checksummed records)
//! wal-0000000001.log   retired WAL files whose block is being sealed (deleted once durable)
//! seg-0000000001.tld   blocks of ~4096 spans, zstd, each with a summary and a tag filter
//! seg-0000000002.tld   ...
//! LOCK                 pid and start time of the process using the directory
//! ```
//!
//! Opening a directory that a live process (or another store of this process) holds fails
//! with [`StoreError::Locked`]; the `LOCK` of a crashed process is taken over.
//!
//! # Durability
//!
//! [`SpanStore::write_batch`] hands the encoded batch to the commit thread, which appends every
//! queued batch to the WAL in one write that is durable when it returns (group commit), and
//! only then answers: a direct, synchronous `pwrite` (`O_DIRECT | O_DSYNC`), or, where the file
//! system has no direct I/O or [`EmbeddedConfig::direct_io`] is off, a buffered `writev` and an
//! `fdatasync`. While receivers have announced batches they are still decoding
//! ([`SpanStore::incoming`]), it first waits for those, at most `commit_linger` (1 ms; see
//! [`crate::group`]). When enough spans have accumulated it retires the WAL file (`wal.log` becomes
//! `wal-N.log`) and hands the spans to the sealer thread, which compresses them into a block,
//! appends it to the current segment, fsyncs it, and deletes the retired WAL file; group
//! commits continue meanwhile. On open, torn tails of the WAL files and of the segments are
//! truncated, records failing their checksum are skipped and counted (with an error log), and
//! WAL records not yet covered by a block are replayed, oldest file first.
//!
//! # Retention
//!
//! Whole segments are deleted when their newest span ended before the retention horizon, and
//! the oldest segments are deleted while the directory is over `max_disk_bytes`. Checked after
//! every block, on [`SpanStore::flush`] and every `retention_check_interval`, on the sealer thread.
//!
//! # Example
//!
//! ```no_run
//! use tracelight_collector::store::{EmbeddedConfig, EmbeddedStore, SpanStore};
//!
//! # fn main() -> Result<(), tracelight_collector::store::StoreError> {
//! let mut config = EmbeddedConfig::new("./tracelight-data");
//! config.max_disk_bytes = 2 << 30;
//! let store = EmbeddedStore::open(config)?;
//! println!("{} spans stored", store.stats().spans);
//! store.flush()?;
//! # Ok(())
//! # }
//! ```

mod block;
mod chunk;
mod codec;
mod filter;
mod lock;
mod prescan;
mod query;
mod record;
mod state;
mod tags;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::{Operation, SpanStore, StoreError, StoreStats, TraceQuery, WriteDone};
use crate::group::{self, Announced, Incoming};
use crate::model::{BatchView, DependencyLink, SpanBatch, SpanKind, Trace, TraceId};
use state::State;
use writer::{Command, Writer};

/// Configuration of an [`EmbeddedStore`]. Build with [`EmbeddedConfig::new`], then adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmbeddedConfig {
    /// Data directory; created when missing. One store per directory at a time.
    pub dir: PathBuf,
    /// Spans whose trace segment ended longer ago than this are deleted (default 7 days).
    pub retention: Duration,
    /// Upper bound of the directory size; the oldest segments are deleted above it. The
    /// directory may exceed it by up to one segment (an eighth of the cap at most) and the WAL.
    pub max_disk_bytes: u64,
    /// Spans per block: more compress better, fewer make reads cheaper (default 4096).
    pub block_spans: usize,
    /// Target segment file size, the unit of deletion (default 64 MiB, at most
    /// `max_disk_bytes / 8`).
    pub segment_bytes: u64,
    /// Memory for decompressed blocks and tag filters kept for queries (default 32 MiB).
    pub cache_bytes: usize,
    /// zstd level of blocks (default 1).
    pub compression_level: i32,
    /// How often retention runs when no block is being written (default 60 s).
    pub retention_check_interval: Duration,
    /// Batches that may wait for the commit thread (default 64); beyond it writes block
    /// ([`SpanStore::write_batch`]) or are refused ([`SpanStore::submit_prepared`]).
    pub queue_depth: usize,
    /// Longest the commit thread waits for announced batches ([`SpanStore::incoming`])
    /// before it writes and fsyncs what it has (default 1 ms; zero: never waits).
    pub commit_linger: Duration,
    /// Write the WAL with direct, synchronous writes (`O_DIRECT | O_DSYNC`: one `pwrite` per
    /// group commit, no page cache, no `fdatasync`) where the file system supports them
    /// (default `true`); `false`, or a file system without direct I/O, commits through the
    /// page cache and an `fdatasync`. Both are equally durable; direct writes cost less CPU.
    pub direct_io: bool,
}

impl EmbeddedConfig {
    /// Default retention: 7 days.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Default disk cap: 10 GiB.
    pub const DEFAULT_MAX_DISK_BYTES: u64 = 10 << 30;
    /// Default number of batches that may wait for the commit thread.
    pub const DEFAULT_QUEUE_DEPTH: usize = 64;
    /// Default number of spans per block.
    pub const DEFAULT_BLOCK_SPANS: usize = 4096;
    /// Default segment file size.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// Default size of the decompressed-block cache.
    pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;
    /// Default zstd level of blocks: 1 (measured on the bench workload: level 3 costs ~2× the
    /// sealer's CPU for ~7 % fewer bytes, 64.0 against 68.6 bytes per span).
    pub const DEFAULT_COMPRESSION_LEVEL: i32 = 1;
    /// Default commit linger ([`group::DEFAULT_LINGER`]).
    pub const DEFAULT_COMMIT_LINGER: Duration = group::DEFAULT_LINGER;

    /// Defaults for a store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            retention: Self::DEFAULT_RETENTION,
            max_disk_bytes: Self::DEFAULT_MAX_DISK_BYTES,
            block_spans: Self::DEFAULT_BLOCK_SPANS,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
            compression_level: Self::DEFAULT_COMPRESSION_LEVEL,
            retention_check_interval: Duration::from_secs(60),
            queue_depth: Self::DEFAULT_QUEUE_DEPTH,
            commit_linger: Self::DEFAULT_COMMIT_LINGER,
            direct_io: true,
        }
    }
}

/// What readers and the writer threads share.
#[derive(Debug)]
struct Shared {
    state: RwLock<State>,
    reader: state::Reader,
    /// Batches announced and not yet submitted ([`SpanStore::incoming`]): the commit thread
    /// waits a little for them before an fsync.
    incoming: Announced,
    /// Group commits (WAL fsyncs) since open.
    commits: AtomicU64,
}

impl Shared {
    fn new(config: &EmbeddedConfig) -> Self {
        Self {
            state: RwLock::new(State::default()),
            reader: state::Reader::new(config.cache_bytes),
            incoming: Announced::default(),
            commits: AtomicU64::new(0),
        }
    }
}

/// The crash-safe on-disk [`SpanStore`]. See the module docs.
#[derive(Debug)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: SyncSender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Released after the writer threads stopped (fields drop after [`Drop::drop`]).
    lock: Mutex<Option<lock::DirLock>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `config.dir`, recovering from a crash if needed: torn
    /// tails are truncated, corrupt records skipped and logged, the WAL replayed.
    ///
    /// Only one store may use a directory at a time: a directory in use fails with
    /// [`StoreError::Locked`].
    pub fn open(config: EmbeddedConfig) -> Result<Self, StoreError> {
        let mut config = config;
        std::fs::create_dir_all(&config.dir)?;
        let lock = lock::DirLock::acquire(&config.dir)?;
        config.block_spans = config.block_spans.max(1);
        config.retention_check_interval = config
            .retention_check_interval
            .max(Duration::from_millis(10));
        let shared = Arc::new(Shared::new(&config));
        let queue_depth = config.queue_depth.max(1);
        let writer = Writer::open(config, Arc::clone(&shared))?;
        let (tx, rx) = sync_channel(queue_depth);
        let handle = std::thread::Builder::new()
            .name("span-store-writer".to_owned())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            shared,
            tx,
            writer: Mutex::new(Some(handle)),
            lock: Mutex::new(Some(lock)),
        })
    }

    fn call(&self, make: impl FnOnce(writer::Reply) -> Command) -> Result<(), StoreError> {
        let (reply, rx) = sync_channel(1);
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Records that failed their checksum or could not be decoded since open (each is logged).
    pub fn corrupt_records(&self) -> u64 {
        self.shared.reader.corrupt.load(Ordering::Relaxed)
    }

    /// Group commits since open: each wrote and fsynced one or more batches to the WAL.
    pub fn group_commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Applies retention now (it also runs on its own; see [`EmbeddedConfig`]).
    pub fn enforce_retention(&self) -> Result<(), StoreError> {
        self.call(Command::Retention)
    }

    /// Test support: stops the store the way a crash would, without sealing the recent spans
    /// into a block (they stay only in the WAL). With `mid_seal`, a block is written and
    /// fsynced but the WAL is left untouched, the narrowest crash window of a seal.
    #[doc(hidden)]
    pub fn simulate_crash(self, mid_seal: bool) -> Result<(), StoreError> {
        let r = self.call(|reply| Command::Crash { mid_seal, reply });
        self.join();
        if let Some(lock) = self.lock.lock().take() {
            lock.abandon();
        }
        r
    }

    fn join(&self) {
        if let Some(handle) = self.writer.lock().take()
            && handle.join().is_err()
        {
            tracing::error!("the span store writer thread panicked");
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if self.writer.lock().is_some() {
            if let Err(e) = self.call(Command::Shutdown) {
                tracing::error!(error = %e, "sealing the span store at shutdown failed");
            }
            self.join();
        }
    }
}

/// A batch encoded and summarised ahead of its write ([`SpanStore::prepare`]).
#[derive(Debug)]
pub(crate) struct PreparedChunk {
    chunk: chunk::Chunk,
    crc: u32,
}

impl PreparedChunk {
    /// Encodes and summarises a batch (the work of a write that needs the spans).
    fn new(batch: &BatchView<'_>) -> Self {
        let (data, traces) = codec::encode_batch_traces(batch);
        let crc = record::crc(&data);
        let sum = chunk::Summary::of_batch_with_traces(batch, traces);
        Self {
            chunk: chunk::Chunk { data, sum },
            crc,
        }
    }
}

impl EmbeddedStore {
    /// Writes a chunk and waits until it is durable (a blocking caller).
    fn write_chunk(&self, prepared: PreparedChunk) -> Result<(), StoreError> {
        if prepared.chunk.sum.spans == 0 {
            return Ok(());
        }
        self.call(|reply| Command::Write {
            chunk: prepared.chunk,
            crc: prepared.crc,
            done: WriteDone::new(move |result| {
                let _ = reply.send(result);
            }),
        })
    }

    /// Queues a chunk for the commit thread without waiting (for room or for the fsync).
    fn submit_chunk(&self, prepared: PreparedChunk, done: WriteDone) -> Result<(), StoreError> {
        if prepared.chunk.sum.spans == 0 {
            done.call(Ok(()));
            return Ok(());
        }
        self.tx
            .try_send(Command::Write {
                chunk: prepared.chunk,
                crc: prepared.crc,
                done,
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Busy,
                TrySendError::Disconnected(_) => StoreError::Closed,
            })
    }
}

impl SpanStore for EmbeddedStore {
    fn write_batch(&self, batch: SpanBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Encoded and summarised once, here, while the spans are hot in this thread's cache;
        // the spans are freed here too. The store's threads only see the chunk.
        let prepared = PreparedChunk::new(&BatchView::from_spans(&batch.spans));
        drop(batch);
        self.write_chunk(prepared)
    }

    fn prepare(&self, batch: &BatchView<'_>) -> Option<super::Prepared> {
        Some(super::Prepared(super::PreparedInner::Embedded(
            PreparedChunk::new(batch),
        )))
    }

    fn write_prepared(&self, prepared: super::Prepared) -> Result<(), StoreError> {
        match prepared.0 {
            super::PreparedInner::Embedded(p) => self.write_chunk(p),
            super::PreparedInner::Nothing => Ok(()),
        }
    }

    fn submit_prepared(
        &self,
        prepared: super::Prepared,
        done: WriteDone,
    ) -> Result<(), StoreError> {
        match prepared.0 {
            super::PreparedInner::Embedded(p) => self.submit_chunk(p, done),
            super::PreparedInner::Nothing => {
                done.call(Ok(()));
                Ok(())
            }
        }
    }

    fn incoming(&self) -> Incoming {
        self.shared.incoming.announce()
    }

    fn get_trace(&self, trace_id: TraceId) -> Result<Option<Trace>, StoreError> {
        query::get_trace(&self.shared, trace_id)
    }

    fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.shared.state.read().services())
    }

    fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        Ok(self.shared.state.read().operations(service, kind))
    }

    fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        query::find_traces(&self.shared, query)
    }

    fn dependencies(&self, start_ns: u64, end_ns: u64) -> Result<Vec<DependencyLink>, StoreError> {
        query::dependencies(&self.shared, start_ns, end_ns)
    }

    /// `traces` is approximate: a trace whose spans landed in several blocks (or recent
    /// batches) counts once per block (or batch).
    fn stats(&self) -> StoreStats {
        let st = self.shared.state.read();
        StoreStats {
            spans: st
                .blocks
                .iter()
                .map(|b| u64::from(b.meta.spans))
                .sum::<u64>()
                + st.memtable_spans as u64,
            traces: st
                .blocks
                .iter()
                .map(|b| u64::from(b.meta.traces))
                .sum::<u64>()
                + st.memtable
                    .iter()
                    .map(|c| c.sum.traces.len() as u64)
                    .sum::<u64>(),
            bytes: st.disk_bytes(),
            wal_commits: self.group_commits(),
        }
    }

    /// Seals the recent spans into a block (they are already durable in the WAL) and applies
    /// retention.
    fn flush(&self) -> Result<(), StoreError> {
        self.call(Command::Flush)
    }
}
