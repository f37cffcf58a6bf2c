//! Segment files of a forward queue: length-prefixed, CRC'd records, and the scan that
//! recovers them (truncating a torn tail).
//!
//! ```text
//! record = len u32 | crc u32 | seq u64 | spans u32 | enqueued_ms u64 | payload[len]
//!          (little endian; crc32 over everything after the crc field)
//! ```
//!
//! A segment is named after the sequence number of its first record
//! (`00000000000000000042.seg`), so the files sort in record order.
//!
//! A segment file whose records are all acknowledged may become the next spare
//! (`Queue::persist`), so a segment can hold, after its own records, records of the file's
//! earlier use. Those have lower sequence numbers than the segment's name (every sequence
//! number is handed out once, in increasing order), so [`scan`] stops at them.

use std::fs::File;
use std::io::{self, BufReader, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

/// Bytes before a record's payload.
pub(crate) const HEADER_BYTES: usize = 28;
/// Largest payload accepted when reading (a larger length is a corrupt header).
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1 << 30;
const SUFFIX: &str = ".seg";

/// The fixed part of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    /// Payload length.
    pub(crate) len: u32,
    /// Sequence number (increasing across segments).
    pub(crate) seq: u64,
    /// Spans in the payload.
    pub(crate) spans: u32,
    /// When it was appended, ms since the Unix epoch.
    pub(crate) enqueued_ms: u64,
}

/// Appends one record (header + payload) to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, header: RecordHeader, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&header.len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&header.seq.to_le_bytes());
    out.extend_from_slice(&header.spans.to_le_bytes());
    out.extend_from_slice(&header.enqueued_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The file name of the segment whose first record is `first_seq`.
pub(crate) fn path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SUFFIX}"))
}

/// The first sequence number encoded in a segment file name, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_suffix(SUFFIX)?.parse().ok()
}

/// One valid record found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    /// Its header.
    pub(crate) header: RecordHeader,
    /// Offset of the header in the file.
    pub(crate) offset: u64,
}

/// What [`scan`] found in a segment.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The valid records, in file order.
    pub(crate) records: Vec<Found>,
    /// End of the last valid record: everything after it is a torn or corrupt tail.
    pub(crate) valid_end: u64,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Reads the segment named `first_seq` from the start and stops at the first incomplete or
/// corrupt record. Sequence numbers must increase from `first_seq` on; a record that breaks the
/// order (a record of the file's earlier use) ends the scan too.
pub(crate) fn scan(file: &File, first_seq: u64) -> io::Result<Scan> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0))?;
    let mut out = Scan::default();
    let mut header = [0u8; HEADER_BYTES];
    let mut payload = Vec::new();
    let mut last_seq = None;
    loop {
        if !read_full(&mut reader, &mut header)? {
            break;
        }
        let len = le_u32(&header[0..]);
        let crc = le_u32(&header[4..]);
        let parsed = RecordHeader {
            len,
            seq: le_u64(&header[8..]),
            spans: le_u32(&header[16..]),
            enqueued_ms: le_u64(&header[20..]),
        };
        let Ok(len) = usize::try_from(len) else { break };
        if len > MAX_PAYLOAD_BYTES
            || parsed.seq < first_seq
            || last_seq.is_some_and(|s| parsed.seq <= s)
        {
            break;
        }
        payload.resize(len, 0);
        if !read_full(&mut reader, &mut payload)? {
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            break;
        }
        out.records.push(Found {
            header: parsed,
            offset: out.valid_end,
        });
        out.valid_end += (HEADER_BYTES + len) as u64;
        last_seq = Some(parsed.seq);
    }
    Ok(out)
}

/// Fills `buf`; `false` at a clean or torn end of file.
fn read_full(reader: &mut impl io::Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads the payload of the record at `offset` (checked against its CRC).
pub(crate) fn read_payload(file: &File, offset: u64, out: &mut Vec<u8>) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let mut header = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut header, offset)?;
    let len = usize::try_from(le_u32(&header)).unwrap_or(usize::MAX);
    if len > MAX_PAYLOAD_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "forward queue record length out of range",
        ));
    }
    let start = out.len();
    out.resize(start + len, 0);
    file.read_exact_at(&mut out[start..], offset + HEADER_BYTES as u64)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..]);
    hasher.update(&out[start..]);
    if hasher.finalize() != le_u32(&header[4..]) {
        out.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "forward queue record checksum mismatch",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use std::io::{Seek as _, SeekFrom, Write as _};

    use super::*;

    fn header(seq: u64, len: usize) -> RecordHeader {
        RecordHeader {
            len: u32::try_from(len).unwrap(),
            seq,
            spans: 3,
            enqueued_ms: 1000 + seq,
        }
    }

    #[test]
    fn scan_stops_at_a_torn_or_corrupt_tail() {
        let mut bytes = Vec::new();
        for seq in 1..=3 {
            let payload = vec![u8::try_from(seq).unwrap(); 10 * usize::try_from(seq).unwrap()];
            encode(&mut bytes, header(seq, payload.len()), &payload);
        }
        let full = bytes.len() as u64;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let s = scan(&file, 1).unwrap();
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.valid_end, full);
        let mut out = Vec::new();
        read_payload(&file, s.records[1].offset, &mut out).unwrap();
        assert_eq!(out, vec![2; 20]);

        // Torn: the last record is cut short.
        file.set_len(full - 5).unwrap();
        let s = scan(&file, 1).unwrap();
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.valid_end, full - (HEADER_BYTES as u64 + 30));

        // Corrupt: a flipped payload byte in the second record.
        file.set_len(0).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut bad = bytes.clone();
        bad[HEADER_BYTES + 10 + HEADER_BYTES + 3] ^= 0xff;
        file.write_all(&bad).unwrap();
        let s = scan(&file, 1).unwrap();
        assert_eq!(s.records.len(), 1);
        assert!(read_payload(&file, s.valid_end, &mut Vec::new()).is_err());
    }

    #[test]
    fn records_of_an_earlier_use_end_the_scan() {
        // The file's first use: segment 10, records 10..=14.
        let mut old = Vec::new();
        for seq in 10..=14 {
            encode(&mut old, header(seq, 50), &[7; 50]);
        }
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&old).unwrap();
        // Used again as segment 40: nothing written yet, then one shorter record.
        assert!(scan(&file, 40).unwrap().records.is_empty());
        let mut new = Vec::new();
        encode(&mut new, header(40, 20), &[9; 20]);
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(&new).unwrap();
        let s = scan(&file, 40).unwrap();
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.valid_end, new.len() as u64);
        // A new record that ends where an old one starts: the old one has a lower number.
        let mut aligned = Vec::new();
        encode(&mut aligned, header(40, 50), &[9; 50]);
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(&aligned).unwrap();
        let s = scan(&file, 40).unwrap();
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.records[0].header.seq, 40);
        // The same file read as segment 10 (its old name) would take the old records: the
        // name is what tells them apart.
        assert_eq!(
            scan(&file, 10).unwrap().records.len(),
            1,
            "40 then 11 breaks the order"
        );
    }

    #[test]
    fn names_round_trip() {
        let p = path(Path::new("/q"), 42);
        assert_eq!(
            p.file_name().unwrap().to_str().unwrap(),
            "00000000000000000042.seg"
        );
        assert_eq!(parse_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_name("cursor"), None);
    }
}
