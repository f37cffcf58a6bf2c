//! The sealer thread: builds blocks from frozen memtable chunks into segments, deletes the WAL
//! files they cover (or makes one the next spare), and applies retention.

use std::fs::{self, File};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use super::super::block;
use super::super::chunk::Chunk;
use super::super::record::{self, KIND_BLOCK, Part};
use super::super::state::{Block, Segment};
use super::super::{EmbeddedConfig, Shared};
use super::{
    Frozen, Job, create_segment, now_ns, segment_path, spare, spare_bytes, sync_dir, wal_file,
};
use crate::store::StoreError;

/// The sealer thread's state: segments, block building and retention.
pub(super) struct Sealer {
    pub(super) cfg: EmbeddedConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) active: u32,
    pub(super) active_file: Arc<File>,
    pub(super) active_len: u64,
    pub(super) compressor: zstd::bulk::Compressor<'static>,
    /// Spans of a seal that failed; retried with the next one (they stay in the memtable and
    /// their WAL files are kept).
    pub(super) carry: Option<Frozen>,
    pub(super) last_retention: Instant,
}

impl Sealer {
    pub(super) fn run(mut self, rx: Receiver<Job>) {
        self.prepare_spare(0);
        loop {
            let job = match rx.recv_timeout(self.cfg.retention_check_interval) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.periodic();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match job {
                Job::Seal(frozen) => {
                    let wal_used = frozen.wal_used;
                    if let Err(e) = self.seal(frozen, false) {
                        tracing::error!(error = %e, "sealing a block failed; the spans stay in the WAL");
                    }
                    self.prepare_spare(wal_used);
                }
                Job::Flush(reply) => {
                    let r = self.retry().and_then(|()| self.enforce_retention());
                    self.last_retention = Instant::now();
                    let _ = reply.send(r);
                }
                Job::Retention(reply) => {
                    let _ = reply.send(self.enforce_retention());
                    self.last_retention = Instant::now();
                }
                Job::Shutdown(reply) => {
                    let _ = reply.send(self.retry());
                    return;
                }
                Job::Crash { frozen, reply } => {
                    let r = match frozen {
                        Some(f) => self.seal(f, true),
                        None => Ok(()),
                    };
                    let _ = reply.send(r);
                    return;
                }
            }
            self.periodic();
        }
    }

    /// Writes the next WAL file ahead of the rotation that will use it (see
    /// [`crate::prealloc`]). A failure only costs that rotation the spare.
    pub(super) fn prepare_spare(&self, last_wal_bytes: u64) {
        let bytes = spare_bytes(last_wal_bytes, self.cfg.max_disk_bytes);
        match spare(&self.cfg.dir).prepare(bytes) {
            // On disk now: counted like the WAL it will become.
            Ok(true) => self.shared.state.write().wal_bytes += bytes,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not write a spare WAL file"),
        }
    }

    fn periodic(&mut self) {
        if self.last_retention.elapsed() >= self.cfg.retention_check_interval {
            if let Err(e) = self.enforce_retention() {
                tracing::error!(error = %e, "span store retention failed");
            }
            self.last_retention = Instant::now();
        }
    }

    /// Retries a seal that failed earlier, if any.
    fn retry(&mut self) -> Result<(), StoreError> {
        match self.carry.take() {
            Some(frozen) => self.seal_all(frozen, false),
            None => Ok(()),
        }
    }

    /// Seals `frozen` (after any earlier spans whose seal failed).
    pub(super) fn seal(
        &mut self,
        frozen: Frozen,
        crash_after_write: bool,
    ) -> Result<(), StoreError> {
        let frozen = match self.carry.take() {
            Some(mut carry) => {
                carry.chunks.extend(frozen.chunks);
                carry.seq_max = carry.seq_max.max(frozen.seq_max);
                carry.wal_files.extend(frozen.wal_files);
                carry.wal_used = frozen.wal_used;
                carry
            }
            None => frozen,
        };
        self.seal_all(frozen, crash_after_write)
    }

    /// Compresses the frozen spans into a block, appends it to the active segment, fsyncs,
    /// publishes it in place of the spans, then deletes the WAL files it covers.
    /// `crash_after_write` stops right after the block's fsync (tests).
    fn seal_all(&mut self, frozen: Frozen, crash_after_write: bool) -> Result<(), StoreError> {
        if frozen.chunks.is_empty() {
            return Ok(());
        }
        match self.write_block(&frozen, crash_after_write) {
            Ok(()) if crash_after_write => Ok(()),
            Ok(()) => {
                let Frozen {
                    chunks, wal_files, ..
                } = frozen;
                // The last references to the chunks usually go here, off the commit path.
                drop(chunks);
                // The largest of the WAL files becomes the next spare, unless one is ready; its
                // bytes stay counted.
                let recycled = self.recycle(&wal_files);
                let mut freed = 0;
                for (path, bytes) in &wal_files {
                    if Some(path) == recycled.as_ref() {
                        continue;
                    }
                    match fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                    freed += bytes;
                }
                {
                    let mut st = self.shared.state.write();
                    st.wal_bytes = st.wal_bytes.saturating_sub(freed);
                }
                sync_dir(&self.cfg.dir)?;
                Ok(())
            }
            Err(e) => {
                self.carry = Some(frozen);
                Err(e)
            }
        }
    }

    /// Makes the largest of `wal_files` (whose spans are in a durable block now) the spare
    /// WAL file, unless one is ready ([`wal_file::recycle`]); returns its path. A failure costs
    /// the next rotation its spare, nothing else: the file is deleted with the others.
    fn recycle(&self, wal_files: &[(PathBuf, u64)]) -> Option<PathBuf> {
        let spare = spare(&self.cfg.dir);
        match spare.ready_bytes() {
            Ok(0) => {}
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for a spare WAL file");
                return None;
            }
        }
        let (path, bytes) = wal_files.iter().max_by_key(|(_, n)| *n)?;
        if *bytes > spare_bytes(u64::MAX, self.cfg.max_disk_bytes) {
            return None;
        }
        match wal_file::recycle(path, &spare) {
            Ok(()) => Some(path.clone()),
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "could not reuse a WAL file as the spare");
                None
            }
        }
    }

    fn write_block(&mut self, frozen: &Frozen, crash_after_write: bool) -> Result<(), StoreError> {
        let built = block::build(&frozen.chunks, frozen.seq_max, &mut self.compressor)?;
        let rec = record::frame(
            KIND_BLOCK,
            &built.meta_bytes,
            &built.tag_filter,
            &built.data,
        );
        if self.active_len > 0 && self.active_len + rec.len() as u64 > self.segment_bytes() {
            self.rotate()?;
        }
        let offset = self.active_len;
        self.active_file.write_all_at(&rec, offset)?;
        self.active_file.sync_data()?;
        if crash_after_write {
            return Ok(());
        }
        self.active_len += rec.len() as u64;
        let sealed: Vec<Arc<Chunk>>;
        let aux_off = offset + record::HEADER_LEN + built.meta_bytes.len() as u64;
        {
            let mut st = self.shared.state.write();
            let ops = built
                .meta
                .ops
                .iter()
                .map(|(svc, name, kind, n)| (st.op_id(svc, name, *kind), *n))
                .collect();
            let max_end = built.meta.max_end;
            st.blocks.push(Arc::new(Block {
                segment: self.active,
                file: Arc::clone(&self.active_file),
                offset,
                ops,
                tag_filter: Part {
                    offset: aux_off,
                    len: built.tag_filter.len() as u32,
                    crc: record::crc(&built.tag_filter),
                },
                data: Part {
                    offset: aux_off + built.tag_filter.len() as u64,
                    len: built.data.len() as u32,
                    crc: record::crc(&built.data),
                },
                meta: built.meta,
                corrupt: AtomicBool::new(false),
                filter_damaged: AtomicBool::new(false),
            }));
            // The frozen chunks are the memtable's oldest ones. Freed below, outside the lock.
            let n = frozen.chunks.len();
            let spans: usize = frozen.chunks.iter().map(|c| c.sum.spans as usize).sum();
            sealed = st.memtable.drain(..n).collect();
            st.frozen -= n;
            st.frozen_spans -= spans;
            st.memtable_spans -= spans;
            if let Some(seg) = st.segments.get_mut(&self.active) {
                seg.bytes = self.active_len;
                seg.max_end = seg.max_end.max(max_end);
            }
        }
        drop(sealed);
        Ok(())
    }

    fn segment_bytes(&self) -> u64 {
        self.cfg
            .segment_bytes
            .min(self.cfg.max_disk_bytes / 8)
            .max(1)
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        let id = self.active + 1;
        let file = create_segment(&self.cfg.dir, id)?;
        self.shared.state.write().segments.insert(
            id,
            Segment {
                file: Arc::clone(&file),
                bytes: 0,
                max_end: 0,
            },
        );
        self.active = id;
        self.active_file = file;
        self.active_len = 0;
        Ok(())
    }

    /// Deletes whole segments whose newest span ended before the retention horizon, then the
    /// oldest segments while the store is over its disk cap. Only sealed, fsynced data is ever
    /// deleted, so newer acknowledged spans are unaffected.
    pub(super) fn enforce_retention(&mut self) -> Result<(), StoreError> {
        let retention = u64::try_from(self.cfg.retention.as_nanos()).unwrap_or(u64::MAX);
        let cutoff = now_ns().saturating_sub(retention);
        let (expired, mut over): (Vec<u32>, Vec<u32>) = {
            let st = self.shared.state.read();
            let expired: Vec<u32> = st
                .segments
                .iter()
                .filter(|(_, s)| s.max_end > 0 && s.max_end < cutoff)
                .map(|(id, _)| *id)
                .collect();
            let mut total = st.disk_bytes();
            let mut over = Vec::new();
            for (id, s) in &st.segments {
                if total <= self.cfg.max_disk_bytes || *id == self.active {
                    break;
                }
                if !expired.contains(id) {
                    over.push(*id);
                }
                total -= s.bytes;
            }
            (expired, over)
        };
        if expired.contains(&self.active) {
            self.rotate()?;
        }
        over.extend(expired);
        for id in over {
            self.delete_segment(id)?;
        }
        Ok(())
    }

    fn delete_segment(&mut self, id: u32) -> Result<(), StoreError> {
        let (spans, bytes) = {
            let mut st = self.shared.state.write();
            let Some(seg) = st.segments.remove(&id) else {
                return Ok(());
            };
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.blocks)
                .into_iter()
                .partition(|b| b.segment == id);
            st.blocks = kept;
            let mut spans = 0u64;
            for b in &gone {
                spans += u64::from(b.meta.spans);
                for (op, n) in b.ops.iter() {
                    st.add_op_count(*op, -(*n as i64));
                }
            }
            (spans, seg.bytes)
        };
        fs::remove_file(segment_path(&self.cfg.dir, id))?;
        tracing::info!(
            segment = id,
            spans,
            bytes,
            "span store retention deleted a segment"
        );
        Ok(())
    }
}
