//! WAL files that are used again: the head record with the file's salt, the salt in every
//! record, and the rule that tells a file's own records from stale ones.
//!
//! Once a block holding a retired WAL file's spans is durable, the sealer makes that file the
//! next spare ([`recycle`]) instead of deleting it and zero-filling a new one (which wrote and
//! fsynced every byte twice and freed and reallocated its blocks). A group commit into a used
//! file still overwrites allocated blocks, so its `fdatasync` still writes no inode.
//!
//! The file's old records stay where new ones have not reached yet, so they must never be
//! replayed, even after retention deleted the block that holds their spans:
//!
//! ```text
//! offset 0
//! | head (salt S) | record (S) | record (S) | stale bytes: old records (salt R ≠ S) ...
//! ```
//!
//! * Every file the writer uses starts with a head record holding a random salt, and every WAL
//!   record's meta carries the salt after its sequence number ([`record_meta`]).
//! * Recycling writes the new head (a new salt) over the old one and fsyncs it *before* the file
//!   becomes the spare, so a file that can become the WAL never starts with a stale head.
//!   A zero-filled spare or a new file gets its head from the writer when it takes it; nothing
//!   stale follows, so that head needs no fsync of its own.
//! * Replay ([`scan`]) takes the records after the head while they carry its salt and stops at
//!   the first that does not: the stale part, quietly. A torn write ends the records as before.
//! * A file without a head (written before this format) is read as before: every record.

use std::fs::{File, OpenOptions};
use std::hash::BuildHasher as _;
use std::io::{self, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use super::super::codec::{Reader, put_varint};
use super::super::record::{self, KIND_WAL, RecordInfo};
use crate::prealloc::{self, Spare};

/// Record kind of a WAL file's head (meta: the salt, 8 bytes little endian).
pub(super) const KIND_WAL_HEAD: u32 = 3;

/// A salt for a file's next use: random, so that no file reuses the salt of its stale records.
pub(super) fn new_salt() -> u64 {
    // `RandomState` is seeded from the OS once per thread and stepped for every instance.
    std::hash::RandomState::new().hash_one(super::now_ns())
}

/// The head record of a file whose records carry `salt`.
pub(super) fn head(salt: u64) -> Vec<u8> {
    record::frame(KIND_WAL_HEAD, &salt.to_le_bytes(), &[], &[])
}

/// Bytes of a head record.
pub(super) fn head_len() -> u64 {
    record::HEADER_LEN + 8
}

/// A WAL record's meta: its sequence number, then the file's salt (none in a file without a
/// head).
pub(super) fn record_meta(seq: u64, salt: Option<u64>) -> Vec<u8> {
    let mut m = Vec::with_capacity(18);
    put_varint(&mut m, seq);
    if let Some(salt) = salt {
        m.extend_from_slice(&salt.to_le_bytes());
    }
    m
}

/// A WAL record's sequence number and salt; `None` if its meta is malformed.
fn parse_meta(meta: &[u8]) -> Option<(u64, Option<u64>)> {
    let mut r = Reader::new(meta);
    let seq = r.varint().ok()?;
    if r.is_empty() {
        return Some((seq, None));
    }
    let salt = r.u64_le().ok()?;
    r.is_empty().then_some((seq, Some(salt)))
}

/// The salt of the head record `rec`, if it is one at the start of the file.
fn head_salt(rec: &RecordInfo) -> Option<u64> {
    let salt: [u8; 8] = rec.meta.as_slice().try_into().ok()?;
    (rec.offset == 0 && rec.kind == KIND_WAL_HEAD).then(|| u64::from_le_bytes(salt))
}

/// One WAL file's records, by the rules above.
#[derive(Debug, Default)]
pub(super) struct WalScan {
    /// The file's salt; `None` for a file without a head.
    pub(super) salt: Option<u64>,
    /// The file's own records in order, with their sequence numbers.
    pub(super) records: Vec<(u64, RecordInfo)>,
    /// Offsets of records whose header is intact but whose meta is not a WAL record's.
    pub(super) bad: Vec<u64>,
    /// Offsets of corrupt regions skipped between the file's own records.
    pub(super) skipped: Vec<u64>,
    /// End of the head and the file's own records: the file is cut here.
    pub(super) valid_end: u64,
    /// Whether the bytes after `valid_end` are expected there (stale records of an earlier
    /// use, or a spare's zeros) rather than a torn write worth a warning.
    pub(super) quiet_tail: bool,
}

/// Scans a WAL file.
pub(super) fn scan(file: &File) -> io::Result<WalScan> {
    let raw = record::scan(file)?;
    let mut out = WalScan::default();
    let mut records = raw.records.into_iter().peekable();
    out.salt = records.peek().and_then(head_salt);
    match out.salt {
        Some(salt) => {
            out.valid_end = head_len();
            records.next();
            for rec in records {
                match (rec.kind, parse_meta(&rec.meta)) {
                    (KIND_WAL, Some((seq, Some(s)))) if s == salt => {
                        out.valid_end = rec.end();
                        out.records.push((seq, rec));
                    }
                    _ => break,
                }
            }
            out.skipped = raw
                .skipped
                .into_iter()
                .filter(|at| *at < out.valid_end)
                .collect();
            out.quiet_tail = true;
        }
        None => {
            for rec in records {
                match (rec.kind, parse_meta(&rec.meta)) {
                    (KIND_WAL, Some((seq, _))) => out.records.push((seq, rec)),
                    _ => out.bad.push(rec.offset),
                }
            }
            out.skipped = raw.skipped;
            out.valid_end = raw.valid_end;
            out.quiet_tail = prealloc::is_zero(file, raw.valid_end)?;
        }
    }
    Ok(out)
}

/// Readies the file the writer just took (a spare, or a new empty file, its position at 0)
/// and returns its salt, with the position after the head, where its records start. A
/// recycled spare's head is kept (it is durable already); any other file gets a head with a new
/// salt.
pub(super) fn start(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if let Some(salt) = record::header_at(file, 0, len)?
        .as_ref()
        .and_then(head_salt)
    {
        file.seek(SeekFrom::Start(head_len()))?;
        return Ok(salt);
    }
    let salt = new_salt();
    file.write_all(&head(salt))?;
    Ok(salt)
}

/// Makes the retired WAL file at `path` the spare: a head with a new salt over its first
/// bytes, fsynced, then the rename. The caller syncs the directory.
pub(super) fn recycle(path: &Path, spare: &Spare) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&head(new_salt()), 0)?;
    file.sync_data()?;
    spare.install(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn record(seq: u64, salt: Option<u64>, data: &[u8]) -> Vec<u8> {
        record::frame(KIND_WAL, &record_meta(seq, salt), &[], data)
    }

    fn file_with(dir: &Path, bytes: &[u8]) -> File {
        let path = dir.join("wal.log");
        std::fs::write(&path, bytes).unwrap();
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap()
    }

    fn seqs(scan: &WalScan) -> Vec<u64> {
        scan.records.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn meta_round_trips_with_and_without_salt() {
        assert_eq!(parse_meta(&record_meta(300, Some(7))), Some((300, Some(7))));
        assert_eq!(parse_meta(&record_meta(300, None)), Some((300, None)));
        assert_eq!(parse_meta(&[0x80]), None);
        assert_eq!(parse_meta(&[1, 2, 3]), None);
    }

    #[test]
    fn stale_records_after_the_salted_ones_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        // The first use: head R, records 1..=5 with a payload longer than the later ones.
        let mut old = head(11);
        for seq in 1..=5 {
            old.extend(record(seq, Some(11), &[seq as u8; 300]));
        }
        let path = dir.path().join("wal-1.log");
        std::fs::write(&path, &old).unwrap();
        let spare = Spare::new(dir.path(), "wal.spare");
        recycle(&path, &spare).unwrap();
        assert_eq!(spare.ready_bytes().unwrap(), old.len() as u64);
        assert!(!path.exists());

        // Taken again: records 9 and 10 written over the start of the stale ones.
        let wal = dir.path().join("wal.log");
        let mut file = spare.take(&wal).unwrap().unwrap();
        let salt = start(&mut file).unwrap();
        assert_ne!(salt, 11);
        // `start` kept the recycled head: records go right after it.
        let mut new = Vec::new();
        for seq in [9, 10] {
            new.extend(record(seq, Some(salt), &[0xee; 100]));
        }
        file.write_all_at(&new, head_len()).unwrap();

        let scan = scan(&file).unwrap();
        assert_eq!(scan.salt, Some(salt));
        assert_eq!(seqs(&scan), [9, 10]);
        assert_eq!(scan.valid_end, head_len() + new.len() as u64);
        assert!(scan.skipped.is_empty(), "{:?}", scan.skipped);
        assert!(scan.quiet_tail);
    }

    #[test]
    fn a_recycled_file_with_no_new_record_replays_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = head(5);
        for seq in 1..=3 {
            old.extend(record(seq, Some(5), b"span bytes"));
        }
        let path = dir.path().join("wal-1.log");
        std::fs::write(&path, &old).unwrap();
        let spare = Spare::new(dir.path(), "wal.spare");
        recycle(&path, &spare).unwrap();
        let file = spare.take(&dir.path().join("wal.log")).unwrap().unwrap();
        let scan = scan(&file).unwrap();
        assert!(scan.records.is_empty());
        assert_eq!(scan.valid_end, head_len());
    }

    #[test]
    fn a_file_without_a_head_is_read_whole_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for seq in 1..=3 {
            bytes.extend(record(seq, None, b"legacy"));
        }
        let end = bytes.len() as u64;
        bytes.extend([0u8; 100]);
        let scan_zeros = scan(&file_with(dir.path(), &bytes)).unwrap();
        assert_eq!(scan_zeros.salt, None);
        assert_eq!(seqs(&scan_zeros), [1, 2, 3]);
        assert_eq!(scan_zeros.valid_end, end);
        assert!(scan_zeros.quiet_tail, "a spare's zeros");
        bytes.truncate(end as usize);
        bytes.extend(b"torn write");
        let torn = scan(&file_with(dir.path(), &bytes)).unwrap();
        assert_eq!(seqs(&torn), [1, 2, 3]);
        assert!(!torn.quiet_tail);
    }

    #[test]
    fn a_new_or_zeroed_file_gets_a_head_with_a_new_salt() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = file_with(dir.path(), &[0u8; 4096]);
        let salt = start(&mut file).unwrap();
        file.write_all(&record(1, Some(salt), b"x")).unwrap();
        let scan = scan(&file).unwrap();
        assert_eq!(scan.salt, Some(salt));
        assert_eq!(seqs(&scan), [1]);
        let mut empty = file_with(dir.path(), &[]);
        let other = start(&mut empty).unwrap();
        assert_ne!(other, salt);
        assert_eq!(empty.metadata().unwrap().len(), head_len());
    }

    #[test]
    fn a_corrupt_record_between_own_records_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = head(3);
        bytes.extend(record(1, Some(3), b"one"));
        let bad_at = bytes.len();
        bytes.extend(record(2, Some(3), b"two"));
        bytes.extend(record(3, Some(3), b"three"));
        bytes[bad_at + 5] ^= 0xff;
        let scan = scan(&file_with(dir.path(), &bytes)).unwrap();
        assert_eq!(seqs(&scan), [1, 3]);
        assert_eq!(scan.skipped, [bad_at as u64]);
    }
}
