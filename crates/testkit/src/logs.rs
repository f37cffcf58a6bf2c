//! Capture `tracing-subscriber` fmt output in memory.
//!
//! ```
//! use tracelight_testkit::LogCapture;
//!
//! let capture = LogCapture::new();
//! let subscriber = tracing_subscriber::fmt()
//!     .with_writer(capture.clone())
//!     .with_ansi(false)
//!     .finish();
//! tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
//! assert!(capture.lines()[0].ends_with("hello"));
//! ```

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

/// A cloneable in-memory log sink. All clones share one buffer.
///
/// Pass a clone to `tracing_subscriber::fmt().with_writer(..)` (it implements
/// [`MakeWriter`]) and read the output back with [`lines`](Self::lines),
/// [`json_lines`](Self::json_lines) or [`contents`](Self::contents).
#[derive(Debug, Clone, Default)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

/// The writer handed out by [`LogCapture`] for each event.
#[derive(Debug)]
pub struct LogCaptureWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, decoded lossily as UTF-8.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock()).into_owned()
    }

    /// The lines written so far, without line terminators.
    pub fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_owned).collect()
    }

    /// Each non-empty line parsed as JSON.
    ///
    /// # Panics
    ///
    /// Panics with the offending line if one is not valid JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("log line is not valid JSON ({err}): {line}"))
            })
            .collect()
    }

    /// Discards everything captured so far.
    pub fn clear(&self) {
        self.buffer.lock().clear();
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogCaptureWriter {
            buffer: Arc::clone(&self.buffer),
        }
    }
}

impl io::Write for LogCaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The first JSON log line whose `message` is `message`.
///
/// # Panics
///
/// Panics with every line when there is none.
pub fn line_with_message<'a>(
    lines: &'a [serde_json::Value],
    message: &str,
) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no log line {message:?} in {lines:#?}"))
}
