//! An `ExportTraceServiceRequest` read straight from its protobuf bytes into a [`BatchView`].
//!
//! The generated `opentelemetry-proto` types stay the definition of the messages (the gRPC
//! service, the JSON receiver, forwarding and the tests use them); this reader is the ingest
//! fast path over the same bytes. Decoding with prost allocates every string, id and attribute
//! list of the request and frees them again after conversion — most of an ingest's CPU
//! time. Here strings are borrowed from the request (checked to be UTF-8, as prost does), nested
//! array/map values are kept as their bytes (checked to be well formed), and the spans are
//! validated with the same rules as [`convert_request`](super::convert_request).
//!
//! Semantics follow prost's: fields in any order, unknown fields skipped, the last value of a
//! repeated scalar wins, repeated singular messages (`resource`, `scope`, `status`) merge, a
//! wrong wire type for a known field is an error, nesting deeper than 100 messages is an error.
//! One difference, on input no encoder produces: when an `AnyValue` holds two array (or two
//! map) values, prost concatenates them and this reader keeps the last.
//! The tests below hold the reader to `prost` + `convert_request` on generated requests.

use super::ids::{SpanId, TraceId};
use super::otlp::{MAX_VALUE_DEPTH, SpanRejection, validate_ids};
use super::span::{AttrValue, KeyValue, NO_SERVICE_NAME, SpanKind, StatusCode};
use super::text::{RecentStrs, Slot};
use super::view::{
    BatchView, EventView, KvView, LinkView, ResourceView, ScopeView, SpanView, ValueView,
};

/// Why a request's bytes are not a valid `ExportTraceServiceRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends inside a field.
    #[error("buffer underflow")]
    Truncated,
    /// A varint longer than 10 bytes or over 64 bits.
    #[error("invalid varint")]
    Varint,
    /// A field key with field number 0, above 2^29 − 1, or wire type 6 or 7.
    #[error("invalid key value: {0}")]
    Key(u64),
    /// A known field with the wrong wire type.
    #[error("invalid wire type {found} for field {field} of {message}")]
    WireType {
        /// The message being read.
        message: &'static str,
        /// Field number.
        field: u32,
        /// Wire type found.
        found: u8,
    },
    /// A string field that is not UTF-8.
    #[error("invalid string value: data is not UTF-8 encoded")]
    Utf8,
    /// Messages nested deeper than the limit.
    #[error("recursion limit reached")]
    Depth,
    /// A group with no matching end.
    #[error("unterminated group")]
    Group,
}

/// A parsed request: the valid spans and the count of rejected ones.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// The valid spans.
    pub batch: BatchView<'a>,
    /// Number of spans rejected as invalid.
    pub rejected: u64,
    /// Why the first span was rejected.
    pub first_rejection: Option<SpanRejection>,
}

/// prost's recursion limit.
const RECURSION_LIMIT: usize = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over protobuf bytes.
#[derive(Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Most varints here (keys, lengths of short fields, enums) are one byte.
        if let Some((&b, rest)) = self.buf.split_first()
            && b < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(WireError::Truncated)?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err(WireError::Varint);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::Varint)
    }

    /// The next field's number and wire type, or `None` at the end.
    #[inline]
    fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        let field = key >> 3;
        if key > u64::from(u32::MAX) || field == 0 || wire_type > FIXED32 {
            return Err(WireError::Key(key));
        }
        Ok(Some((field as u32, wire_type)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| WireError::Truncated)?)
    }

    fn fixed64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn fixed32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    /// Skips a field's value of `wire_type` (`field` for matching a group's end).
    fn skip(&mut self, field: u32, wire_type: u8, depth: usize) -> Result<(), WireError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                if depth >= RECURSION_LIMIT {
                    return Err(WireError::Depth);
                }
                loop {
                    let Some((f, wt)) = self.key()? else {
                        return Err(WireError::Group);
                    };
                    if wt == END_GROUP {
                        return if f == field {
                            Ok(())
                        } else {
                            Err(WireError::Group)
                        };
                    }
                    self.skip(f, wt, depth + 1)?;
                }
            }
            _ => Err(WireError::Group),
        }
    }
}

/// Checks the wire type of a known field.
fn expect(message: &'static str, field: u32, found: u8, wanted: u8) -> Result<(), WireError> {
    if found == wanted {
        Ok(())
    } else {
        Err(WireError::WireType {
            message,
            field,
            found,
        })
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(bytes).map_err(|_| WireError::Utf8)
}

/// Reads an `ExportTraceServiceRequest`.
pub fn parse_request(buf: &[u8]) -> Result<Parsed<'_>, WireError> {
    let mut p = Parser {
        out: Parsed {
            batch: BatchView::with_capacity_for(buf.len()),
            ..Parsed::default()
        },
        recent: RecentStrs::default(),
    };
    let mut c = Cursor::new(buf);
    while let Some((field, wt)) = c.key()? {
        if field == 1 {
            expect("ExportTraceServiceRequest", field, wt, LEN)?;
            p.resource_spans(c.bytes()?)?;
        } else {
            c.skip(field, wt, 0)?;
        }
    }
    Ok(p.out)
}

struct Parser<'a> {
    out: Parsed<'a>,
    /// The previous span's attribute strings, by position (see [`RecentStrs`]).
    recent: RecentStrs<'a>,
}

// Message nesting depths (the request is 0), passed to `skip` and `key_value` for the recursion
// limit: ResourceSpans 1; Resource, ScopeSpans 2; InstrumentationScope, Span, resource
// KeyValue 3; Status, Event, Link, scope and span KeyValue 4; event and link KeyValue 5.

impl<'a> Parser<'a> {
    fn resource_spans(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        // The resource first (it may follow the spans on the wire), then the scopes.
        let start = self.out.batch.kvs.len() as u32;
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            if field == 1 {
                expect("ResourceSpans", field, wt, LEN)?;
                self.resource(c.bytes()?)?;
            } else {
                c.skip(field, wt, 1)?;
            }
        }
        let attrs = start..self.out.batch.kvs.len() as u32;
        let service_name = self
            .out
            .batch
            .kvs
            .get(attrs.start as usize..attrs.end as usize)
            .unwrap_or_default()
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value {
                ValueView::Str(s) if !s.is_empty() => Some(s),
                _ => None,
            })
            .unwrap_or(NO_SERVICE_NAME);
        let resource = self.out.batch.resources.len() as u32;
        self.out.batch.resources.push(ResourceView {
            service_name,
            attrs,
        });
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            if field == 2 {
                expect("ResourceSpans", field, wt, LEN)?;
                self.scope_spans(c.bytes()?, resource)?;
            } else {
                c.skip(field, wt, 1)?;
            }
        }
        Ok(())
    }

    fn resource(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            if field == 1 {
                expect("Resource", field, wt, LEN)?;
                self.key_value(c.bytes()?, 3)?;
            } else {
                c.skip(field, wt, 2)?;
            }
        }
        Ok(())
    }

    fn scope_spans(&mut self, buf: &'a [u8], resource: u32) -> Result<(), WireError> {
        let start = self.out.batch.kvs.len() as u32;
        let (mut name, mut version) = ("", "");
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            if field == 1 {
                expect("ScopeSpans", field, wt, LEN)?;
                let mut s = Cursor::new(c.bytes()?);
                while let Some((field, wt)) = s.key()? {
                    match field {
                        1 => {
                            expect("InstrumentationScope", field, wt, LEN)?;
                            name = utf8(s.bytes()?)?;
                        }
                        2 => {
                            expect("InstrumentationScope", field, wt, LEN)?;
                            version = utf8(s.bytes()?)?;
                        }
                        3 => {
                            expect("InstrumentationScope", field, wt, LEN)?;
                            self.key_value(s.bytes()?, 4)?;
                        }
                        _ => s.skip(field, wt, 3)?,
                    }
                }
            } else {
                c.skip(field, wt, 2)?;
            }
        }
        let scope = self.out.batch.scopes.len() as u32;
        self.out.batch.scopes.push(ScopeView {
            name,
            version,
            attrs: start..self.out.batch.kvs.len() as u32,
        });
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            if field == 2 {
                expect("ScopeSpans", field, wt, LEN)?;
                self.span(c.bytes()?, resource, scope)?;
            } else {
                c.skip(field, wt, 2)?;
            }
        }
        Ok(())
    }

    fn span(&mut self, buf: &'a [u8], resource: u32, scope: u32) -> Result<(), WireError> {
        const M: &str = "Span";
        let batch = &self.out.batch;
        let (kvs_at, events_at, links_at) =
            (batch.kvs.len(), batch.events.len(), batch.links.len());
        let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
        let (mut trace_state, mut name, mut status_message) = ("", "", "");
        let (mut flags, mut kind, mut start_ns, mut end_ns) = (0, 0, 0, 0);
        let mut status_code = 0;
        // Attributes in a first pass, events and links after, each kept contiguous.
        let mut events_or_links = false;
        let mut attribute = 0;
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            match field {
                1 => {
                    expect(M, field, wt, LEN)?;
                    trace_id = c.bytes()?;
                }
                2 => {
                    expect(M, field, wt, LEN)?;
                    span_id = c.bytes()?;
                }
                3 => {
                    expect(M, field, wt, LEN)?;
                    trace_state = utf8(c.bytes()?)?;
                }
                4 => {
                    expect(M, field, wt, LEN)?;
                    parent = c.bytes()?;
                }
                5 => {
                    expect(M, field, wt, LEN)?;
                    name = utf8(c.bytes()?)?;
                }
                6 => {
                    expect(M, field, wt, VARINT)?;
                    kind = c.varint()? as i32;
                }
                7 => {
                    expect(M, field, wt, FIXED64)?;
                    start_ns = c.fixed64()?;
                }
                8 => {
                    expect(M, field, wt, FIXED64)?;
                    end_ns = c.fixed64()?;
                }
                9 => {
                    expect(M, field, wt, LEN)?;
                    let (key, value) =
                        key_value(c.bytes()?, 4, Some((&mut self.recent, attribute)))?;
                    self.out.batch.kvs.push(KvView { key, value });
                    attribute += 1;
                }
                11 | 13 => {
                    expect(M, field, wt, LEN)?;
                    c.bytes()?;
                    events_or_links = true;
                }
                15 => {
                    expect(M, field, wt, LEN)?;
                    let mut s = Cursor::new(c.bytes()?);
                    while let Some((field, wt)) = s.key()? {
                        match field {
                            2 => {
                                expect("Status", field, wt, LEN)?;
                                status_message = utf8(s.bytes()?)?;
                            }
                            3 => {
                                expect("Status", field, wt, VARINT)?;
                                status_code = s.varint()? as i32;
                            }
                            _ => s.skip(field, wt, 4)?,
                        }
                    }
                }
                16 => {
                    expect(M, field, wt, FIXED32)?;
                    flags = c.fixed32()?;
                }
                10 | 12 | 14 => {
                    expect(M, field, wt, VARINT)?;
                    c.varint()?;
                }
                _ => c.skip(field, wt, 3)?,
            }
        }
        let attrs = kvs_at as u32..self.out.batch.kvs.len() as u32;
        if events_or_links {
            let mut c = Cursor::new(buf);
            while let Some((field, wt)) = c.key()? {
                match field {
                    11 => self.event(c.bytes()?)?,
                    13 => self.link(c.bytes()?)?,
                    _ => c.skip(field, wt, 3)?,
                }
            }
        }
        let batch = &mut self.out.batch;
        match validate_ids(trace_id, span_id, parent) {
            Ok((trace_id, span_id, parent_span_id)) => {
                let span = SpanView {
                    trace_id,
                    span_id,
                    parent_span_id,
                    trace_state,
                    flags,
                    name,
                    kind: SpanKind::from_otlp(kind),
                    start_ns,
                    end_ns,
                    status_code: StatusCode::from_otlp(status_code),
                    status_message,
                    attrs,
                    events: events_at as u32..batch.events.len() as u32,
                    links: links_at as u32..batch.links.len() as u32,
                    resource,
                    scope,
                };
                batch.spans.push(span);
            }
            Err(rejection) => {
                // Nothing of a rejected span stays in the batch.
                batch.kvs.truncate(kvs_at);
                batch.events.truncate(events_at);
                batch.links.truncate(links_at);
                self.out.rejected += 1;
                self.out.first_rejection.get_or_insert(rejection);
            }
        }
        Ok(())
    }

    fn event(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        let start = self.out.batch.kvs.len() as u32;
        let (mut time_ns, mut name) = (0, "");
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            match field {
                1 => {
                    expect("Event", field, wt, FIXED64)?;
                    time_ns = c.fixed64()?;
                }
                2 => {
                    expect("Event", field, wt, LEN)?;
                    name = utf8(c.bytes()?)?;
                }
                3 => {
                    expect("Event", field, wt, LEN)?;
                    self.key_value(c.bytes()?, 5)?;
                }
                4 => {
                    expect("Event", field, wt, VARINT)?;
                    c.varint()?;
                }
                _ => c.skip(field, wt, 4)?,
            }
        }
        let attrs = start..self.out.batch.kvs.len() as u32;
        self.out.batch.events.push(EventView {
            time_ns,
            name,
            attrs,
        });
        Ok(())
    }

    fn link(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        let start = self.out.batch.kvs.len();
        let (mut trace_id, mut span_id, mut trace_state): (&[u8], &[u8], &str) = (&[], &[], "");
        let mut c = Cursor::new(buf);
        while let Some((field, wt)) = c.key()? {
            match field {
                1 => {
                    expect("Link", field, wt, LEN)?;
                    trace_id = c.bytes()?;
                }
                2 => {
                    expect("Link", field, wt, LEN)?;
                    span_id = c.bytes()?;
                }
                3 => {
                    expect("Link", field, wt, LEN)?;
                    trace_state = utf8(c.bytes()?)?;
                }
                4 => {
                    expect("Link", field, wt, LEN)?;
                    self.key_value(c.bytes()?, 5)?;
                }
                5 => {
                    expect("Link", field, wt, VARINT)?;
                    c.varint()?;
                }
                6 => {
                    expect("Link", field, wt, FIXED32)?;
                    c.fixed32()?;
                }
                _ => c.skip(field, wt, 4)?,
            }
        }
        let batch = &mut self.out.batch;
        // A link with bad ids carries no usable reference: drop the link, keep the span.
        match (TraceId::from_slice(trace_id), SpanId::from_slice(span_id)) {
            (Ok(trace_id), Ok(span_id)) => batch.links.push(LinkView {
                trace_id,
                span_id,
                trace_state,
                attrs: start as u32..batch.kvs.len() as u32,
            }),
            _ => batch.kvs.truncate(start),
        }
        Ok(())
    }

    /// Reads a `KeyValue` at message depth `depth` and appends it.
    fn key_value(&mut self, buf: &'a [u8], depth: usize) -> Result<(), WireError> {
        let (key, value) = key_value(buf, depth, None)?;
        self.out.batch.kvs.push(KvView { key, value });
        Ok(())
    }
}

/// A `KeyValue` message at message depth `depth`: its key and its value. With `recent`, the
/// attribute at that position of a span: its strings are compared with the previous span's
/// there before being validated.
fn key_value<'a>(
    buf: &'a [u8],
    depth: usize,
    mut recent: Option<(&mut RecentStrs<'a>, usize)>,
) -> Result<(&'a str, ValueView<'a>), WireError> {
    if depth > RECURSION_LIMIT {
        return Err(WireError::Depth);
    }
    // The layout every SDK writes: the key (field 1), then the value (field 2), each with a
    // one-byte length, and nothing else. Read at once; any other layout (another order,
    // repeated or unknown fields, longer lengths) goes through the loop below, to the same
    // result.
    if let [0x0a, key_len, rest @ ..] = buf
        && *key_len < 0x80
        && let Some((key_bytes, rest)) = rest.split_at_checked(usize::from(*key_len))
        && let [0x12, value_len, value_bytes @ ..] = rest
        && *value_len < 0x80
        && value_bytes.len() == usize::from(*value_len)
    {
        let key = match &mut recent {
            Some((recent, at)) => recent.str(Slot::Key(*at), key_bytes),
            None => std::str::from_utf8(key_bytes),
        }
        .map_err(|_| WireError::Utf8)?;
        let value_recent = recent.as_mut().map(|(r, at)| (&mut **r, *at));
        let value = merge_any_value(ValueView::Empty, value_bytes, depth + 1, value_recent)?;
        return Ok((key, value));
    }
    let (mut key, mut value) = ("", ValueView::Empty);
    let mut c = Cursor::new(buf);
    while let Some((field, wt)) = c.key()? {
        match field {
            1 => {
                expect("KeyValue", field, wt, LEN)?;
                let bytes = c.bytes()?;
                key = match &mut recent {
                    Some((recent, at)) => recent.str(Slot::Key(*at), bytes),
                    None => std::str::from_utf8(bytes),
                }
                .map_err(|_| WireError::Utf8)?;
            }
            2 => {
                expect("KeyValue", field, wt, LEN)?;
                let value_recent = recent.as_mut().map(|(r, at)| (&mut **r, *at));
                value = merge_any_value(value, c.bytes()?, depth + 1, value_recent)?;
            }
            _ => c.skip(field, wt, depth + 1)?,
        }
    }
    Ok((key, value))
}

/// Reads an `AnyValue` at message depth `depth` into `prev` (a repeated field merges: the
/// last value set wins). With `recent`, the value of the attribute at that position of a span
/// (see [`key_value`]).
fn merge_any_value<'a>(
    prev: ValueView<'a>,
    buf: &'a [u8],
    depth: usize,
    mut recent: Option<(&mut RecentStrs<'a>, usize)>,
) -> Result<ValueView<'a>, WireError> {
    const M: &str = "AnyValue";
    if depth > RECURSION_LIMIT {
        return Err(WireError::Depth);
    }
    // The usual layouts, read at once: a string with a one-byte length, or an integer, and
    // nothing else. Anything else goes through the loop below, to the same result.
    match buf {
        [0x0a, len, bytes @ ..] if *len < 0x80 && bytes.len() == usize::from(*len) => {
            return Ok(ValueView::Str(
                match &mut recent {
                    Some((recent, at)) => recent.str(Slot::Value(*at), bytes),
                    None => std::str::from_utf8(bytes),
                }
                .map_err(|_| WireError::Utf8)?,
            ));
        }
        [0x18, rest @ ..] => {
            let mut c = Cursor::new(rest);
            if let Ok(v) = c.varint()
                && c.buf.is_empty()
            {
                return Ok(ValueView::Int(v as i64));
            }
        }
        _ => {}
    }
    let mut value = prev;
    let mut c = Cursor::new(buf);
    while let Some((field, wt)) = c.key()? {
        value = match field {
            1 => {
                expect(M, field, wt, LEN)?;
                let bytes = c.bytes()?;
                ValueView::Str(
                    match &mut recent {
                        Some((recent, at)) => recent.str(Slot::Value(*at), bytes),
                        None => std::str::from_utf8(bytes),
                    }
                    .map_err(|_| WireError::Utf8)?,
                )
            }
            2 => {
                expect(M, field, wt, VARINT)?;
                ValueView::Bool(c.varint()? != 0)
            }
            3 => {
                expect(M, field, wt, VARINT)?;
                ValueView::Int(c.varint()? as i64)
            }
            4 => {
                expect(M, field, wt, FIXED64)?;
                ValueView::Double(f64::from_bits(c.fixed64()?))
            }
            5 | 6 => {
                expect(M, field, wt, LEN)?;
                let bytes = c.bytes()?;
                let map = field == 6;
                check_nested(map, bytes, depth + 1)?;
                ValueView::Raw { map, bytes }
            }
            7 => {
                expect(M, field, wt, LEN)?;
                ValueView::Bytes(c.bytes()?)
            }
            8 => {
                // Deprecated string-table reference (profiles only): no table for traces.
                expect(M, field, wt, VARINT)?;
                c.varint()?;
                ValueView::Empty
            }
            _ => {
                c.skip(field, wt, depth + 1)?;
                continue;
            }
        };
    }
    Ok(value)
}

/// Checks an `ArrayValue` (`map == false`) or `KeyValueList` at message depth `depth`.
fn check_nested(map: bool, buf: &[u8], depth: usize) -> Result<(), WireError> {
    if depth > RECURSION_LIMIT {
        return Err(WireError::Depth);
    }
    let mut c = Cursor::new(buf);
    while let Some((field, wt)) = c.key()? {
        if field == 1 {
            let message = if map { "KeyValueList" } else { "ArrayValue" };
            expect(message, field, wt, LEN)?;
            let item = c.bytes()?;
            if map {
                key_value(item, depth + 1, None)?;
            } else {
                merge_any_value(ValueView::Empty, item, depth + 1, None)?;
            }
        } else {
            c.skip(field, wt, depth + 1)?;
        }
    }
    Ok(())
}

/// The items of an `ArrayValue` or `KeyValueList` checked by [`check_nested`]: each an
/// `AnyValue` or a `KeyValue` (`map`) decoded. Items that fail to read (impossible after the
/// check) are skipped.
pub(crate) fn nested_items(
    map: bool,
    buf: &[u8],
) -> impl Iterator<Item = (&str, ValueView<'_>)> + '_ {
    let mut c = Cursor::new(buf);
    std::iter::from_fn(move || {
        loop {
            let (field, wt) = c.key().ok()??;
            if field != 1 || wt != LEN {
                c.skip(field, wt, 0).ok()?;
                continue;
            }
            let item = c.bytes().ok()?;
            // The depth was checked by `check_nested`; 0 here only bounds the read.
            let read = if map {
                key_value(item, 0, None)
            } else {
                merge_any_value(ValueView::Empty, item, 0, None).map(|v| ("", v))
            };
            if let Ok(kv) = read {
                return Some(kv);
            }
        }
    })
}

/// The number of items of a nested value (see [`nested_items`]).
pub(crate) fn nested_len(map: bool, buf: &[u8]) -> usize {
    nested_items(map, buf).count()
}

/// A checked nested value as an owned model value, at value depth `depth` (the conversion's
/// depth: values deeper than [`MAX_VALUE_DEPTH`] become `Empty`).
pub(crate) fn owned_nested(map: bool, buf: &[u8], depth: usize) -> AttrValue {
    if depth > MAX_VALUE_DEPTH {
        return AttrValue::Empty;
    }
    let owned = |v: &ValueView<'_>| {
        if depth + 1 > MAX_VALUE_DEPTH {
            return AttrValue::Empty;
        }
        match v {
            ValueView::Raw { map, bytes } => owned_nested(*map, bytes, depth + 1),
            other => other.to_owned_value(),
        }
    };
    if map {
        AttrValue::Map(
            nested_items(true, buf)
                .map(|(key, v)| KeyValue {
                    key: key.to_owned(),
                    value: owned(&v),
                })
                .collect(),
        )
    } else {
        AttrValue::Array(nested_items(false, buf).map(|(_, v)| owned(&v)).collect())
    }
}

#[cfg(test)]
#[path = "wire/tests.rs"]
pub(crate) mod tests;
