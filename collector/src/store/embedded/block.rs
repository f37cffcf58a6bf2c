//! Blocks: a few thousand spans, zstd-compressed, with a summary that lets queries skip them.
//!
//! The summary (record meta) holds the WAL sequence covered, time and duration ranges, the
//! (service, operation, kind) counts and a Bloom filter of the trace ids; the record's aux part
//! holds a Bloom filter of the searchable `key=value` tags (formats 3 and 4: cache-line blocked,
//! probed one 64-byte line at a time, see [`super::filter`]; their hashes: [`super::tags`]).
//! A false positive only costs decoding one block.

use std::sync::Arc;

use super::chunk::{Chunk, OpCount, Summary};
use super::codec::{DecodeError, Reader, put_varint};
use super::tags::TagHash;
use crate::model::{SpanKind, TraceId};

/// Block format version stored in the summary: 1 = the data is one encoding of all the spans,
/// sorted by trace id (written before chunked sealing; still read).
const VERSION_SINGLE: u8 = 1;
/// 2 = the data is a sequence of `varint length, encoding` parts, one per memtable chunk.
const VERSION_PARTS: u8 = 2;
/// 3 = as 2, and the tag filter is cache-line blocked ([`super::filter`]) instead of a plain
/// Bloom filter read whole.
const VERSION_LINES: u8 = 3;
/// 4 = as 3, and the tags in the tag filter are hashed with [`TagHash::Rapid`] instead of
/// [`TagHash::Mix`].
const VERSION_RAPID_TAGS: u8 = 4;
/// Hashes per trace id in the trace filter of format-1 blocks (16 bits per trace: about
/// 0.05 % false positives, i.e. ~1.2 needless block reads per lookup at 10 M spans).
const TRACE_K_V1: u32 = 8;
/// Bits per trace id and hashes in the trace filter of format-2 blocks: about 0.0015 % false
/// positives (~0.04 needless block reads per lookup at 10 M spans), 3 bytes per trace in memory.
const TRACE_BITS: usize = 24;
const TRACE_K: u32 = 12;
/// The same for formats 3 and 4, whose trace filter is blocked (all k bits of an id in one 64-byte
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

/// The hash of trace ids and of [`TagHash::Mix`] tags.
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
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

    /// Whether the block may hold the tag of hash `h` ([`TagHash::Mix`]).
    pub(crate) fn may_contain(&self, h: u64) -> bool {
        self.0.contains(h, TAG_K)
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
    /// Whether the tag filter is cache-line blocked ([`super::filter`], formats 3 and 4).
    pub(crate) line_filter: bool,
    /// The function the tag filter's tags were hashed with (format 4: rapidhash).
    pub(crate) tag_hash: TagHash,
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
        // Only `build_format` makes summaries to write, and its formats pair rapidhash with
        // the line-blocked filter.
        let mut out = vec![match (self.line_filter, self.parts, self.tag_hash) {
            (true, _, TagHash::Rapid) => VERSION_RAPID_TAGS,
            (true, _, TagHash::Mix) => VERSION_LINES,
            (false, true, _) => VERSION_PARTS,
            (false, false, _) => VERSION_SINGLE,
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
        let (parts, line_filter, tag_hash) = match r.u8()? {
            VERSION_SINGLE => (false, false, TagHash::Mix),
            VERSION_PARTS => (true, false, TagHash::Mix),
            VERSION_LINES => (true, true, TagHash::Mix),
            VERSION_RAPID_TAGS => (true, true, TagHash::Rapid),
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
            tag_hash,
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
    build_format(chunks, seq_max, compressor, Format::RapidTags)
}

/// The block formats that [`build_format`] writes: the current one, and those that earlier
/// versions wrote, so that tests can check such blocks are still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Format 2: a plain Bloom filter of [`TagHash::Mix`] tags.
    Plain,
    /// Format 3: a line-blocked filter of [`TagHash::Mix`] tags.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only tests write format-3 blocks")
    )]
    Lines,
    /// Format 4: a line-blocked filter of [`TagHash::Rapid`] tags.
    RapidTags,
}

impl Format {
    /// The function the chunks' tag hashes must have been computed with.
    pub(crate) fn tag_hash(self) -> TagHash {
        match self {
            Self::Plain | Self::Lines => TagHash::Mix,
            Self::RapidTags => TagHash::Rapid,
        }
    }
}

/// [`build`] in `format`; the chunks' summaries must hold tags hashed with
/// [`Format::tag_hash`].
pub(crate) fn build_format(
    chunks: &[Arc<Chunk>],
    seq_max: u64,
    compressor: &mut zstd::bulk::Compressor<'_>,
    format: Format,
) -> std::io::Result<BuiltBlock> {
    let line_filter = format != Format::Plain;
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
        tag_hash: format.tag_hash(),
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
    use super::*;
    use crate::store::embedded::tags::tag_hash;

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
