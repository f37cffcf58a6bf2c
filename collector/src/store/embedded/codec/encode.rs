//! Encoding spans into the shared format (see the parent module).

use std::hash::Hasher as _;
use std::ops::Range;

use hashbrown::HashTable;

use super::{FxHasher, FxMap, INTERN_MAX_LEN, MAX_VARINT, put_varint, varint_len, zigzag};
#[cfg(test)]
use crate::model::Span;
use crate::model::same_str;
use crate::model::{
    AttrValue, BatchView, KvView, MAX_VALUE_DEPTH, SpanRef, SpanView, TraceId, ValueView,
    nested_items, nested_len,
};

/// Encodes `spans` (any order) into one self-contained buffer.
#[cfg(test)]
pub(crate) fn encode_spans<'s>(spans: impl IntoIterator<Item = &'s Span>) -> Vec<u8> {
    encode_batch(&BatchView::from_spans(spans))
}

/// Encodes the spans of `batch` into one self-contained buffer.
#[cfg(test)]
pub(crate) fn encode_batch(batch: &BatchView<'_>) -> Vec<u8> {
    encode_batch_traces(batch).0
}

/// [`encode_batch`], and the batch's distinct trace ids in ascending order (the encoder sorts
/// the spans by trace, so the chunk summary need not sort them again).
pub(crate) fn encode_batch_traces<'s>(batch: &BatchView<'s>) -> (Vec<u8>, Vec<TraceId>) {
    let mut spans: Vec<SpanRef<'_, 's>> = batch.spans().collect();
    // Unstable (no scratch buffer, no allocation), yet in the stable order: the last key is
    // where the span lies in the batch's one slice of spans, i.e. its arrival order, so that
    // a span sent twice keeps its copies in the order they came (the first one wins on read).
    spans.sort_unstable_by_key(|s| {
        (
            s.trace_id,
            s.start_ns,
            s.span_id,
            std::ptr::from_ref::<SpanView<'s>>(s),
        )
    });
    let mut enc = Encoder::with_capacity(spans.len() * 2 + 16);
    let base = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    // Room for ≈ 250 bytes a span, what the load generator's spans take with their strings,
    // so that the usual batch does not grow (copy) this temporary buffer.
    let mut body = Vec::with_capacity(spans.len() * 256);
    let groups: Vec<&[SpanRef<'_, 's>]> = spans.chunk_by(|a, b| a.trace_id == b.trace_id).collect();
    put_varint(&mut body, groups.len() as u64);
    let traces = groups.iter().map(|g| g[0].trace_id).collect();
    let mut group_buf = Vec::with_capacity(4096);
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
    // Sized for everything below, so that the body is copied once and never again by a grow.
    let tables = enc.tables.len();
    let mut out = Vec::with_capacity(4 * MAX_VARINT + enc.strings_len + tables + body.len());
    put_varint(&mut out, base);
    put_varint(&mut out, enc.strings.len() as u64);
    for s in &enc.strings {
        put_varint(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    for table in [&enc.resources, &enc.scopes] {
        put_varint(&mut out, table.len() as u64);
        for item in table {
            out.extend_from_slice(&enc.tables[item.clone()]);
        }
    }
    out.extend_from_slice(&body);
    (out, traces)
}

#[derive(Default)]
struct Encoder<'s> {
    string_ids: FxMap<&'s str, u32>,
    strings: Vec<&'s str>,
    /// Bytes the string table takes in the chunk (lengths included).
    strings_len: usize,
    /// Table index of each resource (scope) of the batch, once encoded.
    resource_ids: Vec<Option<u32>>,
    scope_ids: Vec<Option<u32>>,
    /// The encoded resource and scope table entries, one after the other, each once.
    tables: Vec<u8>,
    /// Where each resource's (scope's) entry lies in `tables`, by table index.
    resources: Vec<Range<usize>>,
    scopes: Vec<Range<usize>>,
    /// The entries by content: (hash, scope table?, index).
    table_ids: HashTable<(u64, bool, u32)>,
    /// The string last written at each slot and its id (see [`Encoder::string_at`]).
    recent: Vec<Option<(&'s str, u32)>>,
}

/// Slots of [`Encoder::string_at`]: trace state, name, status message, then key/value pairs of
/// the span attributes by position.
const SPAN_SLOTS: usize = 3;
const RECENT_SLOTS: usize = SPAN_SLOTS + 64;
/// Room for a batch's resource and scope table entries (string ids and values, mostly under
/// 64 bytes each), so that building them does not regrow the buffer byte by byte.
const TABLE_BYTES: usize = 1024;

impl<'s> Encoder<'s> {
    /// An encoder with room for `strings` distinct strings.
    fn with_capacity(strings: usize) -> Self {
        Self {
            string_ids: FxMap::with_capacity_and_hasher(strings, Default::default()),
            strings: Vec::with_capacity(strings),
            tables: Vec::with_capacity(TABLE_BYTES),
            // A batch's resources and scopes: a few of each.
            table_ids: HashTable::with_capacity(8),
            ..Self::default()
        }
    }

    fn intern(&mut self, s: &'s str) -> u32 {
        let next = self.strings.len() as u32;
        *self.string_ids.entry(s).or_insert_with(|| {
            self.strings.push(s);
            self.strings_len += varint_len(s.len() as u64) + s.len();
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
    ///
    /// Always inline: it runs twice per attribute, and the compare and the id's varint are
    /// its whole work when the slot holds `s`. LLVM inlines it in the collector's binary but
    /// not always in the benches' (Callgrind, `decode` bench, 100-span request: the encoding
    /// took 398 k instructions with it called, 336 k inlined, as in the collector).
    #[inline(always)]
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

    /// Encodes a resource (`scope` false) or scope table entry with `write` at the end of
    /// `tables`, after its kind byte, and interns it by content, returning its index; a
    /// repeated entry is taken out of `tables` again.
    fn table_entry(&mut self, scope: bool, write: impl FnOnce(&mut Self, &mut Vec<u8>)) -> u32 {
        let mut b = std::mem::take(&mut self.tables);
        let start = b.len();
        b.push(u8::from(scope));
        write(self, &mut b);
        self.tables = b;
        let Self {
            tables,
            resources,
            scopes,
            table_ids,
            ..
        } = self;
        let entry = &tables[start..];
        let mut h = FxHasher::default();
        h.write(entry);
        let hash = h.finish();
        let ranges = |scope: bool| if scope { &*scopes } else { &*resources };
        let found = table_ids.find(hash, |&(h, s, i)| {
            h == hash && s == scope && tables[ranges(s)[i as usize].clone()] == *entry
        });
        if let Some(&(.., id)) = found {
            tables.truncate(start);
            return id;
        }
        let table = if scope { scopes } else { resources };
        let id = table.len() as u32;
        table.push(start..tables.len());
        table_ids.insert_unique(hash, (hash, scope, id), |&(h, ..)| h);
        id
    }

    fn resource(&mut self, batch: &BatchView<'s>, i: u32) -> u32 {
        if let Some(Some(id)) = self.resource_ids.get(i as usize) {
            return *id;
        }
        let r = batch.resource(i);
        let id = self.table_entry(false, |enc, b| {
            enc.string(b, r.service_name);
            enc.kvs(b, batch.resource_attributes(r));
        });
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
        let id = self.table_entry(true, |enc, b| {
            enc.string(b, s.name);
            enc.string(b, s.version);
            enc.kvs(b, batch.scope_attributes(s));
        });
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
