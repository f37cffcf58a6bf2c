//! Checksummed record framing shared by the WAL and the segment files.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "TLR1"
//!      4     4  kind (1 = WAL batch, 2 = block, 3 = WAL file head)
//!      8     4  meta_len   meta: small, read at open (WAL sequence and salt, block summary)
//!     12     4  aux_len    aux: read on demand (a block's tag filter)
//!     16     4  data_len   data: the spans
//!     20     4  crc32 of aux
//!     24     4  crc32 of data
//!     28     4  crc32 of bytes 0..28 and meta
//!     32        meta, aux, data
//! ```
//!
//! All integers little endian. The header checksum makes a torn or corrupt header detectable
//! without reading the body; aux and data are checked when they are read.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

pub(crate) const MAGIC: [u8; 4] = *b"TLR1";
pub(crate) const HEADER_LEN: u64 = 32;
pub(crate) const KIND_WAL: u32 = 1;
pub(crate) const KIND_BLOCK: u32 = 2;
/// Largest meta section accepted when scanning (larger means a corrupt header).
const MAX_META: u32 = 16 << 20;

/// Frames one record.
pub(crate) fn frame(kind: u32, meta: &[u8], aux: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN as usize + meta.len() + aux.len() + data.len());
    frame_into(&mut out, kind, meta, aux, crc(aux), data, crc(data));
    out
}

/// Frames one record into `out` with precomputed aux and data checksums.
pub(crate) fn frame_into(
    out: &mut Vec<u8>,
    kind: u32,
    meta: &[u8],
    aux: &[u8],
    aux_crc: u32,
    data: &[u8],
    data_crc: u32,
) {
    frame_head_into(out, kind, meta, aux, aux_crc, data.len(), data_crc);
    out.extend_from_slice(data);
}

/// Everything of a record but its data (written separately, e.g. with `writev`).
pub(crate) fn frame_head_into(
    out: &mut Vec<u8>,
    kind: u32,
    meta: &[u8],
    aux: &[u8],
    aux_crc: u32,
    data_len: usize,
    data_crc: u32,
) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    for v in [
        kind,
        meta.len() as u32,
        aux.len() as u32,
        data_len as u32,
        aux_crc,
        data_crc,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start..]);
    h.update(meta);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(aux);
}

pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Where one record's parts are.
#[derive(Debug, Clone)]
pub(crate) struct RecordInfo {
    pub(crate) offset: u64,
    pub(crate) kind: u32,
    pub(crate) meta: Vec<u8>,
    pub(crate) aux: Part,
    pub(crate) data: Part,
}

impl RecordInfo {
    pub(crate) fn end(&self) -> u64 {
        self.data.offset + u64::from(self.data.len)
    }
}

/// A checksummed byte range of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) crc: u32,
}

impl Part {
    /// Reads and verifies the part.
    pub(crate) fn read(&self, file: &File) -> Result<Vec<u8>, PartError> {
        let mut buf = vec![0u8; self.len as usize];
        file.read_exact_at(&mut buf, self.offset)
            .map_err(PartError::Io)?;
        if crc(&buf) != self.crc {
            return Err(PartError::Checksum);
        }
        Ok(buf)
    }
}

/// Why a record part could not be read.
#[derive(Debug)]
pub(crate) enum PartError {
    Io(std::io::Error),
    Checksum,
}

/// The outcome of scanning a file.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Valid records in file order.
    pub(crate) records: Vec<RecordInfo>,
    /// End of the last valid record: the file should be truncated here.
    pub(crate) valid_end: u64,
    /// Offsets of corrupt regions that were skipped (valid records follow them).
    pub(crate) skipped: Vec<u64>,
}

/// Parses the header at `offset`; `None` if it is torn, corrupt or runs past `file_len`.
pub(crate) fn header_at(
    file: &File,
    offset: u64,
    file_len: u64,
) -> std::io::Result<Option<RecordInfo>> {
    if file_len.saturating_sub(offset) < HEADER_LEN {
        return Ok(None);
    }
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut h, offset)?;
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if h[..4] != MAGIC || word(8) > MAX_META {
        return Ok(None);
    }
    let (meta_len, aux_len, data_len) = (word(8), word(12), word(16));
    let end = offset + HEADER_LEN + u64::from(meta_len) + u64::from(aux_len) + u64::from(data_len);
    if end > file_len {
        return Ok(None);
    }
    let mut meta = vec![0u8; meta_len as usize];
    file.read_exact_at(&mut meta, offset + HEADER_LEN)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h[..28]);
    hasher.update(&meta);
    if hasher.finalize() != word(28) {
        return Ok(None);
    }
    let aux_off = offset + HEADER_LEN + u64::from(meta_len);
    Ok(Some(RecordInfo {
        offset,
        kind: word(4),
        meta,
        aux: Part {
            offset: aux_off,
            len: aux_len,
            crc: word(20),
        },
        data: Part {
            offset: aux_off + u64::from(aux_len),
            len: data_len,
            crc: word(24),
        },
    }))
}

/// Scans a whole file of records. A bad header followed by a valid record is skipped (and
/// reported in [`Scan::skipped`]); a bad header with no valid record after it is a torn tail.
pub(crate) fn scan(file: &File) -> std::io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut out = Scan::default();
    let mut offset = 0;
    while offset < file_len {
        if let Some(rec) = header_at(file, offset, file_len)? {
            offset = rec.end();
            out.valid_end = offset;
            out.records.push(rec);
            continue;
        }
        // Resynchronise: look for the next magic that starts a valid record.
        let mut rest = vec![0u8; (file_len - offset) as usize];
        file.read_exact_at(&mut rest, offset)?;
        let next = rest
            .windows(4)
            .enumerate()
            .skip(1)
            .filter(|(_, w)| *w == MAGIC)
            .map(|(i, _)| offset + i as u64)
            .find_map(|at| header_at(file, at, file_len).ok().flatten().map(|_| at));
        match next {
            Some(at) => {
                out.skipped.push(offset);
                offset = at;
            }
            None => break,
        }
    }
    Ok(out)
}
