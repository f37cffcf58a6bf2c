//! `assert_golden` in compare and update mode, in a private temporary directory.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracelight_testkit::{GoldenMode, assert_golden, assert_golden_with};

/// A fresh directory under the system temp dir, unique per process and call.
fn unique_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "tracelight-testkit-golden-{}-{n}-{name}",
        std::process::id()
    ))
}

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .expect("panic payload is a string")
}

#[test]
fn update_mode_creates_directories_and_writes() {
    let dir = unique_dir("update");
    let path = dir.join("nested/deeper/out.txt");
    assert_golden_with(&path, "line 1\nline 2\n", GoldenMode::Update);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "line 1\nline 2\n");

    // Overwrites, and the result then compares equal.
    assert_golden_with(&path, "line 1\nline 3\n", GoldenMode::Update);
    assert_golden_with(&path, "line 1\nline 3\n", GoldenMode::Compare);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn compare_mode_passes_on_equal_contents() {
    let dir = unique_dir("equal");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("equal.txt");
    std::fs::write(&path, "a\nb\n").unwrap();
    assert_golden_with(&path, "a\nb\n", GoldenMode::Compare);

    // CRLF checkouts compare equal.
    std::fs::write(&path, "a\r\nb\r\n").unwrap();
    assert_golden_with(&path, "a\nb\n", GoldenMode::Compare);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn compare_mode_panics_with_a_unified_diff() {
    let dir = unique_dir("mismatch");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mismatch.txt");
    std::fs::write(&path, "same\nold line\nsame too\n").unwrap();

    let message = panic_message(|| {
        assert_golden_with(&path, "same\nnew line\nsame too\n", GoldenMode::Compare);
    });
    assert!(message.contains("-old line"), "{message}");
    assert!(message.contains("+new line"), "{message}");
    assert!(message.contains(" same too"), "{message}");
    assert!(message.contains("@@"), "{message}");
    assert!(message.contains("UPDATE_GOLDEN=1"), "{message}");
    assert!(message.contains("mismatch.txt"), "{message}");
    // The file is left alone.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "same\nold line\nsame too\n"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn compare_mode_panics_on_a_missing_file() {
    let path = unique_dir("missing").join("missing.txt");
    let message = panic_message(|| assert_golden_with(&path, "x", GoldenMode::Compare));
    assert!(message.contains("UPDATE_GOLDEN=1"), "{message}");
    assert!(!path.exists());
}

#[test]
fn assert_golden_uses_the_environment_mode() {
    let dir = unique_dir("env");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("env.txt");
    std::fs::write(&path, "expected\n").unwrap();
    match GoldenMode::from_env() {
        GoldenMode::Compare => {
            assert_golden(&path, "expected\n");
            let message = panic_message(|| assert_golden(&path, "other\n"));
            assert!(message.contains("+other"), "{message}");
        }
        GoldenMode::Update => {
            assert_golden(&path, "other\n");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "other\n");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
