//! The three line formats. Each writes one complete line into a reused buffer.

use std::fmt::{self, Write};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level};
use tracing_log::NormalizeEvent;

use super::SpanIds;
use super::timestamp::write_rfc3339;
use crate::propagation::write_hex;

/// Lowercase hex digits in a fixed buffer: ids are written without `core::fmt`.
pub(super) struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl SpanIds {
    /// The trace id (32 digits) and span id (16 digits) as lowercase hex.
    pub(super) fn hex(&self) -> (Hex<32>, Hex<16>) {
        let mut trace_id = [b'0'; 32];
        let mut span_id = [b'0'; 16];
        write_hex(&mut trace_id, &self.trace_id.to_bytes());
        write_hex(&mut span_id, &self.span_id.to_bytes());
        (Hex(trace_id), Hex(span_id))
    }
}

/// Everything a line shows.
pub(super) struct Line<'a> {
    pub(super) event: &'a Event<'a>,
    pub(super) service: &'a str,
    pub(super) ids: Option<SpanIds>,
    pub(super) span_name: Option<&'a str>,
    pub(super) ansi: bool,
}

impl Line<'_> {
    pub(super) fn json(&self, buf: &mut String) {
        let normalized = self.event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| self.event.metadata());
        buf.push_str("{\"timestamp\":\"");
        write_rfc3339(buf, SystemTime::now());
        buf.push_str("\",\"level\":\"");
        buf.push_str(meta.level().as_str());
        buf.push_str("\",\"service\":");
        json_str(buf, self.service);
        buf.push_str(",\"target\":");
        json_str(buf, meta.target());
        self.event.record(&mut JsonFields { buf });
        if let Some(ids) = self.ids {
            let (trace_id, span_id) = ids.hex();
            buf.push_str(",\"trace_id\":\"");
            buf.push_str(trace_id.as_str());
            buf.push_str("\",\"span_id\":\"");
            buf.push_str(span_id.as_str());
            buf.push('"');
        }
        if let Some(name) = self.span_name {
            buf.push_str(",\"span\":");
            json_str(buf, name);
        }
        buf.push_str("}\n");
    }

    pub(super) fn compact(&self, buf: &mut String) {
        let normalized = self.event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| self.event.metadata());
        write_rfc3339(buf, SystemTime::now());
        buf.push(' ');
        self.level(buf, *meta.level());
        buf.push(' ');
        buf.push_str(self.service);
        buf.push(' ');
        self.dimmed(buf, meta.target());
        buf.push_str(": ");
        let mut fields = TextFields {
            buf,
            sep: " ",
            kv: "=",
            first: true,
        };
        self.event.record(&mut fields);
        if let Some(ids) = self.ids {
            let (trace_id, span_id) = ids.hex();
            buf.push_str(" trace_id=");
            buf.push_str(trace_id.as_str());
            buf.push_str(" span_id=");
            buf.push_str(span_id.as_str());
        }
        buf.push('\n');
    }

    pub(super) fn pretty(&self, buf: &mut String) {
        let normalized = self.event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| self.event.metadata());
        buf.push_str("  ");
        write_rfc3339(buf, SystemTime::now());
        buf.push(' ');
        self.level(buf, *meta.level());
        buf.push(' ');
        self.dimmed(buf, meta.target());
        buf.push_str(": ");
        let mut fields = TextFields {
            buf,
            sep: "\n    ",
            kv: ": ",
            first: true,
        };
        self.event.record(&mut fields);
        buf.push_str("\n    ");
        self.dimmed(buf, "service: ");
        buf.push_str(self.service);
        if let Some(ids) = self.ids {
            let (trace_id, span_id) = ids.hex();
            buf.push_str("  trace_id: ");
            buf.push_str(trace_id.as_str());
            buf.push_str("  span_id: ");
            buf.push_str(span_id.as_str());
        }
        if let Some(name) = self.span_name {
            buf.push_str("  in ");
            buf.push_str(name);
        }
        if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
            buf.push_str("\n    ");
            self.dimmed(buf, "at ");
            let _ = write!(buf, "{file}:{line}");
        }
        buf.push('\n');
    }

    fn level(&self, buf: &mut String, level: Level) {
        let (text, color) = match level {
            Level::TRACE => ("TRACE", "35"),
            Level::DEBUG => ("DEBUG", "34"),
            Level::INFO => (" INFO", "32"),
            Level::WARN => (" WARN", "33"),
            Level::ERROR => ("ERROR", "31"),
        };
        if self.ansi {
            let _ = write!(buf, "\x1b[{color}m{text}\x1b[0m");
        } else {
            buf.push_str(text);
        }
    }

    fn dimmed(&self, buf: &mut String, text: &str) {
        if self.ansi {
            let _ = write!(buf, "\x1b[2m{text}\x1b[0m");
        } else {
            buf.push_str(text);
        }
    }
}

/// Fields added by `tracing-log` when normalising `log` records; already in the metadata.
fn is_log_field(name: &str) -> bool {
    name.starts_with("log.")
}

struct JsonFields<'a> {
    buf: &'a mut String,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        self.buf.push(',');
        json_str(self.buf, field.name());
        self.buf.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if is_log_field(field.name()) {
            return;
        }
        self.key(field);
        json_str(self.buf, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if is_log_field(field.name()) {
            return;
        }
        self.key(field);
        let _ = write!(self.buf, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if is_log_field(field.name()) {
            return;
        }
        self.key(field);
        let _ = write!(self.buf, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.buf, "{value}");
        } else {
            let _ = write!(self.buf, "\"{value}\"");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.buf.push_str(if value { "true" } else { "false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        self.buf.push('"');
        let _ = write!(JsonEscaper(self.buf), "{value}");
        self.buf.push('"');
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if is_log_field(field.name()) {
            return;
        }
        self.key(field);
        self.buf.push('"');
        let _ = write!(JsonEscaper(self.buf), "{value:?}");
        self.buf.push('"');
    }
}

struct TextFields<'a> {
    buf: &'a mut String,
    sep: &'static str,
    kv: &'static str,
    first: bool,
}

impl TextFields<'_> {
    fn start(&mut self, field: &Field) {
        if field.name() == "message" {
            if !self.first {
                self.buf.push(' ');
            }
        } else {
            if !self.first {
                self.buf.push_str(self.sep);
            }
            self.buf.push_str(field.name());
            self.buf.push_str(self.kv);
        }
        self.first = false;
    }
}

impl Visit for TextFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if is_log_field(field.name()) {
            return;
        }
        self.start(field);
        self.buf.push_str(value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.start(field);
        let _ = write!(self.buf, "{value}");
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if is_log_field(field.name()) {
            return;
        }
        self.start(field);
        let _ = write!(self.buf, "{value:?}");
    }
}

/// Appends `s` as a JSON string literal.
pub(super) fn json_str(buf: &mut String, s: &str) {
    buf.push('"');
    let _ = JsonEscaper(buf).write_str(s);
    buf.push('"');
}

/// A `fmt::Write` that escapes what it is given for the inside of a JSON string.
struct JsonEscaper<'a>(&'a mut String);

impl Write for JsonEscaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text (service names, targets, span names, messages) needs no escape: one check
        // over the bytes and one copy, instead of a byte-by-byte walk.
        if !s.bytes().any(needs_escape) {
            self.0.push_str(s);
            return Ok(());
        }
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc: &str = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.push_str(&s[start..i]);
            if esc.is_empty() {
                let _ = write!(self.0, "\\u{b:04x}");
            } else {
                self.0.push_str(esc);
            }
            start = i + 1;
        }
        self.0.push_str(&s[start..]);
        Ok(())
    }
}

/// Whether `b` is escaped inside a JSON string: the quote, the backslash and the control
/// characters.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
        // Each escaped byte alone, and text with nothing to escape.
        for (text, json) in [
            ("\"", r#""\"""#),
            ("\\", r#""\\""#),
            ("\u{1f}", r#""\u001f""#),
            ("\t", r#""\t""#),
            ("GET /orders/{id} é ~", r#""GET /orders/{id} é ~""#),
            ("", r#""""#),
        ] {
            let mut s = String::new();
            json_str(&mut s, text);
            assert_eq!(s, json, "{text:?}");
        }
    }

    #[test]
    fn ids_as_hex_like_display() {
        use opentelemetry::trace::{SpanId, TraceId};
        for (t, s) in [
            (1u128, 2u64),
            (u128::MAX, u64::MAX),
            (0x4bf9_2f35 << 96, 0xf067),
        ] {
            let ids = SpanIds {
                trace_id: TraceId::from(t),
                span_id: SpanId::from(s),
            };
            let (trace_id, span_id) = ids.hex();
            assert_eq!(trace_id.as_str(), ids.trace_id.to_string());
            assert_eq!(span_id.as_str(), ids.span_id.to_string());
        }
    }
}
