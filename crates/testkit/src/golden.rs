//! Golden-file assertions for wire formats (Prometheus exposition, Jaeger JSON, log lines).
//!
//! [`assert_golden`] compares a rendered document with a checked-in file and panics with a
//! unified diff on mismatch. Run the tests with `UPDATE_GOLDEN=1` to rewrite the files instead,
//! then review the change with `git diff`.
//!
//! ```no_run
//! tracelight_testkit::assert_golden("tests/data/exposition.txt", "requests_total 1\n");
//! ```

use std::path::Path;

use similar::TextDiff;

/// Environment variable that switches [`assert_golden`] from comparing to rewriting.
pub const ENV_UPDATE_GOLDEN: &str = "UPDATE_GOLDEN";

/// Whether [`assert_golden_with`] compares with the file or rewrites it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoldenMode {
    /// Compare `actual` with the file and panic on mismatch (the default).
    #[default]
    Compare,
    /// Write `actual` to the file, creating parent directories as needed.
    Update,
}

impl GoldenMode {
    /// [`GoldenMode::Update`] when `UPDATE_GOLDEN` is `1` or `true`, else
    /// [`GoldenMode::Compare`].
    pub fn from_env() -> Self {
        match std::env::var(ENV_UPDATE_GOLDEN).as_deref() {
            Ok("1" | "true") => Self::Update,
            _ => Self::Compare,
        }
    }
}

/// Asserts that the file at `path` contains exactly `actual`.
///
/// With `UPDATE_GOLDEN=1` in the environment the file is written instead (parent directories
/// are created). A relative `path` is resolved against the current directory, which for
/// `cargo test` is the package root. Line endings in the file are normalised (`\r\n` → `\n`)
/// before comparing, so checkouts with `core.autocrlf` still pass.
///
/// # Panics
///
/// Panics with a unified diff if the contents differ, or if the file is missing or unreadable
/// (the message says how to create it). In update mode, panics if the file can't be written.
#[track_caller]
pub fn assert_golden(path: impl AsRef<Path>, actual: &str) {
    assert_golden_with(path, actual, GoldenMode::from_env());
}

/// Like [`assert_golden`], with the mode given explicitly instead of read from the environment.
///
/// # Panics
///
/// See [`assert_golden`].
#[track_caller]
pub fn assert_golden_with(path: impl AsRef<Path>, actual: &str, mode: GoldenMode) {
    let path = path.as_ref();
    match mode {
        GoldenMode::Update => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).unwrap_or_else(|err| {
                    panic!("cannot create golden directory {}: {err}", parent.display())
                });
            }
            std::fs::write(path, actual)
                .unwrap_or_else(|err| panic!("cannot write golden file {}: {err}", path.display()));
        }
        GoldenMode::Compare => {
            let expected = match std::fs::read_to_string(path) {
                Ok(expected) => expected.replace("\r\n", "\n"),
                Err(err) => panic!(
                    "cannot read golden file {}: {err}\n\
                     To create it, rerun the test with {ENV_UPDATE_GOLDEN}=1.",
                    path.display()
                ),
            };
            if expected != actual {
                let diff = TextDiff::from_lines(expected.as_str(), actual)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("{} (expected)", path.display()), "actual")
                    .to_string();
                panic!(
                    "golden file {} does not match the actual output.\n\n{diff}\n\
                     If the change is intended, rerun the test with {ENV_UPDATE_GOLDEN}=1 \
                     and review the file with `git diff`.",
                    path.display()
                );
            }
        }
    }
}
