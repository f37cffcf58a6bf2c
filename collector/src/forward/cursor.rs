//! The acknowledged cursor of a forward queue: every record with a sequence number up to it
//! was acknowledged by the upstream (or permanently rejected) and will not be sent again.
//!
//! The file holds two 24-byte slots, `generation u64 | acked u64 | crc u32 | 0 u32`; each
//! update overwrites the older slot and fdatasyncs, so a torn write leaves the other slot
//! intact. The valid slot with the highest generation wins.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

const SLOT_BYTES: usize = 24;

/// The cursor file.
#[derive(Debug)]
pub(crate) struct Cursor {
    file: File,
    generation: u64,
    acked: u64,
}

fn slot(generation: u64, acked: u64) -> [u8; SLOT_BYTES] {
    let mut b = [0u8; SLOT_BYTES];
    b[..8].copy_from_slice(&generation.to_le_bytes());
    b[8..16].copy_from_slice(&acked.to_le_bytes());
    let crc = crc32fast::hash(&b[..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

fn parse(b: &[u8]) -> Option<(u64, u64)> {
    let b: &[u8; SLOT_BYTES] = b.try_into().ok()?;
    let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if crc != crc32fast::hash(&b[..16]) {
        return None;
    }
    let mut g = [0; 8];
    g.copy_from_slice(&b[..8]);
    let mut a = [0; 8];
    a.copy_from_slice(&b[8..16]);
    Some((u64::from_le_bytes(g), u64::from_le_bytes(a)))
}

impl Cursor {
    /// Opens (or creates) the cursor file; a missing or unreadable cursor is 0 (nothing acked).
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = [0u8; 2 * SLOT_BYTES];
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        let n = len.min(bytes.len());
        file.read_exact_at(&mut bytes[..n], 0)?;
        let best = bytes
            .chunks_exact(SLOT_BYTES)
            .filter_map(parse)
            .max_by_key(|(generation, _)| *generation);
        let (generation, acked) = best.unwrap_or((0, 0));
        Ok(Self {
            file,
            generation,
            acked,
        })
    }

    /// The acknowledged sequence number.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Durably moves the cursor to `acked` (no-op when it is not ahead).
    pub(crate) fn store(&mut self, acked: u64) -> io::Result<()> {
        if acked <= self.acked {
            return Ok(());
        }
        let generation = self.generation + 1;
        let offset = (generation % 2) * SLOT_BYTES as u64;
        self.file.write_all_at(&slot(generation, acked), offset)?;
        self.file.sync_data()?;
        self.generation = generation;
        self.acked = acked;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use super::*;

    #[test]
    fn survives_a_torn_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acked");
        let mut c = Cursor::open(&path).unwrap();
        assert_eq!(c.acked(), 0);
        c.store(5).unwrap();
        c.store(9).unwrap();
        c.store(7).unwrap(); // behind: ignored
        assert_eq!(Cursor::open(&path).unwrap().acked(), 9);
        // Tear the newest slot (generation 2 → slot 0): the older one (5) remains.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff; 4], 3).unwrap();
        assert_eq!(Cursor::open(&path).unwrap().acked(), 5);
    }
}
