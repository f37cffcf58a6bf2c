//! Zero-filled WAL files made ahead of time.
//!
//! Every group commit ends in an `fdatasync` of the WAL. When the commit *appends*, the file's
//! size changes, so the kernel must also write the inode; when it *overwrites* blocks that are
//! already allocated and written, only the data goes out. Measured on this project's machine
//! (ext4, virtio disk; 25 KB writes, 300 each): `write` + `fdatasync` costs 148–156 µs of CPU
//! and 0.27–0.30 ms (p50) when appending, 71–83 µs and 0.13–0.14 ms when overwriting.
//!
//! So the sealer thread, which runs after every WAL rotation anyway, writes the next WAL file
//! in advance: `wal.spare.tmp` filled with zeros, fsynced, then renamed to `wal.spare`. At the
//! next rotation the commit thread renames `wal.spare` to `wal.log` instead of creating an
//! empty file (and falls back to creating one when no spare is ready). Only zeros follow the
//! last record of such a file: recovery reads them as the end of the log ([`is_zero`]), drops
//! them like a torn tail, but says nothing about them.
//!
//! A spare is never reused: once retired, a WAL file is deleted when its block is durable, so
//! no stale record can ever follow the zeros.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// A complete spare, ready to become the WAL.
const SPARE_FILE: &str = "wal.spare";
/// A spare being written (deleted at open: a crash interrupted it).
const SPARE_TMP_FILE: &str = "wal.spare.tmp";
/// Smallest and largest spare. The size follows the last WAL files (see [`size_for`]).
const MIN_BYTES: u64 = 256 << 10;
const MAX_BYTES: u64 = 64 << 20;

fn spare_path(dir: &Path) -> PathBuf {
    dir.join(SPARE_FILE)
}

/// Deletes a spare whose writing a crash interrupted. A complete spare is kept.
pub(super) fn clean(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(SPARE_TMP_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The spare's size for WAL files that grew to `last_wal_bytes` before rotation: a quarter
/// more, within [`MIN_BYTES`]..=[`MAX_BYTES`] and at most a sixteenth of `max_disk_bytes`
/// (it is disk the cap does not see until records fill it).
pub(super) fn size_for(last_wal_bytes: u64, max_disk_bytes: u64) -> u64 {
    let want = last_wal_bytes.saturating_add(last_wal_bytes / 4);
    want.clamp(MIN_BYTES, MAX_BYTES).min(max_disk_bytes / 16)
}

/// Size of the spare that is ready, 0 if none.
pub(super) fn ready_bytes(dir: &Path) -> io::Result<u64> {
    match fs::metadata(spare_path(dir)) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Writes a spare of `bytes` zeros unless one is ready; `true` when it wrote one. Blocking I/O.
pub(super) fn prepare(dir: &Path, bytes: u64) -> io::Result<bool> {
    if bytes == 0 || spare_path(dir).exists() {
        return Ok(false);
    }
    let tmp = dir.join(SPARE_TMP_FILE);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let zeros = vec![0u8; 64 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    // Written blocks and the size are durable before the file can become the WAL.
    file.sync_all()?;
    fs::rename(&tmp, spare_path(dir))?;
    Ok(true)
}

/// Renames the spare to `wal_path` and opens it; `None` when no spare is ready. The caller
/// makes the rename durable (a directory sync) before acknowledging records written to it.
pub(super) fn take(dir: &Path, wal_path: &Path) -> io::Result<Option<File>> {
    match fs::rename(spare_path(dir), wal_path) {
        Ok(()) => OpenOptions::new()
            .read(true)
            .write(true)
            .open(wal_path)
            .map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `file` holds only zeros from `from` to its end (the unused part of a spare).
pub(super) fn is_zero(file: &File, from: u64) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; 64 << 10];
    let mut at = from;
    while at < len {
        let n = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_spare_is_zeros_of_the_asked_size_and_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prepare(dir.path(), 300_000).unwrap());
        assert_eq!(ready_bytes(dir.path()).unwrap(), 300_000);
        assert!(!dir.path().join(SPARE_TMP_FILE).exists());
        let wal = dir.path().join("wal.log");
        let file = take(dir.path(), &wal).unwrap().unwrap();
        assert_eq!(file.metadata().unwrap().len(), 300_000);
        assert!(is_zero(&file, 0).unwrap());
        assert!(take(dir.path(), &wal).unwrap().is_none());
        assert_eq!(ready_bytes(dir.path()).unwrap(), 0);
    }

    #[test]
    fn a_ready_spare_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prepare(dir.path(), 300_000).unwrap());
        assert!(!prepare(dir.path(), 400_000).unwrap());
        let len = fs::metadata(spare_path(dir.path())).unwrap().len();
        assert_eq!(len, 300_000);
    }

    #[test]
    fn an_interrupted_spare_is_cleaned_and_a_complete_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SPARE_TMP_FILE), b"\0\0").unwrap();
        prepare(dir.path(), 300_000).unwrap();
        fs::write(dir.path().join(SPARE_TMP_FILE), b"\0\0").unwrap();
        clean(dir.path()).unwrap();
        assert!(!dir.path().join(SPARE_TMP_FILE).exists());
        assert!(spare_path(dir.path()).exists());
    }

    #[test]
    fn non_zero_bytes_after_the_records_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut bytes = vec![0u8; 200_000];
        fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        assert!(is_zero(&file, 10).unwrap());
        bytes[150_000] = 1;
        fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        assert!(!is_zero(&file, 10).unwrap());
        assert!(is_zero(&file, 150_001).unwrap());
    }

    #[test]
    fn the_size_follows_the_last_wal_within_bounds() {
        assert_eq!(size_for(0, u64::MAX), MIN_BYTES);
        assert_eq!(size_for(4 << 20, u64::MAX), 5 << 20);
        assert_eq!(size_for(1 << 30, u64::MAX), MAX_BYTES);
        assert_eq!(size_for(4 << 20, 16 << 20), 1 << 20);
    }
}
