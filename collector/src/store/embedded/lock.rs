//! The data directory lock: one store per directory, across processes and within one.
//!
//! `LOCK` holds the owner's pid and its start time (field 22 of `/proc/<pid>/stat`, so a reused
//! pid is not mistaken for the owner). A lock whose owner is gone (a crash, `kill -9`) is stale
//! and taken over. Without `/proc` (not Linux) every lock counts as stale: no protection, as
//! before. (`File::try_lock` would do this in the kernel; it needs Rust 1.89, above the MSRV.)

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;

use crate::store::StoreError;

const LOCK_FILE: &str = "LOCK";

/// Directories opened by a store of this process (a second open in one process fails too).
static OPEN_HERE: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Mutex::default);

/// The lock on a data directory; released (file removed) on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    dir: PathBuf,
    path: PathBuf,
    /// Set by [`DirLock::abandon`]: the file stays.
    abandoned: bool,
}

/// Start time of a process in clock ticks since boot, if it exists.
fn start_time(pid: &str) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_owned)
}

fn identity() -> String {
    let pid = std::process::id().to_string();
    let start = start_time(&pid).unwrap_or_default();
    format!("{pid} {start}\n")
}

impl DirLock {
    /// Takes the lock of `dir` (which exists), or fails with [`StoreError::Locked`].
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let dir = dir.canonicalize()?;
        let path = dir.join(LOCK_FILE);
        let mut open_here = OPEN_HERE.lock();
        if open_here.contains(&dir) {
            return Err(StoreError::Locked {
                dir,
                owner: format!("this process (pid {})", std::process::id()),
            });
        }
        let me = identity();
        // Two attempts: the second after removing a stale lock (a concurrent starter that wins
        // the race makes ours fail with `AlreadyExists`, then reported as in use).
        for attempt in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(me.as_bytes())?;
                    f.sync_all()?;
                    open_here.insert(dir.clone());
                    return Ok(Self {
                        dir,
                        path,
                        abandoned: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt == 0 => {
                    let held = fs::read_to_string(&path).unwrap_or_default();
                    let mut fields = held.split_whitespace();
                    let (pid, start) = (fields.next(), fields.next());
                    let alive = match (pid, start) {
                        // Our own pid: the lock of a store of this process that stopped without
                        // releasing it (a simulated crash); not in `OPEN_HERE`, so stale.
                        (Some(pid), _) if pid == std::process::id().to_string() => false,
                        (Some(pid), Some(start)) => start_time(pid).as_deref() == Some(start),
                        _ => false,
                    };
                    if alive {
                        return Err(StoreError::Locked {
                            dir,
                            owner: format!("pid {}", pid.unwrap_or("?")),
                        });
                    }
                    tracing::warn!(
                        lock = %path.display(),
                        previous_owner = held.trim(),
                        "taking over a stale data directory lock (its process is gone)"
                    );
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::Locked {
                        dir,
                        owner: "another process starting at the same time".to_owned(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Locked {
            dir,
            owner: "unknown".to_owned(),
        })
    }

    /// Releases the lock but leaves the file, as a crash would (tests).
    pub(crate) fn abandon(mut self) {
        self.abandoned = true;
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        OPEN_HERE.lock().remove(&self.dir);
        if self.abandoned {
            return;
        }
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(lock = %self.path.display(), error = %e, "removing the data directory lock failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_held_directory_is_refused_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("storage.data_dir"), "{err}");
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists());
        drop(DirLock::acquire(dir.path()).unwrap());
    }

    #[test]
    fn a_live_process_holds_the_lock_and_a_dead_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        // pid 1 is alive with this start time; no process has pid u32::MAX.
        let Some(init_start) = start_time("1") else {
            return; // no /proc: the lock cannot tell
        };
        fs::write(&path, format!("1 {init_start}\n")).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(err.to_string().contains("pid 1"), "{err}");
        fs::write(&path, format!("{} 1\n", u32::MAX)).unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), identity());
        // A crashed store of this process leaves its file: taken over by the next open.
        lock.abandon();
        assert!(path.exists());
        drop(DirLock::acquire(dir.path()).unwrap());
    }
}
