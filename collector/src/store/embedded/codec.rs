//! The span encoding shared by WAL records and blocks.
//!
//! A set of spans is encoded as one string table (every key and name, and string values of at
//! most 16 bytes, once; longer values are written inline), a resource table, a scope table, then the spans grouped by trace id and sorted by (start,
//! span id) inside a group. Numbers are LEB128 varints, times are deltas, a parent that is in the
//! same group is a small index instead of 8 bytes. Blocks are then compressed with zstd; WAL
//! records are not.

use std::collections::HashMap;

use crate::model::{SpanId, TraceId};

/// Why bytes could not be decoded (only possible for corrupt data: records are checksummed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DecodeError(pub(crate) &'static str);

/// Maximum nesting of array/map attribute values accepted by the decoder.
const MAX_DEPTH: usize = 32;

/// String attribute values longer than this are stored inline instead of in the string table.
const INTERN_MAX_LEN: usize = 16;

// === a fast hasher for the encoder's interning maps (keys are trusted, not attacker-chosen
// in a way that matters: the maps live for one batch or block) ===

/// FxHash (rustc's hasher): a multiply-rotate over words; much cheaper than SipHash here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    /// Whole words, then the last 8 bytes again (overlapping) for a string of 8 bytes or more
    /// whose length is not a multiple of 8, or the first and last 4 bytes, or 3 of the bytes,
    /// for shorter ones: only fixed-size loads (a copy of the remainder into a word was a call
    /// to `memcpy` for every string the encoder interns). `str`'s `Hash` adds a terminator,
    /// and the hashes live in memory only, so they need not match any earlier version's.
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if n >= 8 {
            let mut chunks = bytes.chunks_exact(8);
            for c in &mut chunks {
                self.write_u64(word(c));
            }
            if !chunks.remainder().is_empty() {
                self.write_u64(word(&bytes[n - 8..]));
            }
        } else if n >= 4 {
            let half = |s: &[u8]| {
                let mut w = [0u8; 4];
                w.copy_from_slice(&s[..4]);
                u64::from(u32::from_le_bytes(w))
            };
            self.write_u64(half(bytes) | half(&bytes[n - 4..]) << 32);
        } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
            let mid = bytes[n / 2];
            self.write_u64(u64::from(first) | u64::from(mid) << 8 | u64::from(last) << 16);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The first 8 bytes of `bytes` (at least 8), little-endian.
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(w)
}

pub(crate) type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

// === varints ===

/// Longest varint of a `u64`.
pub(crate) const MAX_VARINT: usize = 10;

/// Bytes [`put_varint`] writes for `v`.
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over encoded bytes.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(DecodeError("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }

    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
        if n > self.buf.len() - self.pos.min(self.buf.len()) {
            return Err(DecodeError("length past end"));
        }
        Ok(n)
    }

    /// A count of items each at least one byte long (so corrupt counts can't allocate much).
    fn count(&mut self) -> Result<usize, DecodeError> {
        self.len()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DecodeError("truncated bytes"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let b: [u8; 8] = self.bytes(8)?.try_into().map_err(|_| DecodeError("u64"))?;
        Ok(u64::from_le_bytes(b))
    }

    fn trace_id(&mut self) -> Result<TraceId, DecodeError> {
        TraceId::from_slice(self.bytes(16)?).map_err(|_| DecodeError("invalid trace id"))
    }

    fn span_id(&mut self) -> Result<SpanId, DecodeError> {
        SpanId::from_slice(self.bytes(8)?).map_err(|_| DecodeError("invalid span id"))
    }

    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| DecodeError("invalid utf-8"))
    }
}

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub(crate) use decode::Decoded;
#[cfg(test)]
pub(crate) use encode::encode_batch;
pub(crate) use encode::encode_batch_traces;
#[cfg(test)]
pub(crate) use encode::encode_spans;
