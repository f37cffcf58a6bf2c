//! The in-memory part of the store: recent spans not yet in a block, the block summaries, the
//! operation counts and a small cache of decompressed blocks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::block::{BlockMeta, MAX_RAW_LEN, TagFilter};
use super::chunk::{Chunk, Summary};
use super::codec::FxMap;
use super::filter::{LINE_BYTES, line_may_contain, line_of};
use super::record::{Part, PartError};
use crate::intern::Names;
use crate::model::SpanKind;
use crate::store::{Operation, StoreError};

/// A sealed block: where it is and its summary.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) segment: u32,
    pub(crate) file: Arc<File>,
    pub(crate) offset: u64,
    pub(crate) meta: BlockMeta,
    /// `(op id, span count)`.
    pub(crate) ops: Box<[(u32, u64)]>,
    pub(crate) tag_filter: Part,
    pub(crate) data: Part,
    /// Set once a read found the block corrupt; it is skipped from then on.
    pub(crate) corrupt: AtomicBool,
    /// Set once a line of its (format-3 or -4) tag filter failed its checksum: logged once; such
    /// lines read as "may contain".
    pub(crate) filter_damaged: AtomicBool,
}

impl Block {
    fn cache_key(&self, aux: bool) -> u64 {
        (u64::from(self.segment) << 41) | (self.offset << 1) | u64::from(aux)
    }
}

/// A segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) file: Arc<File>,
    pub(crate) bytes: u64,
    /// Latest span end in the segment (for age retention); 0 when empty.
    pub(crate) max_end: u64,
}

/// An operation key: interned service name, operation name and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OpKey {
    pub(crate) service: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) kind: SpanKind,
}

/// Everything readers see, behind one lock; only the writer thread mutates it.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Acknowledged batches not yet sealed into a block, in write order, still encoded.
    pub(crate) memtable: Vec<Arc<Chunk>>,
    /// Spans in the memtable.
    pub(crate) memtable_spans: usize,
    /// How many of the memtable's oldest chunks were handed to the sealer thread.
    pub(crate) frozen: usize,
    /// Spans in those chunks.
    pub(crate) frozen_spans: usize,
    /// Sealed blocks in write order.
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) segments: BTreeMap<u32, Segment>,
    pub(crate) wal_bytes: u64,
    ops: Vec<OpKey>,
    op_ids: FxMap<OpKey, u32>,
    op_counts: Vec<u64>,
    /// Every service and operation name, once (as many as the operations).
    names: Names,
}

impl State {
    /// The id of an operation, adding it when new.
    pub(crate) fn op_id(&mut self, service: &str, name: &str, kind: SpanKind) -> u32 {
        let key = OpKey {
            service: self.names.get(service),
            name: self.names.get(name),
            kind,
        };
        if let Some(id) = self.op_ids.get(&key) {
            return *id;
        }
        let id = self.ops.len() as u32;
        self.ops.push(key.clone());
        self.op_ids.insert(key, id);
        self.op_counts.push(0);
        id
    }

    pub(crate) fn add_op_count(&mut self, id: u32, delta: i64) {
        let c = &mut self.op_counts[id as usize];
        *c = c.saturating_add_signed(delta);
    }

    /// Counts the spans of a chunk that entered the memtable.
    pub(crate) fn count_chunk(&mut self, sum: &Summary) {
        for (svc, name, kind, n) in &sum.ops {
            let id = self.op_id(svc, name, *kind);
            self.add_op_count(id, i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Adds a chunk to the memtable.
    pub(crate) fn push_chunk(&mut self, chunk: Arc<Chunk>) {
        self.count_chunk(&chunk.sum);
        self.memtable_spans += chunk.sum.spans as usize;
        self.memtable.push(chunk);
    }

    /// Service names with at least one stored span, sorted.
    pub(crate) fn services(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .ops
            .iter()
            .zip(&self.op_counts)
            .filter(|(_, n)| **n > 0)
            .map(|(op, _)| op.service.to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn operations(&self, service: &str, kind: Option<SpanKind>) -> Vec<Operation> {
        let mut out: Vec<Operation> = self
            .ops
            .iter()
            .zip(&self.op_counts)
            .filter(|(op, n)| {
                **n > 0 && &*op.service == service && kind.is_none_or(|k| op.kind == k)
            })
            .map(|(op, _)| Operation {
                name: op.name.to_string(),
                kind: op.kind,
            })
            .collect();
        out.sort();
        out
    }

    /// Ids of the operations matching a service and optional operation name.
    pub(crate) fn matching_ops(&self, service: Option<&str>, name: Option<&str>) -> Vec<u32> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| {
                service.is_none_or(|s| &*op.service == s) && name.is_none_or(|n| &*op.name == n)
            })
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Bytes on disk: segments and WAL.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum::<u64>() + self.wal_bytes
    }
}

/// An LRU cache of decompressed blocks and tag filters, bounded in bytes.
#[derive(Debug)]
pub(crate) struct BlockCache {
    capacity: usize,
    bytes: usize,
    map: HashMap<u64, Cached>,
    order: VecDeque<u64>,
}

#[derive(Debug, Clone)]
enum Cached {
    Raw(Arc<Vec<u8>>),
    Tags(Arc<TagFilter>),
}

impl Cached {
    fn size(&self) -> usize {
        match self {
            Self::Raw(r) => r.len(),
            Self::Tags(t) => t.heap_bytes(),
        }
    }
}

impl BlockCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            bytes: 0,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&mut self, key: u64) -> Option<Cached> {
        let v = self.map.get(&key)?.clone();
        if let Some(pos) = self.order.iter().position(|k| *k == key) {
            self.order.remove(pos);
        }
        self.order.push_back(key);
        Some(v)
    }

    fn put(&mut self, key: u64, v: Cached) {
        let size = v.size();
        if size > self.capacity || self.map.contains_key(&key) {
            return;
        }
        while self.bytes + size > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.map.remove(&old) {
                self.bytes -= v.size();
            }
        }
        self.bytes += size;
        self.map.insert(key, v);
        self.order.push_back(key);
    }
}

/// Reads blocks through the cache, counting and logging corrupt ones.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) cache: Mutex<BlockCache>,
    pub(crate) corrupt: AtomicU64,
}

impl Reader {
    pub(crate) fn new(cache_bytes: usize) -> Self {
        Self {
            cache: Mutex::new(BlockCache::new(cache_bytes)),
            corrupt: AtomicU64::new(0),
        }
    }

    fn mark_corrupt(&self, block: &Block, what: &str, reason: &str) {
        if !block.corrupt.swap(true, Ordering::Relaxed) {
            self.corrupt.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                segment = block.segment,
                offset = block.offset,
                part = what,
                reason,
                "corrupt block in the span store: its spans are skipped"
            );
        }
    }

    fn read_part(
        &self,
        block: &Block,
        part: Part,
        what: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match part.read(&block.file) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(PartError::Checksum) => {
                self.mark_corrupt(block, what, "checksum mismatch");
                Ok(None)
            }
            Err(PartError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.mark_corrupt(block, what, "file shorter than the record");
                Ok(None)
            }
            Err(PartError::Io(e)) => Err(StoreError::Io(e)),
        }
    }

    /// The decompressed span bytes of a block; `None` if the block is corrupt.
    pub(crate) fn raw(&self, block: &Block) -> Result<Option<Arc<Vec<u8>>>, StoreError> {
        if block.corrupt.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let key = block.cache_key(false);
        if let Some(Cached::Raw(r)) = self.cache.lock().get(key) {
            return Ok(Some(r));
        }
        let Some(compressed) = self.read_part(block, block.data, "data")? else {
            return Ok(None);
        };
        let cap = block.meta.raw_len.min(MAX_RAW_LEN) as usize;
        let raw = match zstd::bulk::decompress(&compressed, cap) {
            Ok(raw) if raw.len() as u64 == block.meta.raw_len => Arc::new(raw),
            Ok(_) => {
                self.mark_corrupt(block, "data", "decompressed size mismatch");
                return Ok(None);
            }
            Err(e) => {
                self.mark_corrupt(block, "data", &e.to_string());
                return Ok(None);
            }
        };
        self.cache.lock().put(key, Cached::Raw(Arc::clone(&raw)));
        Ok(Some(raw))
    }

    /// The tag filter of a block; `None` if it is corrupt.
    pub(crate) fn tags(&self, block: &Block) -> Result<Option<Arc<TagFilter>>, StoreError> {
        let key = block.cache_key(true);
        if let Some(Cached::Tags(t)) = self.cache.lock().get(key) {
            return Ok(Some(t));
        }
        let Some(bytes) = self.read_part(block, block.tag_filter, "tag filter")? else {
            return Ok(None);
        };
        let filter = match TagFilter::parse(&bytes) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                self.mark_corrupt(block, "tag filter", e.0);
                return Ok(None);
            }
        };
        self.cache
            .lock()
            .put(key, Cached::Tags(Arc::clone(&filter)));
        Ok(Some(filter))
    }

    /// Whether the block may hold spans with every tag of `hashes` (hashed with the block's
    /// [`super::tags::TagHash`]).
    /// `false` also for a corrupt format-1/2 filter (the block is then skipped, as before).
    ///
    /// Formats 3 and 4 read one 64-byte line of the filter per tag (`pread`, no block cache): a
    /// search for a rare tag probes every block, and whole filters (~30 KB each at 10 M spans)
    /// do not fit the cache. A damaged line counts as "may contain".
    pub(crate) fn may_contain_tags(
        &self,
        block: &Block,
        hashes: &[u64],
    ) -> Result<bool, StoreError> {
        if hashes.is_empty() {
            return Ok(true);
        }
        if !block.meta.line_filter {
            let Some(filter) = self.tags(block)? else {
                return Ok(false);
            };
            return Ok(hashes.iter().all(|h| filter.may_contain(*h)));
        }
        let part = block.tag_filter;
        let lines = u64::from(part.len) / LINE_BYTES as u64;
        if lines == 0 || !u64::from(part.len).is_multiple_of(LINE_BYTES as u64) {
            self.filter_damaged(block, "tag filter is not a whole number of lines");
            return Ok(true);
        }
        let mut line = [0u8; LINE_BYTES];
        for &h in hashes {
            let i = line_of(h, lines);
            match block
                .file
                .read_exact_at(&mut line, part.offset + i * LINE_BYTES as u64)
            {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.filter_damaged(block, "file shorter than the tag filter");
                    continue;
                }
                Err(e) => return Err(StoreError::Io(e)),
            }
            match line_may_contain(&line, i, h) {
                Some(true) => {}
                Some(false) => return Ok(false),
                None => self.filter_damaged(block, "tag filter line checksum mismatch"),
            }
        }
        Ok(true)
    }

    fn filter_damaged(&self, block: &Block, reason: &str) {
        if !block.filter_damaged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                segment = block.segment,
                offset = block.offset,
                reason,
                "damaged tag filter in the span store: searches decode the block instead"
            );
        }
    }

    pub(crate) fn report_decode_error(&self, block: &Block, reason: &str) {
        self.mark_corrupt(block, "data", reason);
    }
}
