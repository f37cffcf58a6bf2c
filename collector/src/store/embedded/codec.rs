//! The span encoding shared by WAL records and blocks.
//!
//! A set of spans is encoded as one string table (every key and name, and string values of at
//! most 16 bytes, once; longer values are written inline), a resource table, a scope table, then the spans grouped by trace id and sorted by (start,
//! span id) inside a group. Numbers are LEB128 varints, times are deltas, a parent that is in the
//! same group is a small index instead of 8 bytes. Blocks are then compressed with zstd; WAL
//! records are not.

use std::collections::HashMap;
use std::sync::Arc;

use super::prescan::{DERIVED_TAG_KEYS, MAX_PRESCAN_TAGS, StoredValue, TagCheck};
use crate::model::{
    AttrValue, BatchView, Event, KeyValue, KvView, Link, MAX_VALUE_DEPTH, Resource, Scope, Span,
    SpanId, SpanKind, SpanRef, Status, StatusCode, TraceId, ValueView, nested_items, nested_len,
};

/// Why bytes could not be decoded (only possible for corrupt data: records are checksummed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DecodeError(pub(crate) &'static str);

/// Maximum nesting of array/map attribute values accepted by the decoder.
const MAX_DEPTH: usize = 32;

/// String attribute values longer than this are stored inline instead of in the string table.
const INTERN_MAX_LEN: usize = 16;

// === a fast hasher for the encoder's interning maps (keys are trusted, not attacker-chosen
// in a way that matters: the maps live for one batch or block) ===

/// FxHash (rustc's hasher): a multiply-rotate over words; much cheaper than SipHash here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

// === string equality ===

/// `a == b`, inline for the short keys and values that the per-position caches compare on
/// every span (a call to `memcmp` cost more than the comparison itself).
#[inline]
pub(crate) fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words already compared.
    word(a, n - 8) == word(b, n - 8)
}

// === varints ===

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over encoded bytes.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(DecodeError("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }

    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
        if n > self.buf.len() - self.pos.min(self.buf.len()) {
            return Err(DecodeError("length past end"));
        }
        Ok(n)
    }

    /// A count of items each at least one byte long (so corrupt counts can't allocate much).
    fn count(&mut self) -> Result<usize, DecodeError> {
        self.len()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DecodeError("truncated bytes"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let b: [u8; 8] = self.bytes(8)?.try_into().map_err(|_| DecodeError("u64"))?;
        Ok(u64::from_le_bytes(b))
    }

    fn trace_id(&mut self) -> Result<TraceId, DecodeError> {
        TraceId::from_slice(self.bytes(16)?).map_err(|_| DecodeError("invalid trace id"))
    }

    fn span_id(&mut self) -> Result<SpanId, DecodeError> {
        SpanId::from_slice(self.bytes(8)?).map_err(|_| DecodeError("invalid span id"))
    }

    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| DecodeError("invalid utf-8"))
    }
}

// === encoding ===

/// Encodes `spans` (any order) into one self-contained buffer.
#[cfg(test)]
pub(crate) fn encode_spans<'s>(spans: impl IntoIterator<Item = &'s Span>) -> Vec<u8> {
    encode_batch(&BatchView::from_spans(spans))
}

/// Encodes the spans of `batch` into one self-contained buffer.
pub(crate) fn encode_batch<'s>(batch: &BatchView<'s>) -> Vec<u8> {
    let mut spans: Vec<SpanRef<'_, 's>> = batch.spans().collect();
    spans.sort_by_key(|s| (s.trace_id, s.start_ns, s.span_id));
    let mut enc = Encoder::default();
    let base = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let mut body = Vec::with_capacity(spans.len() * 160);
    let groups: Vec<&[SpanRef<'_, 's>]> = spans.chunk_by(|a, b| a.trace_id == b.trace_id).collect();
    put_varint(&mut body, groups.len() as u64);
    let mut group_buf = Vec::new();
    for group in groups {
        group_buf.clear();
        let mut prev = base;
        for span in group {
            enc.span(&mut group_buf, batch, span, group, &mut prev);
        }
        body.extend_from_slice(group[0].trace_id.as_bytes());
        put_varint(&mut body, group_buf.len() as u64);
        put_varint(&mut body, group.len() as u64);
        body.extend_from_slice(&group_buf);
    }
    let mut out = Vec::with_capacity(body.len() + enc.strings_len + 64);
    put_varint(&mut out, base);
    put_varint(&mut out, enc.strings.len() as u64);
    for s in &enc.strings {
        put_varint(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    for table in [&enc.resources, &enc.scopes] {
        put_varint(&mut out, table.len() as u64);
        for item in table {
            out.extend_from_slice(item);
        }
    }
    out.extend_from_slice(&body);
    out
}

#[derive(Default)]
struct Encoder<'s> {
    string_ids: FxMap<&'s str, u32>,
    strings: Vec<&'s str>,
    strings_len: usize,
    /// Table index of each resource (scope) of the batch, once encoded.
    resource_ids: Vec<Option<u32>>,
    scope_ids: Vec<Option<u32>>,
    table_ids: FxMap<Vec<u8>, u32>,
    resources: Vec<Vec<u8>>,
    scopes: Vec<Vec<u8>>,
    /// The string last written at each slot and its id (see [`Encoder::string_at`]).
    recent: Vec<Option<(&'s str, u32)>>,
}

/// Slots of [`Encoder::string_at`]: trace state, name, status message, then key/value pairs of
/// the span attributes by position.
const SPAN_SLOTS: usize = 3;
const RECENT_SLOTS: usize = SPAN_SLOTS + 64;

impl<'s> Encoder<'s> {
    fn intern(&mut self, s: &'s str) -> u32 {
        let next = self.strings.len() as u32;
        *self.string_ids.entry(s).or_insert_with(|| {
            self.strings.push(s);
            self.strings_len += s.len() + 2;
            next
        })
    }

    fn string(&mut self, out: &mut Vec<u8>, s: &'s str) {
        let id = self.intern(s);
        put_varint(out, u64::from(id));
    }

    /// Like [`Self::string`], but first compares with the string last written at `slot`:
    /// spans mostly repeat their neighbours' keys in the same order, and a compare is much
    /// cheaper than a hash-map lookup.
    fn string_at(&mut self, out: &mut Vec<u8>, s: &'s str, slot: usize) {
        if let Some(Some((last, id))) = self.recent.get(slot)
            && same_str(last, s)
        {
            put_varint(out, u64::from(*id));
            return;
        }
        let id = self.intern(s);
        put_varint(out, u64::from(id));
        if slot < RECENT_SLOTS {
            if self.recent.len() <= slot {
                self.recent.resize(slot + 1, None);
            }
            self.recent[slot] = Some((s, id));
        }
    }

    fn kvs(&mut self, out: &mut Vec<u8>, kvs: &[KvView<'s>]) {
        put_varint(out, kvs.len() as u64);
        for kv in kvs {
            self.string(out, kv.key);
            self.value(out, &kv.value, 0);
        }
    }

    /// A span's own attributes: keys and short values go through the per-position cache.
    fn span_kvs(&mut self, out: &mut Vec<u8>, kvs: &[KvView<'s>]) {
        put_varint(out, kvs.len() as u64);
        for (i, kv) in kvs.iter().enumerate() {
            self.string_at(out, kv.key, 2 * i + SPAN_SLOTS);
            match kv.value {
                ValueView::Str(v) if v.len() <= INTERN_MAX_LEN => {
                    out.push(0);
                    self.string_at(out, v, 2 * i + 1 + SPAN_SLOTS);
                }
                ref v => self.value(out, v, 0),
            }
        }
    }

    fn str_value(&mut self, out: &mut Vec<u8>, s: &'s str) {
        // Long values are mostly unique (ids, URLs): interning them costs a hash-map insert
        // each and saves nothing, so they are written inline and left to zstd.
        if s.len() > INTERN_MAX_LEN {
            out.push(9);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        } else {
            out.push(0);
            self.string(out, s);
        }
    }

    /// A value at nesting depth `depth` (an attribute's value is at 0); a received nested
    /// value deeper than the conversion keeps is `Empty`, as in [`convert_request`].
    ///
    /// [`convert_request`]: crate::model::convert_request
    fn value(&mut self, out: &mut Vec<u8>, v: &ValueView<'s>, depth: usize) {
        match *v {
            ValueView::Str(s) => self.str_value(out, s),
            ValueView::Bool(false) => out.push(1),
            ValueView::Bool(true) => out.push(2),
            ValueView::Int(i) => {
                out.push(3);
                put_varint(out, zigzag(i));
            }
            ValueView::Double(d) => {
                out.push(4);
                out.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            ValueView::Bytes(b) => {
                out.push(5);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            ValueView::Nested(v) => self.model_nested(out, v, depth),
            ValueView::Raw { map, bytes } => {
                let item_depth = depth + 1;
                let cut = |v: ValueView<'s>| {
                    if item_depth > MAX_VALUE_DEPTH {
                        ValueView::Empty
                    } else {
                        v
                    }
                };
                out.push(if map { 7 } else { 6 });
                put_varint(out, nested_len(map, bytes) as u64);
                for (key, item) in nested_items(map, bytes) {
                    if map {
                        self.string(out, key);
                    }
                    self.value(out, &cut(item), item_depth);
                }
            }
            ValueView::Empty => out.push(8),
        }
    }

    /// An array or map of a converted span (already cut to the depth limit).
    fn model_nested(&mut self, out: &mut Vec<u8>, v: &'s AttrValue, depth: usize) {
        match v {
            AttrValue::Array(values) => {
                out.push(6);
                put_varint(out, values.len() as u64);
                for v in values {
                    self.value(out, &ValueView::of_model(v), depth + 1);
                }
            }
            AttrValue::Map(kvs) => {
                out.push(7);
                put_varint(out, kvs.len() as u64);
                for kv in kvs {
                    self.string(out, &kv.key);
                    self.value(out, &ValueView::of_model(&kv.value), depth + 1);
                }
            }
            scalar => self.value(out, &ValueView::of_model(scalar), depth),
        }
    }

    /// Interns an encoded table entry by content, returning its index.
    fn table_entry(&mut self, bytes: Vec<u8>, scope: bool) -> u32 {
        let table = if scope {
            &mut self.scopes
        } else {
            &mut self.resources
        };
        let next = table.len() as u32;
        *self.table_ids.entry(bytes).or_insert_with_key(|b| {
            table.push(b.clone());
            next
        })
    }

    fn resource(&mut self, batch: &BatchView<'s>, i: u32) -> u32 {
        if let Some(Some(id)) = self.resource_ids.get(i as usize) {
            return *id;
        }
        let r = batch.resource(i);
        let mut b = vec![0u8];
        self.string(&mut b, r.service_name);
        self.kvs(&mut b, batch.resource_attributes(r));
        let id = self.table_entry(b, false);
        if self.resource_ids.len() <= i as usize {
            self.resource_ids.resize(i as usize + 1, None);
        }
        self.resource_ids[i as usize] = Some(id);
        id
    }

    fn scope(&mut self, batch: &BatchView<'s>, i: u32) -> u32 {
        if let Some(Some(id)) = self.scope_ids.get(i as usize) {
            return *id;
        }
        let s = batch.scope(i);
        let mut b = vec![1u8];
        self.string(&mut b, s.name);
        self.string(&mut b, s.version);
        self.kvs(&mut b, batch.scope_attributes(s));
        let id = self.table_entry(b, true);
        if self.scope_ids.len() <= i as usize {
            self.scope_ids.resize(i as usize + 1, None);
        }
        self.scope_ids[i as usize] = Some(id);
        id
    }

    fn span(
        &mut self,
        out: &mut Vec<u8>,
        batch: &BatchView<'s>,
        s: &SpanRef<'_, 's>,
        group: &[SpanRef<'_, 's>],
        prev: &mut u64,
    ) {
        out.extend_from_slice(s.span_id.as_bytes());
        match s.parent_span_id {
            None => out.push(0),
            Some(p) => match group.iter().position(|g| g.span_id == p) {
                Some(i) => put_varint(out, i as u64 + 1),
                None => {
                    put_varint(out, group.len() as u64 + 1);
                    out.extend_from_slice(p.as_bytes());
                }
            },
        }
        self.string_at(out, s.trace_state, 0);
        put_varint(out, u64::from(s.flags));
        self.string_at(out, s.name, 1);
        out.push(s.kind.to_otlp() as u8);
        put_varint(out, zigzag(s.start_ns.wrapping_sub(*prev) as i64));
        *prev = s.start_ns;
        put_varint(out, zigzag(s.end_ns.wrapping_sub(s.start_ns) as i64));
        self.span_kvs(out, s.attributes());
        let events = s.events();
        put_varint(out, events.len() as u64);
        for e in events {
            put_varint(out, zigzag(e.time_ns.wrapping_sub(s.start_ns) as i64));
            self.string(out, e.name);
            self.kvs(out, batch.event_attributes(e));
        }
        let links = s.links();
        put_varint(out, links.len() as u64);
        for l in links {
            out.extend_from_slice(l.trace_id.as_bytes());
            out.extend_from_slice(l.span_id.as_bytes());
            self.string(out, l.trace_state);
            self.kvs(out, batch.link_attributes(l));
        }
        out.push(s.status_code.to_otlp() as u8);
        self.string_at(out, s.status_message, 2);
        let r = self.resource(batch, s.resource_index());
        put_varint(out, u64::from(r));
        let sc = self.scope(batch, s.scope_index());
        put_varint(out, u64::from(sc));
    }
}

// === decoding ===

/// A parsed encoded buffer: tables decoded, groups still raw.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    base: u64,
    strings: Vec<&'a str>,
    resources: Vec<Arc<Resource>>,
    scopes: Vec<Arc<Scope>>,
    groups: Reader<'a>,
    remaining_groups: usize,
}

impl<'a> Decoded<'a> {
    /// Parses the header and tables of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let base = r.varint()?;
        let n = r.count()?;
        let mut strings = Vec::with_capacity(n);
        for _ in 0..n {
            strings.push(r.string()?);
        }
        let mut this = Self {
            base,
            strings,
            resources: Vec::new(),
            scopes: Vec::new(),
            groups: Reader::new(&[]),
            remaining_groups: 0,
        };
        for _ in 0..r.count()? {
            if r.u8()? != 0 {
                return Err(DecodeError("bad resource entry"));
            }
            let service_name = this.str(&mut r)?.to_owned();
            let attributes = this.kvs(&mut r, 0)?;
            this.resources.push(Arc::new(Resource {
                service_name,
                attributes,
            }));
        }
        for _ in 0..r.count()? {
            if r.u8()? != 1 {
                return Err(DecodeError("bad scope entry"));
            }
            let name = this.str(&mut r)?.to_owned();
            let version = this.str(&mut r)?.to_owned();
            let attributes = this.kvs(&mut r, 0)?;
            this.scopes.push(Arc::new(Scope {
                name,
                version,
                attributes,
            }));
        }
        this.remaining_groups = r.count()?;
        this.groups = r;
        Ok(this)
    }

    fn str(&self, r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
        let i = usize::try_from(r.varint()?).map_err(|_| DecodeError("string index"))?;
        self.strings
            .get(i)
            .copied()
            .ok_or(DecodeError("string index out of range"))
    }

    fn kvs(&self, r: &mut Reader<'a>, depth: usize) -> Result<Vec<KeyValue>, DecodeError> {
        let n = r.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.str(r)?.to_owned();
            let value = self.value(r, depth)?;
            out.push(KeyValue { key, value });
        }
        Ok(out)
    }

    fn value(&self, r: &mut Reader<'a>, depth: usize) -> Result<AttrValue, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError("attribute nesting too deep"));
        }
        Ok(match r.u8()? {
            0 => AttrValue::String(self.str(r)?.to_owned()),
            1 => AttrValue::Bool(false),
            2 => AttrValue::Bool(true),
            3 => AttrValue::Int(unzigzag(r.varint()?)),
            4 => AttrValue::Double(f64::from_bits(r.u64_le()?)),
            5 => {
                let n = r.len()?;
                AttrValue::Bytes(r.bytes(n)?.to_vec())
            }
            6 => {
                let n = r.count()?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(self.value(r, depth + 1)?);
                }
                AttrValue::Array(values)
            }
            7 => AttrValue::Map(self.kvs(r, depth + 1)?),
            8 => AttrValue::Empty,
            9 => AttrValue::String(r.string()?.to_owned()),
            _ => return Err(DecodeError("unknown value tag")),
        })
    }

    /// The next group: its trace id, span count and undecoded bytes.
    pub(crate) fn next_group(&mut self) -> Result<Option<RawGroup<'a>>, DecodeError> {
        if self.remaining_groups == 0 {
            return Ok(None);
        }
        self.remaining_groups -= 1;
        let trace_id = self.groups.trace_id()?;
        let len = self.groups.len()?;
        let spans = self.groups.count()?;
        let bytes = self.groups.bytes(len)?;
        Ok(Some(RawGroup {
            trace_id,
            spans,
            bytes,
        }))
    }

    /// Decodes every span of a group.
    pub(crate) fn decode_group(&self, g: &RawGroup<'a>) -> Result<Vec<Span>, DecodeError> {
        let mut r = Reader::new(g.bytes);
        let mut out: Vec<Span> = Vec::with_capacity(g.spans.min(4096));
        // Parents referenced by index may come later in the group: resolve after the loop.
        let mut parent_refs = Vec::new();
        let mut prev = self.base;
        for i in 0..g.spans {
            let span_id = r.span_id()?;
            let p = r.varint()?;
            let parent_span_id = match p {
                0 => None,
                p if p == g.spans as u64 + 1 => Some(r.span_id()?),
                p if p <= g.spans as u64 => {
                    parent_refs.push((i, (p - 1) as usize));
                    None
                }
                _ => return Err(DecodeError("parent index out of range")),
            };
            let trace_state = self.str(&mut r)?.to_owned();
            let flags = u32::try_from(r.varint()?).map_err(|_| DecodeError("flags"))?;
            let name = self.str(&mut r)?.to_owned();
            let kind = SpanKind::from_otlp(i32::from(r.u8()?));
            let start_ns = prev.wrapping_add(unzigzag(r.varint()?) as u64);
            prev = start_ns;
            let end_ns = start_ns.wrapping_add(unzigzag(r.varint()?) as u64);
            let attributes = self.kvs(&mut r, 0)?;
            let n = r.count()?;
            let mut events = Vec::with_capacity(n);
            for _ in 0..n {
                let time_ns = start_ns.wrapping_add(unzigzag(r.varint()?) as u64);
                let name = self.str(&mut r)?.to_owned();
                let attributes = self.kvs(&mut r, 0)?;
                events.push(Event {
                    time_ns,
                    name,
                    attributes,
                });
            }
            let n = r.count()?;
            let mut links = Vec::with_capacity(n);
            for _ in 0..n {
                let trace_id = r.trace_id()?;
                let span_id = r.span_id()?;
                let trace_state = self.str(&mut r)?.to_owned();
                let attributes = self.kvs(&mut r, 0)?;
                links.push(Link {
                    trace_id,
                    span_id,
                    trace_state,
                    attributes,
                });
            }
            let code = StatusCode::from_otlp(i32::from(r.u8()?));
            let message = self.str(&mut r)?.to_owned();
            let ri = usize::try_from(r.varint()?).map_err(|_| DecodeError("resource index"))?;
            let resource = Arc::clone(
                self.resources
                    .get(ri)
                    .ok_or(DecodeError("resource index out of range"))?,
            );
            let si = usize::try_from(r.varint()?).map_err(|_| DecodeError("scope index"))?;
            let scope = Arc::clone(
                self.scopes
                    .get(si)
                    .ok_or(DecodeError("scope index out of range"))?,
            );
            out.push(Span {
                trace_id: g.trace_id,
                span_id,
                parent_span_id,
                trace_state,
                flags,
                name,
                kind,
                start_ns,
                end_ns,
                attributes,
                events,
                links,
                status: Status { code, message },
                resource,
                scope,
            });
        }
        for (child, parent) in parent_refs {
            out[child].parent_span_id = Some(out[parent].span_id);
        }
        Ok(out)
    }

    /// Resolves the cheap span criteria against this block's tables; `None` when no span of
    /// the block can match them.
    pub(crate) fn prefilter(
        &self,
        service: Option<&str>,
        name: Option<&str>,
        start: (u64, u64),
        duration: (u64, u64),
        tags: &[(String, String)],
    ) -> Option<Prefilter> {
        let mut checks = Vec::new();
        if tags.len() <= MAX_PRESCAN_TAGS {
            for (key, value) in tags {
                if DERIVED_TAG_KEYS.contains(&key.as_str()) {
                    continue; // any span may match: not checked by the pre-scan
                }
                let check = TagCheck::new(&self.strings, &self.resources, key, value);
                if check.keys.is_empty() && !check.resources.contains(&true) {
                    return None;
                }
                checks.push(check);
            }
        }
        let name = match name {
            Some(n) => Some(self.strings.iter().position(|s| *s == n)? as u64),
            None => None,
        };
        let resources = match service {
            Some(svc) => {
                let ok: Vec<bool> = self
                    .resources
                    .iter()
                    .map(|r| r.service_name == svc)
                    .collect();
                if !ok.contains(&true) {
                    return None;
                }
                Some(ok)
            }
            None => None,
        };
        Some(Prefilter {
            name,
            resources,
            start,
            duration,
            tags: checks,
        })
    }

    /// Skips a list of attributes, setting bit `i` of `hits` when one may match `tags[i]`.
    fn scan_kvs(
        &self,
        r: &mut Reader<'a>,
        tags: &[TagCheck],
        hits: &mut u64,
    ) -> Result<(), DecodeError> {
        if tags.is_empty() {
            return skip_kvs(r, 0);
        }
        for _ in 0..r.count()? {
            let key = r.varint()?;
            if !tags.iter().any(|t| t.keys.contains(&key)) {
                skip_value(r, 0)?;
                continue;
            }
            let value = match r.u8()? {
                0 => StoredValue::Str(self.str(r)?.as_bytes()),
                9 => {
                    let n = r.len()?;
                    StoredValue::Str(r.bytes(n)?)
                }
                3 => StoredValue::Int(unzigzag(r.varint()?)),
                1 => StoredValue::Bool(false),
                2 => StoredValue::Bool(true),
                8 => StoredValue::Empty,
                tag => {
                    skip_value_body(r, tag, 0)?;
                    StoredValue::Other
                }
            };
            for (i, t) in tags.iter().enumerate() {
                if t.keys.contains(&key) && t.may_match(&value) {
                    *hits |= 1 << i;
                }
            }
        }
        Ok(())
    }

    /// Whether some span of the group meets the prefilter, reading without allocating.
    pub(crate) fn group_may_match(
        &self,
        g: &RawGroup<'a>,
        p: &Prefilter,
    ) -> Result<bool, DecodeError> {
        let mut r = Reader::new(g.bytes);
        let mut prev = self.base;
        for _ in 0..g.spans {
            r.bytes(8)?;
            if r.varint()? == g.spans as u64 + 1 {
                r.bytes(8)?;
            }
            r.varint()?;
            r.varint()?;
            let name = r.varint()?;
            r.u8()?;
            let start = prev.wrapping_add(unzigzag(r.varint()?) as u64);
            prev = start;
            let end = start.wrapping_add(unzigzag(r.varint()?) as u64);
            let mut hits = 0u64;
            self.scan_kvs(&mut r, &p.tags, &mut hits)?;
            for _ in 0..r.count()? {
                r.varint()?;
                r.varint()?;
                self.scan_kvs(&mut r, &p.tags, &mut hits)?;
            }
            for _ in 0..r.count()? {
                r.bytes(24)?;
                r.varint()?;
                skip_kvs(&mut r, 0)?;
            }
            r.u8()?;
            r.varint()?;
            let resource = r.varint()?;
            r.varint()?;
            let duration = end.saturating_sub(start);
            let resource = usize::try_from(resource).ok();
            let tags_ok = p.tags.iter().enumerate().all(|(i, t)| {
                hits & (1 << i) != 0
                    || resource
                        .and_then(|ri| t.resources.get(ri))
                        .copied()
                        .unwrap_or(false)
            });
            if tags_ok
                && p.name.is_none_or(|n| n == name)
                && (p.start.0..=p.start.1).contains(&start)
                && (p.duration.0..=p.duration.1).contains(&duration)
                && p.resources
                    .as_ref()
                    .is_none_or(|ok| resource.and_then(|i| ok.get(i)).copied().unwrap_or(false))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Decodes every span.
    pub(crate) fn decode_all(mut self) -> Result<Vec<Span>, DecodeError> {
        let mut out = Vec::new();
        while let Some(g) = self.next_group()? {
            out.extend(self.decode_group(&g)?);
        }
        Ok(out)
    }
}

/// Span criteria resolved against one block's tables (see [`Decoded::prefilter`]).
#[derive(Debug)]
pub(crate) struct Prefilter {
    name: Option<u64>,
    resources: Option<Vec<bool>>,
    start: (u64, u64),
    duration: (u64, u64),
    /// Search tags the pre-scan checks (all but [`DERIVED_TAG_KEYS`]).
    tags: Vec<TagCheck>,
}

fn skip_kvs(r: &mut Reader<'_>, depth: usize) -> Result<(), DecodeError> {
    for _ in 0..r.count()? {
        r.varint()?;
        skip_value(r, depth)?;
    }
    Ok(())
}

fn skip_value(r: &mut Reader<'_>, depth: usize) -> Result<(), DecodeError> {
    let tag = r.u8()?;
    skip_value_body(r, tag, depth)
}

/// Skips a value whose tag byte was read.
fn skip_value_body(r: &mut Reader<'_>, tag: u8, depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("attribute nesting too deep"));
    }
    match tag {
        0 | 3 => {
            r.varint()?;
        }
        1 | 2 | 8 => {}
        4 => {
            r.bytes(8)?;
        }
        5 | 9 => {
            let n = r.len()?;
            r.bytes(n)?;
        }
        6 => {
            for _ in 0..r.count()? {
                skip_value(r, depth + 1)?;
            }
        }
        7 => skip_kvs(r, depth + 1)?,
        _ => return Err(DecodeError("unknown value tag")),
    }
    Ok(())
}

/// One trace's spans inside an encoded buffer, not decoded yet.
#[derive(Debug)]
pub(crate) struct RawGroup<'a> {
    pub(crate) trace_id: TraceId,
    pub(crate) spans: usize,
    bytes: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_str_agrees_with_eq_at_every_length_and_position() {
        let base: String = (0..40u8).map(|i| char::from(b'a' + i % 26)).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            let copy = String::from(a); // another address: no shortcut on the pointer
            assert!(same_str(a, &copy));
            assert!(!same_str(a, &base[..n + 1]));
            for pos in 0..n {
                let mut b = a.as_bytes().to_vec();
                b[pos] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_str(a, &b), "n={n} pos={pos}");
            }
        }
    }

    #[test]
    fn varint_and_zigzag_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Reader::new(&b).varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let resource = Arc::new(Resource {
            service_name: "svc".to_owned(),
            attributes: vec![],
        });
        let span = Span {
            trace_id: TraceId::from_bytes([1; 16]).unwrap(),
            span_id: SpanId::from_bytes([2; 8]).unwrap(),
            parent_span_id: Some(SpanId::from_bytes([3; 8]).unwrap()),
            trace_state: String::new(),
            flags: 1,
            name: "op".to_owned(),
            kind: SpanKind::Server,
            start_ns: 10,
            end_ns: 5,
            attributes: vec![KeyValue {
                key: "k".to_owned(),
                value: AttrValue::Array(vec![AttrValue::Int(-3), AttrValue::Double(1.5)]),
            }],
            events: vec![],
            links: vec![],
            status: Status::default(),
            resource,
            scope: Arc::new(Scope::default()),
        };
        let buf = encode_spans([&span]);
        let back = Decoded::new(&buf).unwrap().decode_all().unwrap();
        assert_eq!(back, vec![span]);
        for cut in 0..buf.len() {
            let _ = Decoded::new(&buf[..cut]).and_then(Decoded::decode_all);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// A chunk encoded from the received bytes is byte for byte the chunk encoded from the
        /// spans prost + `convert_request` make of them, and has the same summary.
        #[test]
        fn received_bytes_encode_like_converted_spans(
            request in crate::model::generated_requests::request()
        ) {
            use prost::Message as _;
            let bytes = request.encode_to_vec();
            let parsed = crate::model::parse_request(&bytes).unwrap();
            let converted = crate::model::convert_request(request);
            let from_spans = BatchView::from_spans(&converted.batch.spans);
            proptest::prop_assert_eq!(encode_batch(&parsed.batch), encode_batch(&from_spans));
            let (a, b) = (
                super::super::chunk::Summary::of_batch(&parsed.batch),
                super::super::chunk::Summary::of_batch(&from_spans),
            );
            proptest::prop_assert_eq!(a.tags, b.tags);
            proptest::prop_assert_eq!(a.ops, b.ops);
            proptest::prop_assert_eq!(a.traces, b.traces);
        }
    }
}
