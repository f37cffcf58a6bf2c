//! The writer threads: the commit thread (WAL group commit, WAL rotation) and the sealer thread
//! ([`sealer`]: building blocks into segments, retention); and the recovery that runs at open.

use std::fs::{self, File, OpenOptions};
use std::io::{IoSlice, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::block::BlockMeta;
use super::chunk::{Chunk, Summary};
use super::codec::Decoded;
use super::record::{self, KIND_BLOCK, KIND_WAL, Part};
use super::state::{Block, Segment, State};
use super::{EmbeddedConfig, Shared};
use crate::group;
use crate::prealloc::Spare;
use crate::store::{StoreError, WriteDone};

mod direct;
mod sealer;
#[cfg(test)]
mod tests;
mod wal_file;

use direct::DirectLog;
use sealer::Sealer;

const WAL_FILE: &str = "wal.log";
/// Retired WAL files (`wal-0000000001.log`): closed at a seal, deleted once its block is
/// durable.
const WAL_PREFIX: &str = "wal-";
const WAL_SUFFIX: &str = ".log";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".tld";
/// Most commands folded into one group commit.
const MAX_GROUP: usize = 256;
/// The next WAL file, written ahead (see [`crate::prealloc`]).
const SPARE_FILE: &str = "wal.spare";
/// Smallest and largest spare WAL file. The size follows the last WAL files
/// ([`spare_bytes`]).
const SPARE_MIN_BYTES: u64 = 256 << 10;
const SPARE_MAX_BYTES: u64 = 64 << 20;

fn spare(dir: &Path) -> Spare {
    Spare::new(dir, SPARE_FILE)
}

/// The spare's size after WAL files that grew to `last_wal_bytes` before rotation: a quarter
/// more, within [`SPARE_MIN_BYTES`]..=[`SPARE_MAX_BYTES`] and at most a sixteenth of
/// `max_disk_bytes`.
fn spare_bytes(last_wal_bytes: u64, max_disk_bytes: u64) -> u64 {
    let want = last_wal_bytes.saturating_add(last_wal_bytes / 4);
    want.clamp(SPARE_MIN_BYTES, SPARE_MAX_BYTES)
        .min(max_disk_bytes / 16)
}

pub(crate) type Reply = SyncSender<Result<(), StoreError>>;

/// A queued write: the batch's chunk (WAL bytes and summary), the bytes' crc, and what to call
/// with the outcome.
type Write = (Chunk, u32, WriteDone);

/// A request to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Append a batch (already encoded and summarised by the caller) and make it durable.
    Write {
        chunk: Chunk,
        crc: u32,
        done: WriteDone,
    },
    /// Seal the recent spans into a block.
    Flush(Reply),
    /// Apply retention now.
    Retention(Reply),
    /// Seal and stop.
    Shutdown(Reply),
    /// Stop at once, as a crash would; optionally after writing a block but before
    /// truncating the WAL (the most delicate crash point).
    Crash { mid_seal: bool, reply: Reply },
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{id:010}{SEGMENT_SUFFIX}"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Memtable chunks handed to the sealer: the oldest unsealed ones, in write order.
#[derive(Debug)]
struct Frozen {
    chunks: Vec<Arc<Chunk>>,
    /// Highest WAL sequence number among them.
    seq_max: u64,
    /// Retired WAL files (path, bytes on disk) holding nothing but these spans and earlier
    /// ones: deleted once their block is durable.
    wal_files: Vec<(PathBuf, u64)>,
    /// Bytes of records in the newest of them (sizes the next spare WAL file).
    wal_used: u64,
}

/// A request to the sealer thread. Processed in order, so a reply also means every earlier
/// seal is done.
#[derive(Debug)]
enum Job {
    Seal(Frozen),
    /// Apply retention, then answer (with the error of a seal that still fails, if any).
    Flush(Reply),
    Retention(Reply),
    Shutdown(Reply),
    Crash {
        frozen: Option<Frozen>,
        reply: Reply,
    },
}

/// Seal jobs that may wait for the sealer before the commit loop blocks (bounds the memtable
/// to about `(2 + SEAL_QUEUE) × block_spans` spans).
const SEAL_QUEUE: usize = 1;

/// The commit thread's state: the WAL and the memtable's tail.
pub(crate) struct Writer {
    cfg: EmbeddedConfig,
    shared: Arc<Shared>,
    wal: File,
    /// The WAL opened for direct writes; `None` where the file system has no direct I/O (then
    /// commits go through `wal` and an `fdatasync`).
    direct: Option<DirectLog>,
    /// Bytes of records in the WAL file.
    wal_len: u64,
    /// Its size on disk: larger than `wal_len` while records fill a spare.
    wal_alloc: u64,
    /// Number for the next retired WAL file name.
    next_wal_id: u64,
    /// Retired WAL files whose spans are in the memtable and not yet handed to the sealer.
    retired: Vec<(PathBuf, u64)>,
    next_seq: u64,
    /// Sequence number of the newest WAL record whose spans are in the memtable.
    memtable_seq: u64,
    /// The WAL file's salt, carried by every record ([`wal_file`]); `None` in a file written
    /// before files had one.
    salt: Option<u64>,
    /// Set after a failed WAL write, fsync or rotation: every later write fails.
    failed: Option<String>,
    sealer: SyncSender<Job>,
    sealer_thread: Option<JoinHandle<()>>,
}

fn retired_wal_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{WAL_PREFIX}{id:010}{WAL_SUFFIX}"))
}

impl Writer {
    /// Opens the data directory: loads segment summaries, replays the WAL files, truncates torn
    /// tails, and starts the sealer thread.
    pub(crate) fn open(cfg: EmbeddedConfig, shared: Arc<Shared>) -> Result<Self, StoreError> {
        fs::create_dir_all(&cfg.dir)?;
        spare(&cfg.dir).clean()?;
        let mut ids: Vec<u32> = Vec::new();
        let mut wal_ids: Vec<u64> = Vec::new();
        for e in fs::read_dir(&cfg.dir)? {
            let Ok(name) = e?.file_name().into_string() else {
                continue;
            };
            if let Some(id) = name
                .strip_prefix(SEGMENT_PREFIX)
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse().ok())
            {
                ids.push(id);
            } else if let Some(id) = name
                .strip_prefix(WAL_PREFIX)
                .and_then(|n| n.strip_suffix(WAL_SUFFIX))
                .and_then(|n| n.parse().ok())
            {
                wal_ids.push(id);
            }
        }
        ids.sort_unstable();
        wal_ids.sort_unstable();
        let mut st = State::default();
        let mut persisted_seq = 0;
        for &id in &ids {
            let path = segment_path(&cfg.dir, id);
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let file = Arc::new(file);
            let scan = record::scan(&file)?;
            report_scan(
                &shared,
                &path,
                &scan.skipped,
                scan.valid_end,
                file.metadata()?.len(),
            );
            if scan.valid_end < file.metadata()?.len() {
                file.set_len(scan.valid_end)?;
                file.sync_all()?;
            }
            let mut segment = Segment {
                file: Arc::clone(&file),
                bytes: scan.valid_end,
                max_end: 0,
            };
            for rec in scan.records {
                let meta = match (rec.kind, BlockMeta::parse(&rec.meta)) {
                    (KIND_BLOCK, Ok(meta)) => meta,
                    (_, Err(e)) => {
                        corrupt(&shared, &path, rec.offset, e.0);
                        continue;
                    }
                    (_, Ok(_)) => {
                        corrupt(&shared, &path, rec.offset, "unexpected record kind");
                        continue;
                    }
                };
                persisted_seq = persisted_seq.max(meta.seq_max);
                segment.max_end = segment.max_end.max(meta.max_end);
                let ops = meta
                    .ops
                    .iter()
                    .map(|(svc, name, kind, n)| {
                        let id = st.op_id(svc, name, *kind);
                        st.add_op_count(id, *n as i64);
                        (id, *n)
                    })
                    .collect();
                st.blocks.push(Arc::new(Block {
                    segment: id,
                    file: Arc::clone(&file),
                    offset: rec.offset,
                    meta,
                    ops,
                    tag_filter: rec.aux,
                    data: rec.data,
                    corrupt: AtomicBool::new(false),
                    filter_damaged: AtomicBool::new(false),
                }));
            }
            st.segments.insert(id, segment);
        }

        // WAL replay: the retired files (whose block may not have been written) in order,
        // then the active one.
        let mut max_seq = persisted_seq;
        let mut memtable_seq = persisted_seq;
        let mut retired = Vec::new();
        let mut wal_total = 0;
        // Returns the valid length, whether any record was replayed, and the file's salt.
        let mut replay = |path: &Path,
                          wal: &File,
                          st: &mut State|
         -> Result<(u64, bool, Option<u64>), StoreError> {
            let mut replayed = false;
            let scan = wal_file::scan(wal)?;
            let file_len = wal.metadata()?.len();
            // A spare's unused zeros and the stale records of a recycled file end the log
            // quietly; other dropped bytes are reported.
            let reported_len = if scan.quiet_tail {
                scan.valid_end
            } else {
                file_len
            };
            report_scan(&shared, path, &scan.skipped, scan.valid_end, reported_len);
            for offset in &scan.bad {
                corrupt(&shared, path, *offset, "bad WAL record header");
            }
            if scan.valid_end < file_len {
                wal.set_len(scan.valid_end)?;
                wal.sync_all()?;
            }
            for (seq, rec) in &scan.records {
                let seq = *seq;
                max_seq = max_seq.max(seq);
                if seq <= persisted_seq {
                    continue; // already sealed into a block before the crash
                }
                let chunk = match read_wal_record(wal, rec.data) {
                    Ok(chunk) => chunk,
                    Err(reason) => {
                        corrupt(&shared, path, rec.offset, reason);
                        continue;
                    }
                };
                st.push_chunk(Arc::new(chunk));
                memtable_seq = seq;
                replayed = true;
            }
            Ok((scan.valid_end, replayed, scan.salt))
        };
        let mut deleted = false;
        for &id in &wal_ids {
            let path = retired_wal_path(&cfg.dir, id);
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            match replay(&path, &file, &mut st)? {
                // Entirely covered by a block (the crash came before its deletion): delete it
                // now, so that retention deleting that block can never revive its spans.
                (_, false, _) => {
                    fs::remove_file(&path)?;
                    deleted = true;
                }
                (len, true, _) => {
                    wal_total += len;
                    retired.push((path, len));
                }
            }
        }
        if deleted {
            sync_dir(&cfg.dir)?;
        }
        let wal_path = cfg.dir.join(WAL_FILE);
        let mut wal = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&wal_path)?;
        let (mut wal_len, _, mut salt) = replay(&wal_path, &wal, &mut st)?;
        wal.seek(SeekFrom::Start(wal_len))?;
        if wal_len == 0 {
            salt = Some(wal_file::start(&mut wal)?);
            wal.sync_data()?;
            wal_len = wal_file::head_len();
        }
        st.wal_bytes = wal_total + wal_len + spare(&cfg.dir).ready_bytes()?;

        // Append to the last segment, or start the first one.
        let (active, active_file, active_len) = match st.segments.iter().next_back() {
            Some((id, seg)) => (*id, Arc::clone(&seg.file), seg.bytes),
            None => {
                let file = create_segment(&cfg.dir, 1)?;
                st.segments.insert(
                    1,
                    Segment {
                        file: Arc::clone(&file),
                        bytes: 0,
                        max_end: 0,
                    },
                );
                (1, file, 0)
            }
        };
        let spans = st.memtable_spans;
        let blocks = st.blocks.len();
        *shared.state.write() = st;
        tracing::info!(
            dir = %cfg.dir.display(),
            blocks,
            recovered_spans = spans,
            "span store opened"
        );
        let mut sealer = Sealer {
            compressor: zstd::bulk::Compressor::new(cfg.compression_level)?,
            active,
            active_file,
            active_len,
            carry: None,
            last_retention: Instant::now(),
            shared: Arc::clone(&shared),
            cfg: cfg.clone(),
        };
        let (sealer_tx, sealer_rx) = sync_channel(SEAL_QUEUE);
        let mut cfg = cfg;
        let direct = open_direct(&mut cfg, &wal_path, &wal, wal_len)?;
        let mut writer = Self {
            wal,
            direct,
            wal_len,
            wal_alloc: wal_len,
            next_wal_id: wal_ids.last().map_or(1, |id| id + 1),
            retired,
            next_seq: max_seq + 1,
            memtable_seq,
            salt,
            failed: None,
            sealer: sealer_tx,
            sealer_thread: None,
            shared,
            cfg,
        };
        if spans >= writer.cfg.block_spans
            && let Some(frozen) = writer.freeze()?
        {
            sealer.seal(frozen, false)?;
        }
        sealer.enforce_retention()?;
        writer.sealer_thread = Some(
            std::thread::Builder::new()
                .name("span-store-sealer".to_owned())
                .spawn(move || sealer.run(sealer_rx))?,
        );
        Ok(writer)
    }

    /// The thread body: serves commands until shutdown or until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Command>) {
        loop {
            let Ok(first) = rx.recv() else {
                let (reply, _rx) = sync_channel(1);
                self.stop(Command::Shutdown(reply));
                return;
            };
            let cmds = group::gather(
                &rx,
                first,
                MAX_GROUP,
                &self.shared.incoming,
                self.cfg.commit_linger,
                |cmd| matches!(cmd, Command::Write { .. }),
            );
            let mut writes = Vec::new();
            for cmd in cmds {
                match cmd {
                    Command::Write { chunk, crc, done } => writes.push((chunk, crc, done)),
                    control => {
                        self.commit(std::mem::take(&mut writes));
                        if self.control(control) {
                            return;
                        }
                    }
                }
            }
            self.commit(writes);
            let unfrozen = {
                let st = self.shared.state.read();
                st.memtable_spans - st.frozen_spans
            };
            if unfrozen >= self.cfg.block_spans {
                self.hand_over();
            }
        }
    }

    /// Freezes the unsealed spans and queues them for the sealer (blocks while it is busy
    /// with earlier ones).
    fn hand_over(&mut self) {
        match self.freeze() {
            Ok(Some(frozen)) => self.send(Job::Seal(frozen)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "rotating the WAL failed; the store refuses further writes");
                self.failed = Some(e.to_string());
            }
        }
    }

    fn send(&self, job: Job) {
        if self.sealer.send(job).is_err() {
            tracing::error!("the span store sealer thread is gone");
        }
    }

    /// Takes the memtable spans not yet handed to the sealer, after retiring the WAL file
    /// that holds them (renamed to `wal-N.log`, replaced by an empty `wal.log`).
    fn freeze(&mut self) -> Result<Option<Frozen>, StoreError> {
        // One guard: two read guards in one expression deadlock with parking_lot's fair RwLock
        // when the sealer queues for the write lock between them.
        let all_frozen = {
            let st = self.shared.state.read();
            st.frozen == st.memtable.len()
        };
        if all_frozen {
            return Ok(None);
        }
        if self.failed.is_some() {
            return Ok(None);
        }
        let wal_path = self.cfg.dir.join(WAL_FILE);
        let retired = retired_wal_path(&self.cfg.dir, self.next_wal_id);
        fs::rename(&wal_path, &retired)?;
        self.next_wal_id += 1;
        self.retired
            .push((retired, self.wal_alloc.max(self.wal_len)));
        let wal_used = self.wal_len;
        // A spare's bytes were counted when the sealer wrote it.
        let (mut wal, wal_alloc) = match spare(&self.cfg.dir).take(&wal_path)? {
            Some(wal) => {
                let len = wal.metadata()?.len();
                (wal, len)
            }
            None => (
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&wal_path)?,
                0,
            ),
        };
        let salt = wal_file::start(&mut wal)?;
        // The new name must be durable before a record in it is acknowledged.
        sync_dir(&self.cfg.dir)?;
        // The head is made durable by the first commit, which writes its block again.
        self.direct = open_direct(&mut self.cfg, &wal_path, &wal, wal_file::head_len())?;
        self.wal = wal;
        self.wal_len = wal_file::head_len();
        // The head written into a new (empty) file grows it: counted like a commit's growth.
        let grown = self.wal_len.saturating_sub(wal_alloc);
        self.wal_alloc = wal_alloc + grown;
        self.salt = Some(salt);
        let chunks = {
            let mut st = self.shared.state.write();
            st.wal_bytes += grown;
            let from = st.frozen;
            st.frozen = st.memtable.len();
            st.frozen_spans = st.memtable_spans;
            st.memtable[from..].to_vec()
        };
        Ok(Some(Frozen {
            chunks,
            seq_max: self.memtable_seq,
            wal_files: std::mem::take(&mut self.retired),
            wal_used,
        }))
    }

    /// Hands the remaining spans over (unless `Crash { mid_seal: false }`), stops the sealer
    /// with `cmd` and waits for it.
    fn stop(&mut self, cmd: Command) {
        let job = match cmd {
            Command::Shutdown(reply) => {
                self.hand_over();
                Job::Shutdown(reply)
            }
            Command::Crash { mid_seal, reply } => {
                let frozen = if mid_seal {
                    match self.freeze() {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            None
                        }
                    }
                } else {
                    None
                };
                Job::Crash { frozen, reply }
            }
            _ => return,
        };
        self.send(job);
        if let Some(handle) = self.sealer_thread.take()
            && handle.join().is_err()
        {
            tracing::error!("the span store sealer thread panicked");
        }
    }

    /// Handles a control command; `true` means stop.
    fn control(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Write { .. } => false,
            Command::Flush(reply) => {
                self.hand_over();
                self.send(Job::Flush(reply));
                false
            }
            Command::Retention(reply) => {
                self.send(Job::Retention(reply));
                false
            }
            stop @ (Command::Shutdown(_) | Command::Crash { .. }) => {
                self.stop(stop);
                true
            }
        }
    }

    /// Group commit: one write and one fsync for every queued batch.
    fn commit(&mut self, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        if let Some(reason) = &self.failed {
            for (.., done) in writes {
                done.call(Err(StoreError::Io(std::io::Error::other(format!(
                    "the WAL is unusable after an earlier failure: {reason}"
                )))));
            }
            return;
        }
        // Record heads in one buffer; the chunks' bytes are written from where they are
        // (`writev`), not copied.
        let mut heads = Vec::with_capacity(writes.len() * 48);
        let mut ends = Vec::with_capacity(writes.len());
        let first_seq = self.next_seq;
        for (chunk, crc, _) in &writes {
            let meta = wal_file::record_meta(self.next_seq, self.salt);
            self.next_seq += 1;
            record::frame_head_into(
                &mut heads,
                KIND_WAL,
                &meta,
                &[],
                record::crc(&[]),
                chunk.data.len(),
                *crc,
            );
            ends.push(heads.len());
        }
        let mut slices = Vec::with_capacity(2 * writes.len());
        let mut from = 0;
        for ((chunk, ..), end) in writes.iter().zip(ends) {
            slices.push(IoSlice::new(&heads[from..end]));
            slices.push(IoSlice::new(&chunk.data));
            from = end;
        }
        let written: usize = slices.iter().map(|s| s.len()).sum();
        // Where the write ended on disk: past the records when a direct write pads their last
        // block with zeros.
        let mut result = match &mut self.direct {
            Some(direct) => {
                let parts: Vec<&[u8]> = slices.iter().map(|s| &**s).collect();
                direct.append(&parts).map(Some)
            }
            None => Ok(None),
        };
        if let Err(e) = &result
            && direct::refused(e)
        {
            // The file system opened the WAL for direct I/O but refuses the writes (it checks
            // alignment or flags only then): nothing was written; commit buffered from now on.
            tracing::warn!(
                error = %e,
                "the WAL's direct writes are refused; committing through the page cache and fdatasync"
            );
            self.direct = None;
            self.cfg.direct_io = false; // not tried again for the next WAL files
            result = self.wal.seek(SeekFrom::Start(self.wal_len)).map(|_| None);
        }
        if self.direct.is_none() && result.is_ok() {
            result = write_all_vectored(&mut self.wal, &mut slices)
                .and_then(|()| self.wal.sync_data())
                .map(|()| None);
        }
        drop(slices);
        let end = match result {
            Ok(end) => end,
            Err(e) => {
                tracing::error!(error = %e, "WAL write failed; the store refuses further writes");
                self.failed = Some(e.to_string());
                for (.., done) in writes {
                    done.call(Err(StoreError::Io(std::io::Error::new(
                        e.kind(),
                        e.to_string(),
                    ))));
                }
                return;
            }
        };
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        let written = written as u64;
        self.wal_len += written;
        // Records past the end of a spare (or in a file that had none) grow the file.
        let grown = end.unwrap_or(self.wal_len).saturating_sub(self.wal_alloc);
        self.wal_alloc += grown;
        let mut replies = Vec::with_capacity(writes.len());
        let mut fresh = Vec::with_capacity(writes.len());
        for (chunk, _, done) in writes {
            fresh.push(Arc::new(chunk));
            replies.push(done);
        }
        {
            let mut st = self.shared.state.write();
            st.wal_bytes += grown;
            for chunk in fresh {
                st.push_chunk(chunk);
            }
        }
        self.memtable_seq = first_seq + replies.len() as u64 - 1;
        for done in replies {
            done.call(Ok(()));
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dir", &self.cfg.dir)
            .field("wal_len", &self.wal_len)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

/// `write_all` over several buffers (`Write::write_all_vectored` is unstable).
fn write_all_vectored(file: &mut File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The WAL at `path` (open as `wal`, `len` bytes long) for direct writes, when the
/// configuration asks for them and the file system has them; when it has not, direct writes
/// are switched off in `cfg`, so that the next WAL files do not try (and log) again.
fn open_direct(
    cfg: &mut EmbeddedConfig,
    path: &Path,
    wal: &File,
    len: u64,
) -> std::io::Result<Option<DirectLog>> {
    if !cfg.direct_io {
        return Ok(None);
    }
    let direct = DirectLog::open(path, wal, len)?;
    if direct.is_none() {
        cfg.direct_io = false;
        tracing::info!(
            path = %path.display(),
            "this file system has no direct I/O: WAL commits are buffered and fdatasynced"
        );
    }
    Ok(direct)
}

fn create_segment(dir: &Path, id: u32) -> Result<Arc<File>, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(segment_path(dir, id))?;
    sync_dir(dir)?;
    Ok(Arc::new(file))
}

/// A WAL record as a memtable chunk (decoded once, to check it and summarise it).
fn read_wal_record(wal: &File, data: Part) -> Result<Chunk, &'static str> {
    let bytes = data.read(wal).map_err(|_| "WAL record checksum mismatch")?;
    let spans = Decoded::new(&bytes)
        .and_then(Decoded::decode_all)
        .map_err(|e| e.0)?;
    Ok(Chunk {
        sum: Summary::of(&spans),
        data: bytes,
    })
}

fn corrupt(shared: &Shared, path: &Path, offset: u64, reason: &str) {
    shared.reader.corrupt.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        file = %path.display(),
        offset,
        reason,
        "corrupt record in the span store: skipped"
    );
}

/// Reports the corrupt regions `skipped` and the bytes between `valid_end` and `len`.
fn report_scan(shared: &Shared, path: &Path, skipped: &[u64], valid_end: u64, len: u64) {
    for offset in skipped {
        corrupt(
            shared,
            path,
            *offset,
            "bad record header; resynchronised at the next record",
        );
    }
    if valid_end < len {
        tracing::warn!(
            file = %path.display(),
            valid_bytes = valid_end,
            dropped_bytes = len - valid_end,
            "torn tail truncated (an interrupted write)"
        );
    }
}
