//! Decoding the shared format (see the parent module): tables at once, span groups on demand.

use std::sync::Arc;

use super::super::prescan::{DERIVED_TAG_KEYS, MAX_PRESCAN_TAGS, StoredValue, TagCheck};
use super::{DecodeError, MAX_DEPTH, Reader, unzigzag};
use crate::model::{
    AttrValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind, Status, StatusCode, TraceId,
};

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
