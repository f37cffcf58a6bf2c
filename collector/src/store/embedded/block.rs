//! Blocks: a few thousand spans, zstd-compressed, with a summary that lets queries skip them.
//!
//! The summary (record meta) holds the WAL sequence covered, time and duration ranges, the
//! (service, operation, kind) counts and a Bloom filter of the trace ids; the record's aux part
//! holds a Bloom filter of the searchable `key=value` tags (format 3: cache-line blocked, probed
//! one 64-byte line at a time, see [`super::filter`]). A false positive only costs decoding one
//! block.

use std::sync::Arc;

use super::chunk::{Chunk, OpCount, Summary};
use super::codec::{DecodeError, Reader, put_varint};
use crate::model::same_str;
use crate::model::{
    BatchView, KvView, ScopeView, SpanKind, SpanRef, StatusCode, TraceId, ValueView,
};

/// Block format version stored in the summary: 1 = the data is one encoding of all the spans,
/// sorted by trace id (written before chunked sealing; still read).
const VERSION_SINGLE: u8 = 1;
/// 2 = the data is a sequence of `varint length, encoding` parts, one per memtable chunk.
const VERSION_PARTS: u8 = 2;
/// 3 = as 2, and the tag filter is cache-line blocked ([`super::filter`]) instead of a plain
/// Bloom filter read whole.
const VERSION_LINES: u8 = 3;
/// Hashes per trace id in the trace filter of format-1 blocks (16 bits per trace: about
/// 0.05 % false positives, i.e. ~1.2 needless block reads per lookup at 10 M spans).
const TRACE_K_V1: u32 = 8;
/// Bits per trace id and hashes in the trace filter of format-2 blocks: about 0.0015 % false
/// positives (~0.04 needless block reads per lookup at 10 M spans), 3 bytes per trace in memory.
const TRACE_BITS: usize = 24;
const TRACE_K: u32 = 12;
/// The same for format 3, whose trace filter is blocked (all k bits of an id in one 64-byte
/// line: a lookup probes each block's filter with one cache miss instead of up to k): 28 bits
/// and k = 14 keep the false-positive rate at ~0.0015 %, 3.5 bytes per trace in memory.
const TRACE_BITS_LINES: usize = 28;
const TRACE_K_LINES: u32 = 14;
/// Bits per distinct tag in the tag filter of formats 1 and 2 (k = 5: about 1 % false
/// positives; still read, no longer written).
const TAG_BITS: usize = 10;
const TAG_K: u32 = 5;
/// Largest decompressed block accepted (a larger summary value means corruption).
pub(crate) const MAX_RAW_LEN: u64 = 512 << 20;

// === hashing (stable across builds: the filters are persisted) ===

pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = mix(seed ^ bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = mix(h ^ u64::from_le_bytes(w));
    }
    let mut w = [0u8; 8];
    w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix(h ^ u64::from_le_bytes(w) ^ 0x9e37_79b9_7f4a_7c15)
}

/// Hash of a search tag.
pub(crate) fn tag_hash(key: &str, value: &str) -> u64 {
    hash_bytes(hash_bytes(1, key.as_bytes()), value.as_bytes())
}

/// Hash of a trace id.
pub(crate) fn trace_hash(id: TraceId) -> u64 {
    hash_bytes(2, id.as_bytes())
}

/// A Bloom filter over precomputed 64-bit hashes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bloom {
    words: Box<[u64]>,
}

impl Bloom {
    fn build(hashes: &[u64], bits_per_item: usize, k: u32) -> Self {
        let bits = (hashes.len() * bits_per_item).max(64);
        let mut words = vec![0u64; bits.div_ceil(64)].into_boxed_slice();
        let this_bits = words.len() as u64 * 64;
        for &h in hashes {
            for i in probe(h, k, this_bits) {
                words[(i / 64) as usize] |= 1 << (i % 64);
            }
        }
        Self { words }
    }

    fn contains(&self, h: u64, k: u32) -> bool {
        let bits = self.words.len() as u64 * 64;
        bits > 0 && probe(h, k, bits).all(|i| self.words[(i / 64) as usize] & (1 << (i % 64)) != 0)
    }

    /// A blocked filter: each hash sets its `k` bits in one line of 8 words.
    fn build_blocked(hashes: &[u64], bits_per_item: usize, k: u32) -> Self {
        let lines = (hashes.len() * bits_per_item).div_ceil(512).max(1);
        let mut words = vec![0u64; lines * 8].into_boxed_slice();
        for &h in hashes {
            let line = &mut words[blocked_line(h, lines) * 8..][..8];
            for i in blocked_probe(h, k) {
                line[i / 64] |= 1 << (i % 64);
            }
        }
        Self { words }
    }

    fn contains_blocked(&self, h: u64, k: u32) -> bool {
        let lines = self.words.len() / 8;
        if lines == 0 {
            return false;
        }
        let line = &self.words[blocked_line(h, lines) * 8..][..8];
        blocked_probe(h, k).all(|i| line[i / 64] & (1 << (i % 64)) != 0)
    }

    fn write(&self, out: &mut Vec<u8>) {
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    fn read(r: &mut Reader<'_>, words: usize) -> Result<Self, DecodeError> {
        let bytes = r.bytes(words.checked_mul(8).ok_or(DecodeError("filter size"))?)?;
        Ok(Self {
            words: bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect(),
        })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

fn blocked_line(h: u64, lines: usize) -> usize {
    ((u128::from(h) * lines as u128) >> 64) as usize
}

/// Bit positions (0..512) of `h` inside its line, each from its own mix of `h` (double
/// hashing, `a + i·b`, correlates positions too much in a 512-bit line: ~40× the expected
/// false positives).
fn blocked_probe(h: u64, k: u32) -> impl Iterator<Item = usize> {
    hash_stream(h, k).map(|x| (x >> 55) as usize)
}

/// `k` independent-looking 64-bit values derived from `h`.
pub(crate) fn hash_stream(h: u64, k: u32) -> impl Iterator<Item = u64> {
    (1..=u64::from(k)).map(move |i| mix(h ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

fn probe(h: u64, k: u32, bits: u64) -> impl Iterator<Item = u64> {
    let h2 = mix(h) | 1;
    (0..u64::from(k)).map(move |i| h.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// The tag filter of a format-1 or -2 block (the record's aux part).
#[derive(Debug, Clone)]
pub(crate) struct TagFilter(Bloom);

impl TagFilter {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        Bloom::read(&mut Reader::new(bytes), bytes.len() / 8).map(Self)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }

    /// Whether the block may hold the tag of hash `h` ([`tag_hash`]).
    pub(crate) fn may_contain(&self, h: u64) -> bool {
        self.0.contains(h, TAG_K)
    }
}

/// Calls `f` with every `key=value` pair that [`Span::matches_tag`](crate::model::Span::matches_tag) can match.
///
/// A span attribute equal to the one at the same position of the previous span (of the
/// same `keys`) is skipped: it was given then, and the caller collects a set. So is a kind or
/// status pair already given for an earlier span.
///
/// Must stay in step with `Span::matches_tag`: a pair missing here makes the search skip
/// blocks it should read (the model test catches that).
fn for_each_own_tag<'s>(
    batch: &BatchView<'s>,
    span: &SpanRef<'_, 's>,
    keys: &mut KeyHashes<'s>,
    f: &mut impl FnMut(u64),
) {
    for (i, kv) in span.attributes().iter().enumerate() {
        let Some(kh) = keys.get(i, kv.key, &kv.value) else {
            continue; // the previous span had the same pair here: already given
        };
        match kv.value {
            ValueView::Str(s) => f(hash_bytes(kh, s.as_bytes())),
            ValueView::Int(i) => {
                let mut buf = [0u8; 20];
                f(hash_bytes(kh, int_str(i, &mut buf).as_bytes()));
            }
            ValueView::Bool(b) => f(hash_bytes(kh, if b { b"true" } else { b"false" })),
            ref other => f(tag_hash(kv.key, &other.to_search_string())),
        }
    }
    for e in span.events() {
        for_each_kv(batch.event_attributes(e), f);
    }
    if let Some(kind) = span.kind.jaeger_name()
        && keys.first_time(span.kind as u16)
    {
        f(tag_hash("span.kind", kind));
    }
    match span.status_code {
        StatusCode::Error if keys.first_time(GIVEN_ERROR) => {
            f(tag_hash("error", "true"));
            f(tag_hash("otel.status_code", "ERROR"));
        }
        StatusCode::Ok if keys.first_time(GIVEN_OK) => f(tag_hash("otel.status_code", "OK")),
        _ => {}
    }
    if !span.status_message.is_empty() {
        f(tag_hash("otel.status_description", span.status_message));
    }
}

/// `hash_bytes(1, key)` of span attribute keys, cached by position, with the scalar value
/// last seen there: neighbouring spans mostly have the same keys in the same order, and
/// often the same values (method, status, port, user agent), whose pair was given already.
/// Also the span kinds and statuses whose pairs were given (bits: the kind's number, then
/// [`GIVEN_ERROR`] and [`GIVEN_OK`]).
#[derive(Default)]
struct KeyHashes<'s> {
    slots: Vec<Option<KeySlot<'s>>>,
    given: u32,
}

/// Bits of [`KeyHashes::first_time`] for the statuses (above the span kinds' numbers).
const GIVEN_ERROR: u16 = 16;
const GIVEN_OK: u16 = 17;

struct KeySlot<'s> {
    key: &'s str,
    hash: u64,
    value: Option<Scalar<'s>>,
}

/// A value whose equality is cheap to check.
#[derive(Clone, Copy)]
enum Scalar<'s> {
    Str(&'s str),
    Int(i64),
    Bool(bool),
}

impl<'s> Scalar<'s> {
    fn of(v: &ValueView<'s>) -> Option<Self> {
        match *v {
            ValueView::Str(s) => Some(Self::Str(s)),
            ValueView::Int(i) => Some(Self::Int(i)),
            ValueView::Bool(b) => Some(Self::Bool(b)),
            _ => None,
        }
    }

    fn same(self, other: Self) -> bool {
        match (self, other) {
            (Self::Str(a), Self::Str(b)) => same_str(a, b),
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::Bool(a), Self::Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// Positions cached (attributes beyond are hashed every time).
const KEY_SLOTS: usize = 64;

impl<'s> KeyHashes<'s> {
    /// Whether `bit` (a span kind's number, [`GIVEN_ERROR`] or [`GIVEN_OK`]) is seen for the
    /// first time; it is seen from now on.
    fn first_time(&mut self, bit: u16) -> bool {
        let mask = 1u32 << (bit % 32);
        let first = self.given & mask == 0;
        self.given |= mask;
        first
    }

    /// The key's hash, or `None` when the pair at `slot` is the one given there last.
    fn get(&mut self, slot: usize, key: &'s str, value: &ValueView<'s>) -> Option<u64> {
        let scalar = Scalar::of(value);
        if let Some(Some(cached)) = self.slots.get_mut(slot)
            && same_str(cached.key, key)
        {
            if let (Some(last), Some(now)) = (cached.value, scalar)
                && last.same(now)
            {
                return None;
            }
            cached.value = scalar;
            return Some(cached.hash);
        }
        let hash = hash_bytes(1, key.as_bytes());
        if slot < KEY_SLOTS {
            if self.slots.len() <= slot {
                self.slots.resize_with(slot + 1, || None);
            }
            self.slots[slot] = Some(KeySlot {
                key,
                hash,
                value: scalar,
            });
        }
        Some(hash)
    }
}

fn for_each_kv(list: &[KvView<'_>], f: &mut impl FnMut(u64)) {
    for kv in list {
        match kv.value {
            ValueView::Str(s) => f(tag_hash(kv.key, s)),
            ValueView::Int(i) => {
                let mut buf = [0u8; 20];
                f(tag_hash(kv.key, int_str(i, &mut buf)));
            }
            ValueView::Bool(b) => f(tag_hash(kv.key, if b { "true" } else { "false" })),
            ref other => f(tag_hash(kv.key, &other.to_search_string())),
        }
    }
}

/// `i.to_string()` without allocating.
fn int_str(i: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

fn scope_tags(scope: &ScopeView<'_>, f: &mut impl FnMut(u64)) {
    if !scope.name.is_empty() {
        f(tag_hash("otel.scope.name", scope.name));
    }
    if !scope.version.is_empty() {
        f(tag_hash("otel.scope.version", scope.version));
    }
}

/// The summary of a block, as persisted in its record meta.
#[derive(Debug, Clone)]
pub(crate) struct BlockMeta {
    /// Highest WAL sequence number whose spans are in this block (or an earlier one).
    pub(crate) seq_max: u64,
    pub(crate) spans: u32,
    pub(crate) traces: u32,
    pub(crate) min_start: u64,
    pub(crate) max_start: u64,
    pub(crate) max_end: u64,
    pub(crate) min_duration: u64,
    pub(crate) max_duration: u64,
    /// (service, operation, kind) → span count.
    pub(crate) ops: Vec<OpCount>,
    pub(crate) trace_filter: Bloom,
    pub(crate) raw_len: u64,
    /// Whether the data is a sequence of parts (see [`parts`]).
    pub(crate) parts: bool,
    /// Whether the tag filter is cache-line blocked ([`super::filter`], format 3).
    pub(crate) line_filter: bool,
}

impl BlockMeta {
    pub(crate) fn may_contain_trace(&self, id: TraceId) -> bool {
        if self.line_filter {
            return self
                .trace_filter
                .contains_blocked(trace_hash(id), TRACE_K_LINES);
        }
        let k = if self.parts { TRACE_K } else { TRACE_K_V1 };
        self.trace_filter.contains(trace_hash(id), k)
    }

    fn write(&self) -> Vec<u8> {
        let mut out = vec![match (self.line_filter, self.parts) {
            (true, _) => VERSION_LINES,
            (false, true) => VERSION_PARTS,
            (false, false) => VERSION_SINGLE,
        }];
        for v in [
            self.seq_max,
            u64::from(self.spans),
            u64::from(self.traces),
            self.min_start,
            self.max_start,
            self.max_end,
            self.min_duration,
            self.max_duration,
            self.raw_len,
            self.ops.len() as u64,
        ] {
            put_varint(&mut out, v);
        }
        for (service, name, kind, count) in &self.ops {
            for s in [service, name] {
                put_varint(&mut out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            out.push(kind.to_otlp() as u8);
            put_varint(&mut out, *count);
        }
        put_varint(&mut out, self.trace_filter.words.len() as u64);
        self.trace_filter.write(&mut out);
        out
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let (parts, line_filter) = match r.u8()? {
            VERSION_SINGLE => (false, false),
            VERSION_PARTS => (true, false),
            VERSION_LINES => (true, true),
            _ => return Err(DecodeError("unknown block version")),
        };
        let mut v = [0u64; 10];
        for slot in &mut v {
            *slot = r.varint()?;
        }
        let small = |x: u64| u32::try_from(x).map_err(|_| DecodeError("count overflow"));
        if v[8] > MAX_RAW_LEN {
            return Err(DecodeError("block too large"));
        }
        let mut ops = Vec::new();
        for _ in 0..v[9].min(bytes.len() as u64) {
            let service = r.string()?.into();
            let name = r.string()?.into();
            let kind = SpanKind::from_otlp(i32::from(r.u8()?));
            ops.push((service, name, kind, r.varint()?));
        }
        let words = r.len()?;
        if line_filter && words % 8 != 0 {
            return Err(DecodeError("trace filter is not a whole number of lines"));
        }
        let trace_filter = Bloom::read(&mut r, words)?;
        if !r.is_empty() {
            return Err(DecodeError("trailing bytes in block summary"));
        }
        Ok(Self {
            seq_max: v[0],
            spans: small(v[1])?,
            traces: small(v[2])?,
            min_start: v[3],
            max_start: v[4],
            max_end: v[5],
            min_duration: v[6],
            max_duration: v[7],
            raw_len: v[8],
            ops,
            trace_filter,
            parts,
            line_filter,
        })
    }
}

/// A block ready to be appended: summary, tag filter and compressed spans.
#[derive(Debug)]
pub(crate) struct BuiltBlock {
    pub(crate) meta: BlockMeta,
    pub(crate) meta_bytes: Vec<u8>,
    pub(crate) tag_filter: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

/// The sorted, deduplicated hashes of every searchable tag of `spans` (see [`TagFilter`]).
///
/// Computed by `write_batch` on the caller's thread, while the spans are still in its cache,
/// and merged per block.
pub(crate) fn tag_hashes(batch: &BatchView<'_>) -> Vec<u64> {
    // At most one hash per attribute and a few per span (name, kind, status), before dedup.
    let mut tags: Vec<u64> = Vec::with_capacity(batch.attribute_count() + batch.len() * 4);
    let mut keys = KeyHashes::default();
    let mut push = |h| tags.push(h);
    let mut resource_seen = vec![false; batch.resources().len()];
    let mut scope_seen = vec![false; batch.scopes().len()];
    for s in batch.spans() {
        for_each_own_tag(batch, &s, &mut keys, &mut push);
        if let Some(seen) = resource_seen.get_mut(s.resource_index() as usize)
            && !std::mem::replace(seen, true)
        {
            for_each_kv(batch.resource_attributes(s.resource()), &mut push);
        }
        if let Some(seen) = scope_seen.get_mut(s.scope_index() as usize)
            && !std::mem::replace(seen, true)
        {
            scope_tags(s.scope(), &mut push);
        }
    }
    sorted_distinct(tags)
}

/// `hashes` sorted, without duplicates (what `sort_unstable` then `dedup` give).
///
/// The duplicates are dropped first, through a table indexed by the hashes' top bits (they
/// are well mixed already, so one probe mostly does), and only the distinct hashes are
/// sorted: a 100-span chunk of the load generator's gives ~680 tag hashes of which ~280 are
/// distinct (Callgrind: 59 k instructions sorting them all, 52 k with the table, whose
/// clearing Callgrind counts per byte). Not for a block's merged chunk lists: few of their
/// hashes repeat (mostly unique URLs and ids), so the table would only add.
fn sorted_distinct(mut hashes: Vec<u64>) -> Vec<u64> {
    /// Below this, sorting everything costs less than clearing a table.
    const SMALL: usize = 32;
    if hashes.len() < SMALL {
        hashes.sort_unstable();
        hashes.dedup();
        return hashes;
    }
    // At least twice as many slots as hashes: a quarter to a half of them in use.
    let bits = (hashes.len() * 2).next_power_of_two().trailing_zeros();
    let mask = (1usize << bits) - 1;
    // 0 marks a free slot; a hash that is 0 is remembered apart.
    let mut table = vec![0u64; 1 << bits];
    let mut zero_seen = false;
    // Hashes of crafted attributes could share their top bits and make the probes quadratic:
    // past this many, the rest is left to the sort.
    let mut probes_left = hashes.len() * 4;
    let mut kept = 0;
    let mut i = 0;
    while i < hashes.len() && probes_left > 0 {
        let h = hashes[i];
        let new = if h == 0 {
            !std::mem::replace(&mut zero_seen, true)
        } else {
            let mut slot = (h >> (64 - bits)) as usize;
            loop {
                probes_left = probes_left.saturating_sub(1);
                match table[slot] {
                    0 => {
                        table[slot] = h;
                        break true;
                    }
                    t if t == h => break false,
                    _ => slot = (slot + 1) & mask,
                }
            }
        };
        if new {
            hashes[kept] = h;
            kept += 1;
        }
        i += 1;
    }
    // The first `kept` are the distinct ones of the first `i`; the rest, not looked at if the
    // probes ran out, may repeat them.
    hashes.drain(kept..i);
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

/// The encodings held by a block's decompressed data: one per part (format 2) or the whole
/// data (format 1).
pub(crate) fn parts(raw: &[u8], multi: bool) -> impl Iterator<Item = Result<&[u8], DecodeError>> {
    let mut r = Reader::new(raw);
    let mut single = (!multi).then_some(raw);
    std::iter::from_fn(move || {
        if let Some(all) = single.take() {
            return Some(Ok(all));
        }
        if multi && !r.is_empty() {
            return Some(r.len().and_then(|n| r.bytes(n)));
        }
        None
    })
}

/// Builds a block from memtable chunks (non-empty): their encodings are concatenated as
/// parts, their summaries merged, and the whole compressed. No span is decoded.
pub(crate) fn build(
    chunks: &[Arc<Chunk>],
    seq_max: u64,
    compressor: &mut zstd::bulk::Compressor<'_>,
) -> std::io::Result<BuiltBlock> {
    build_format(chunks, seq_max, compressor, true)
}

/// [`build`] in format 3 (`line_filter`) or in format 2 (a plain tag filter: what earlier
/// versions wrote; kept so that tests can check such blocks are still read).
pub(crate) fn build_format(
    chunks: &[Arc<Chunk>],
    seq_max: u64,
    compressor: &mut zstd::bulk::Compressor<'_>,
    line_filter: bool,
) -> std::io::Result<BuiltBlock> {
    let mut raw = Vec::with_capacity(chunks.iter().map(|c| c.data.len() + 5).sum());
    for c in chunks {
        put_varint(&mut raw, c.data.len() as u64);
        raw.extend_from_slice(&c.data);
    }
    let data = compressor.compress(&raw)?;
    let sum = Summary::merge(chunks.iter().map(|c| &c.sum));
    let trace_hashes: Vec<u64> = sum.traces.iter().map(|t| trace_hash(*t)).collect();
    let meta = BlockMeta {
        seq_max,
        spans: sum.spans,
        traces: u32::try_from(sum.traces.len()).unwrap_or(u32::MAX),
        min_start: sum.min_start,
        max_start: sum.max_start,
        max_end: sum.max_end,
        min_duration: sum.min_duration,
        max_duration: sum.max_duration,
        ops: sum.ops,
        trace_filter: if line_filter {
            Bloom::build_blocked(&trace_hashes, TRACE_BITS_LINES, TRACE_K_LINES)
        } else {
            Bloom::build(&trace_hashes, TRACE_BITS, TRACE_K)
        },
        raw_len: raw.len() as u64,
        parts: true,
        line_filter,
    };
    let tag_filter = if line_filter {
        super::filter::build(&sum.tags)
    } else {
        let mut out = Vec::new();
        Bloom::build(&sum.tags, TAG_BITS, TAG_K).write(&mut out);
        out
    };
    Ok(BuiltBlock {
        meta_bytes: meta.write(),
        meta,
        tag_filter,
        data,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn sorted_distinct_sorts_and_dedups(
            // Few distinct values (many repeats), zeros and the largest value included.
            small in proptest::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), 0u64..50], 0..300),
            spread in proptest::collection::vec(any::<u64>(), 0..3000),
            repeats in 1usize..4,
        ) {
            for input in [small, spread.iter().copied().cycle().take(spread.len() * repeats).collect()] {
                let mut want = input.clone();
                want.sort_unstable();
                want.dedup();
                prop_assert_eq!(sorted_distinct(input), want);
            }
        }
    }

    #[test]
    fn int_str_matches_to_string() {
        for i in [0i64, 7, -7, 500, i64::MIN, i64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(int_str(i, &mut buf), i.to_string());
        }
    }

    #[test]
    fn blocked_trace_filter_has_no_false_negatives_and_few_false_positives() {
        let hashes: Vec<u64> = (0..4000u64).map(|i| mix(i ^ 0x5555)).collect();
        let b = Bloom::build_blocked(&hashes, TRACE_BITS_LINES, TRACE_K_LINES);
        assert_eq!(b.words.len() % 8, 0);
        assert!(hashes.iter().all(|h| b.contains_blocked(*h, TRACE_K_LINES)));
        let fp = (0..1_000_000u64)
            .filter(|i| b.contains_blocked(mix(i ^ 0xaaaa_0000_0000), TRACE_K_LINES))
            .count();
        // ~0.0015 % expected: ~15.
        assert!(fp < 100, "false positives {fp}");
        assert!(!Bloom::default().contains_blocked(1, TRACE_K_LINES));
    }

    #[test]
    fn tag_hashes_cover_every_attribute_pair_once_also_when_neighbours_repeat_them() {
        use crate::model::{
            AttrValue, KeyValue, Resource, Span, SpanId, SpanKind, Status, TraceId,
        };
        let kv = |k: &str, v: AttrValue| KeyValue {
            key: k.to_owned(),
            value: v,
        };
        // Neighbours repeat some pairs at the same position, change others, and change keys.
        let spans: Vec<Span> = (0..12u8)
            .map(|i| {
                let mut attributes = vec![
                    kv("http.method", AttrValue::String("GET".to_owned())),
                    kv("status", AttrValue::Int(if i % 4 == 0 { 500 } else { 200 })),
                    kv("ok", AttrValue::Bool(i % 3 == 0)),
                    kv("user", AttrValue::String(format!("u{}", i / 2))),
                    kv("ratio", AttrValue::Double(0.5)),
                ];
                if i % 2 == 0 {
                    attributes.swap(0, 3);
                }
                Span {
                    trace_id: TraceId::from_bytes([i + 1; 16]).unwrap(),
                    span_id: SpanId::from_bytes([i + 1; 8]).unwrap(),
                    parent_span_id: None,
                    trace_state: String::new(),
                    flags: 1,
                    name: "op".to_owned(),
                    // Kinds and statuses repeat too, not only at neighbours.
                    kind: [SpanKind::Internal, SpanKind::Server, SpanKind::Client]
                        [usize::from(i % 3)],
                    start_ns: 1,
                    end_ns: 2,
                    attributes,
                    events: vec![],
                    links: vec![],
                    status: Status {
                        code: match i % 5 {
                            0 => StatusCode::Error,
                            1 | 3 => StatusCode::Ok,
                            _ => StatusCode::Unset,
                        },
                        message: String::new(),
                    },
                    resource: Arc::new(Resource {
                        service_name: "svc".to_owned(),
                        attributes: vec![],
                    }),
                    scope: Arc::default(),
                }
            })
            .collect();
        let got = tag_hashes(&BatchView::from_spans(&spans));
        let mut want: Vec<u64> = spans
            .iter()
            .flat_map(|s| &s.attributes)
            .map(|kv| tag_hash(&kv.key, &kv.value.to_search_string()))
            .chain(
                spans
                    .iter()
                    .filter_map(|s| s.kind.jaeger_name().map(|k| tag_hash("span.kind", k))),
            )
            .chain(spans.iter().flat_map(|s| match s.status.code {
                StatusCode::Error => vec![
                    tag_hash("error", "true"),
                    tag_hash("otel.status_code", "ERROR"),
                ],
                StatusCode::Ok => vec![tag_hash("otel.status_code", "OK")],
                StatusCode::Unset => vec![],
            }))
            .collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(got, want);
    }

    #[test]
    fn bloom_has_no_false_negatives() {
        let hashes: Vec<u64> = (0..1000u64)
            .map(|i| tag_hash("k", &i.to_string()))
            .collect();
        let b = Bloom::build(&hashes, TAG_BITS, TAG_K);
        assert!(hashes.iter().all(|h| b.contains(*h, TAG_K)));
        let fp = (1000..11000u64)
            .filter(|i| b.contains(tag_hash("k", &i.to_string()), TAG_K))
            .count();
        assert!(fp < 400, "false positives {fp}");
    }
}
