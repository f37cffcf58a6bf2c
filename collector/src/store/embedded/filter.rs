//! The tag filter of format-3 and -4 blocks: a cache-line-blocked Bloom filter.
//!
//! One tag hash picks a 64-byte line and all of the tag's bits are in that line, so probing a
//! tag reads 64 bytes of the record's aux part (one `pread`, served by the page cache once
//! warm) instead of loading the whole filter (tens of KB per block) through the block cache.
//! A line holds 480 bits and a crc32 of its bits and its index: a corrupt or misplaced line
//! reads as "may contain" (the block is then decoded, and its data is checksummed), never as
//! a false negative.
//!
//! With 16 bits per distinct tag and k = 9 the false-positive rate is ~0.09 % (computed for
//! the Poisson spread of tags over lines; a plain Bloom filter of the same size would give
//! ~0.05 %): at 10 M spans (~2450 blocks) a search for an absent tag decodes ~2 blocks.

use super::block::hash_stream;

/// Bytes per line (one cache line, and the unit of a probe's read).
pub(crate) const LINE_BYTES: usize = 64;
/// Bytes of filter bits in a line; the last 4 bytes hold the line's crc32.
const LINE_BIT_BYTES: usize = 60;
const LINE_BITS: u64 = (LINE_BIT_BYTES * 8) as u64;
/// Bits per distinct tag.
const BITS_PER_TAG: usize = 16;
/// Bits set per tag, all in its line.
const K: u32 = 9;

/// Lines of the filter of a block with `tags` distinct tags.
fn lines_for(tags: usize) -> usize {
    (tags.saturating_mul(BITS_PER_TAG))
        .div_ceil(LINE_BITS as usize)
        .max(1)
}

/// The line that holds the bits of tag hash `h` in a filter of `lines` lines.
pub(crate) fn line_of(h: u64, lines: u64) -> u64 {
    // The high bits of `h` scaled to `lines` (uniform, no division); the bit positions use
    // mixes of `h`, so the two choices are independent.
    ((u128::from(h) * u128::from(lines)) >> 64) as u64
}

/// The positions of the bits of `h` inside its line, each from its own mix of `h`.
fn bits(h: u64) -> impl Iterator<Item = usize> {
    hash_stream(h, K).map(|x| (((x >> 32) * LINE_BITS) >> 32) as usize)
}

fn line_crc(index: u64, bits: &[u8]) -> [u8; 4] {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(bits);
    h.finalize().to_le_bytes()
}

/// The filter of a block's distinct tag hashes (the record's aux part; a whole number of
/// lines).
pub(crate) fn build(hashes: &[u64]) -> Vec<u8> {
    let lines = lines_for(hashes.len());
    let mut out = vec![0u8; lines * LINE_BYTES];
    for &h in hashes {
        let at = line_of(h, lines as u64) as usize * LINE_BYTES;
        let line = &mut out[at..at + LINE_BIT_BYTES];
        for b in bits(h) {
            line[b / 8] |= 1 << (b % 8);
        }
    }
    for (i, line) in out.chunks_exact_mut(LINE_BYTES).enumerate() {
        let crc = line_crc(i as u64, &line[..LINE_BIT_BYTES]);
        line[LINE_BIT_BYTES..].copy_from_slice(&crc);
    }
    out
}

/// Whether line number `index` (as read from disk) may hold tag hash `h`; `None` when the
/// line fails its checksum.
pub(crate) fn line_may_contain(line: &[u8; LINE_BYTES], index: u64, h: u64) -> Option<bool> {
    if line_crc(index, &line[..LINE_BIT_BYTES]) != line[LINE_BIT_BYTES..] {
        return None;
    }
    Some(bits(h).all(|b| line[b / 8] & (1 << (b % 8)) != 0))
}

/// Whether a whole in-memory filter may hold `h` (tests and tools; queries read one line).
#[cfg(test)]
pub(crate) fn may_contain(filter: &[u8], h: u64) -> Option<bool> {
    let lines = (filter.len() / LINE_BYTES) as u64;
    if lines == 0 || !filter.len().is_multiple_of(LINE_BYTES) {
        return None;
    }
    let i = line_of(h, lines);
    let at = i as usize * LINE_BYTES;
    let line: &[u8; LINE_BYTES] = filter[at..at + LINE_BYTES].try_into().ok()?;
    line_may_contain(line, i, h)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "tests: a failed unwrap is a failed test"
    )]

    use super::*;
    use crate::store::embedded::tags::tag_hash;
    use proptest::prelude::*;

    #[test]
    fn false_positive_rate_is_about_a_tenth_of_a_percent() {
        let tags: Vec<u64> = (0..10_000u64)
            .map(|i| tag_hash("k", &i.to_string()))
            .collect();
        let f = build(&tags);
        assert_eq!(f.len(), lines_for(10_000) * LINE_BYTES);
        assert!(tags.iter().all(|h| may_contain(&f, *h) == Some(true)));
        let fp = (10_000..210_000u64)
            .filter(|i| may_contain(&f, tag_hash("k", &i.to_string())) == Some(true))
            .count();
        // Expected ~0.09 % of 200 000 = ~170.
        assert!(fp < 300, "false positives {fp}");
    }

    #[test]
    fn empty_filter_is_one_line_and_holds_nothing() {
        let f = build(&[]);
        assert_eq!(f.len(), LINE_BYTES);
        assert_eq!(may_contain(&f, tag_hash("a", "b")), Some(false));
    }

    #[test]
    fn a_corrupt_or_misplaced_line_reads_as_unknown() {
        let tags: Vec<u64> = (0..100u64).map(|i| tag_hash("k", &i.to_string())).collect();
        let mut f = build(&tags);
        let lines = (f.len() / LINE_BYTES) as u64;
        let h = tag_hash("k", "absent");
        let i = line_of(h, lines);
        let at = i as usize * LINE_BYTES;
        let mut line: [u8; LINE_BYTES] = f[at..at + LINE_BYTES].try_into().unwrap();
        // The same bytes presented as another line fail the check.
        assert_eq!(line_may_contain(&line, i + 1, h), None);
        line[3] ^= 0x10;
        assert_eq!(line_may_contain(&line, i, h), None);
        f[at + 3] ^= 0x10;
        assert_eq!(may_contain(&f, h), None);
    }

    proptest! {
        /// No false negatives, whatever the tags and their number.
        #[test]
        fn no_false_negatives(
            tags in prop::collection::vec((".{0,12}", ".{0,24}"), 0..600),
        ) {
            let hashes: Vec<u64> = tags.iter().map(|(k, v)| tag_hash(k, v)).collect();
            let f = build(&hashes);
            for (h, (k, v)) in hashes.iter().zip(&tags) {
                prop_assert_eq!(may_contain(&f, *h), Some(true), "{}={}", k, v);
            }
        }
    }
}
