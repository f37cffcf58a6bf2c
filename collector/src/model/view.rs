//! Borrowed views of a batch of spans: what the store's encoder, its summaries and the derived
//! metrics read.
//!
//! A [`BatchView`] is built either straight over a received `ExportTraceServiceRequest`'s bytes
//! ([`parse_request`](super::parse_request): strings borrowed from the request, no allocation
//! per span or attribute) or over converted [`Span`]s ([`BatchView::from_spans`]: the JSON
//! receiver, tests, the memory store's callers). Both give the same view of the same spans;
//! the property tests in `wire.rs` hold the two paths to that.
//!
//! The view is flat: spans, attributes, events and links each live in one `Vec`, and a span
//! refers to its parts by index ranges, so a batch of any size costs a handful of allocations.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use super::ids::{SpanId, TraceId};
use super::span::{
    AttrValue, Event, KeyValue, Link, NO_SERVICE_NAME, Resource, Scope, Span, SpanKind, Status,
    StatusCode,
};
use super::wire;

/// A batch of spans, borrowed from the bytes or the [`Span`]s it was built over.
#[derive(Debug, Default)]
pub struct BatchView<'a> {
    pub(super) resources: Vec<ResourceView<'a>>,
    pub(super) scopes: Vec<ScopeView<'a>>,
    pub(super) kvs: Vec<KvView<'a>>,
    pub(super) events: Vec<EventView<'a>>,
    pub(super) links: Vec<LinkView<'a>>,
    pub(super) spans: Vec<SpanView<'a>>,
}

/// The resource of some spans of a [`BatchView`].
#[derive(Debug, Clone)]
pub struct ResourceView<'a> {
    /// `service.name`, or [`NO_SERVICE_NAME`].
    pub service_name: &'a str,
    pub(super) attrs: Range<u32>,
}

/// The instrumentation scope of some spans of a [`BatchView`].
#[derive(Debug, Clone)]
pub struct ScopeView<'a> {
    /// Scope name.
    pub name: &'a str,
    /// Scope version.
    pub version: &'a str,
    pub(super) attrs: Range<u32>,
}

/// One attribute.
#[derive(Debug, Clone)]
pub struct KvView<'a> {
    /// Attribute key.
    pub key: &'a str,
    /// Attribute value.
    pub value: ValueView<'a>,
}

/// An attribute value.
#[derive(Debug, Clone)]
pub enum ValueView<'a> {
    /// A UTF-8 string.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// An array or map of a converted span ([`AttrValue::Array`] or [`AttrValue::Map`]).
    Nested(&'a AttrValue),
    /// An array (`ArrayValue`, `map == false`) or map (`KeyValueList`, `map == true`) as
    /// received: its protobuf encoding, already checked to be well formed.
    Raw {
        /// Whether this is a `KeyValueList`.
        map: bool,
        /// The message's bytes.
        bytes: &'a [u8],
    },
    /// An `AnyValue` with no value set.
    Empty,
}

impl<'a> ValueView<'a> {
    /// The value as owned model value (nested values cut at the conversion's depth limit).
    pub fn to_owned_value(&self) -> AttrValue {
        match self {
            Self::Str(s) => AttrValue::String((*s).to_owned()),
            Self::Bool(b) => AttrValue::Bool(*b),
            Self::Int(i) => AttrValue::Int(*i),
            Self::Double(d) => AttrValue::Double(*d),
            Self::Bytes(b) => AttrValue::Bytes(b.to_vec()),
            Self::Nested(v) => (*v).clone(),
            Self::Raw { map, bytes } => wire::owned_nested(*map, bytes, 0),
            Self::Empty => AttrValue::Empty,
        }
    }

    /// The value as the string a user types in a tag search; see
    /// [`AttrValue::to_search_string`].
    pub fn to_search_string(&self) -> Cow<'a, str> {
        match self {
            Self::Str(s) => Cow::Borrowed(s),
            Self::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Self::Int(i) => Cow::Owned(i.to_string()),
            Self::Double(d) => Cow::Owned(d.to_string()),
            Self::Empty => Cow::Borrowed(""),
            Self::Bytes(_) | Self::Nested(_) | Self::Raw { .. } => {
                Cow::Owned(self.to_owned_value().to_search_string())
            }
        }
    }

    /// A view of a model value (arrays and maps as [`Nested`](Self::Nested)).
    pub fn of_model(value: &'a AttrValue) -> Self {
        match value {
            AttrValue::String(s) => Self::Str(s),
            AttrValue::Bool(b) => Self::Bool(*b),
            AttrValue::Int(i) => Self::Int(*i),
            AttrValue::Double(d) => Self::Double(*d),
            AttrValue::Bytes(b) => Self::Bytes(b),
            AttrValue::Array(_) | AttrValue::Map(_) => Self::Nested(value),
            AttrValue::Empty => Self::Empty,
        }
    }
}

/// An event of a span.
#[derive(Debug, Clone)]
pub struct EventView<'a> {
    /// Event time, ns since the Unix epoch.
    pub time_ns: u64,
    /// Event name.
    pub name: &'a str,
    pub(super) attrs: Range<u32>,
}

/// A link of a span (links with invalid ids are dropped, as by the conversion).
#[derive(Debug, Clone)]
pub struct LinkView<'a> {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// W3C tracestate of the link.
    pub trace_state: &'a str,
    pub(super) attrs: Range<u32>,
}

/// One span's own fields; [`SpanRef`] adds access to its attributes, events, links,
/// resource and scope.
#[derive(Debug, Clone)]
pub struct SpanView<'a> {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// W3C tracestate.
    pub trace_state: &'a str,
    /// OTLP span flags.
    pub flags: u32,
    /// Span name.
    pub name: &'a str,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, ns since the Unix epoch.
    pub start_ns: u64,
    /// End, ns since the Unix epoch.
    pub end_ns: u64,
    /// Status code.
    pub status_code: StatusCode,
    /// Status message.
    pub status_message: &'a str,
    pub(super) attrs: Range<u32>,
    pub(super) events: Range<u32>,
    pub(super) links: Range<u32>,
    pub(super) resource: u32,
    pub(super) scope: u32,
}

impl SpanView<'_> {
    /// Duration in ns (0 when the end precedes the start).
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Index of the span's resource in its batch ([`BatchView::resource`]).
    pub fn resource_index(&self) -> u32 {
        self.resource
    }

    /// Index of the span's scope in its batch ([`BatchView::scope`]).
    pub fn scope_index(&self) -> u32 {
        self.scope
    }
}

/// A span of a [`BatchView`], with access to everything it refers to.
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'v, 'a> {
    batch: &'v BatchView<'a>,
    span: &'v SpanView<'a>,
}

impl<'a> std::ops::Deref for SpanRef<'_, 'a> {
    type Target = SpanView<'a>;

    fn deref(&self) -> &SpanView<'a> {
        self.span
    }
}

impl<'v, 'a> SpanRef<'v, 'a> {
    /// The span's own fields.
    pub fn view(&self) -> &'v SpanView<'a> {
        self.span
    }

    /// Span attributes.
    pub fn attributes(&self) -> &'v [KvView<'a>] {
        self.batch.kvs(&self.span.attrs)
    }

    /// Events.
    pub fn events(&self) -> &'v [EventView<'a>] {
        slice(&self.batch.events, &self.span.events)
    }

    /// Links.
    pub fn links(&self) -> &'v [LinkView<'a>] {
        slice(&self.batch.links, &self.span.links)
    }

    /// The span's resource.
    pub fn resource(&self) -> &'v ResourceView<'a> {
        self.batch.resource(self.span.resource)
    }

    /// Attributes of the span's resource.
    pub fn resource_attributes(&self) -> &'v [KvView<'a>] {
        self.batch.kvs(&self.resource().attrs)
    }

    /// The service that produced the span.
    pub fn service_name(&self) -> &'a str {
        self.resource().service_name
    }

    /// The span's scope.
    pub fn scope(&self) -> &'v ScopeView<'a> {
        self.batch.scope(self.span.scope)
    }
}

fn slice<'v, T>(items: &'v [T], range: &Range<u32>) -> &'v [T] {
    items
        .get(range.start as usize..range.end as usize)
        .unwrap_or_default()
}

static NO_RESOURCE: ResourceView<'static> = ResourceView {
    service_name: NO_SERVICE_NAME,
    attrs: 0..0,
};
static NO_SCOPE: ScopeView<'static> = ScopeView {
    name: "",
    version: "",
    attrs: 0..0,
};

impl<'a> BatchView<'a> {
    /// An empty view with room for the spans of an OTLP request of `encoded_len` bytes, so that
    /// parsing it does not grow (copy) its vectors from empty. The estimates are on the small
    /// side of real spans' sizes (≈ 250 bytes a span, ≈ 30 an attribute; the load generator's
    /// are 530 and ≈ 45) and capped, so a large request reserves a bounded amount up front and
    /// grows from there.
    pub(super) fn with_capacity_for(encoded_len: usize) -> Self {
        const MAX_SPANS: usize = 4096;
        let spans = (encoded_len / 250).clamp(1, MAX_SPANS);
        Self {
            resources: Vec::with_capacity(4),
            scopes: Vec::with_capacity(4),
            kvs: Vec::with_capacity((encoded_len / 30).clamp(8, 16 * MAX_SPANS)),
            events: Vec::new(),
            links: Vec::new(),
            spans: Vec::with_capacity(spans),
        }
    }

    /// Number of attributes in the view: of spans, events, links, resources and scopes.
    pub(crate) fn attribute_count(&self) -> usize {
        self.kvs.len()
    }

    /// A view of converted spans. Spans sharing a resource (or scope) `Arc` share it in the
    /// view too.
    pub fn from_spans(spans: impl IntoIterator<Item = &'a Span>) -> Self {
        let mut out = Self::default();
        let mut resource_ids: Vec<(*const Resource, u32)> = Vec::new();
        let mut scope_ids: Vec<(*const Scope, u32)> = Vec::new();
        for s in spans {
            let resource = match resource_ids
                .iter()
                .find(|(p, _)| *p == Arc::as_ptr(&s.resource))
            {
                Some((_, id)) => *id,
                None => {
                    let attrs = out.push_model_kvs(&s.resource.attributes);
                    let id = out.resources.len() as u32;
                    out.resources.push(ResourceView {
                        service_name: &s.resource.service_name,
                        attrs,
                    });
                    resource_ids.push((Arc::as_ptr(&s.resource), id));
                    id
                }
            };
            let scope = match scope_ids.iter().find(|(p, _)| *p == Arc::as_ptr(&s.scope)) {
                Some((_, id)) => *id,
                None => {
                    let attrs = out.push_model_kvs(&s.scope.attributes);
                    let id = out.scopes.len() as u32;
                    out.scopes.push(ScopeView {
                        name: &s.scope.name,
                        version: &s.scope.version,
                        attrs,
                    });
                    scope_ids.push((Arc::as_ptr(&s.scope), id));
                    id
                }
            };
            let attrs = out.push_model_kvs(&s.attributes);
            let first_event = out.events.len() as u32;
            for e in &s.events {
                let attrs = out.push_model_kvs(&e.attributes);
                out.events.push(EventView {
                    time_ns: e.time_ns,
                    name: &e.name,
                    attrs,
                });
            }
            let first_link = out.links.len() as u32;
            for l in &s.links {
                let attrs = out.push_model_kvs(&l.attributes);
                out.links.push(LinkView {
                    trace_id: l.trace_id,
                    span_id: l.span_id,
                    trace_state: &l.trace_state,
                    attrs,
                });
            }
            out.spans.push(SpanView {
                trace_id: s.trace_id,
                span_id: s.span_id,
                parent_span_id: s.parent_span_id,
                trace_state: &s.trace_state,
                flags: s.flags,
                name: &s.name,
                kind: s.kind,
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                status_code: s.status.code,
                status_message: &s.status.message,
                attrs,
                events: first_event..out.events.len() as u32,
                links: first_link..out.links.len() as u32,
                resource,
                scope,
            });
        }
        out
    }

    fn push_model_kvs(&mut self, kvs: &'a [KeyValue]) -> Range<u32> {
        let start = self.kvs.len() as u32;
        self.kvs.extend(kvs.iter().map(|kv| KvView {
            key: &kv.key,
            value: ValueView::of_model(&kv.value),
        }));
        start..self.kvs.len() as u32
    }

    /// Number of spans.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch has no spans.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The spans, in the order received.
    pub fn spans(&self) -> impl ExactSizeIterator<Item = SpanRef<'_, 'a>> {
        self.spans.iter().map(|span| SpanRef { batch: self, span })
    }

    /// A span's [`SpanRef`] (for a `SpanView` of this batch).
    pub fn span<'v>(&'v self, span: &'v SpanView<'a>) -> SpanRef<'v, 'a> {
        SpanRef { batch: self, span }
    }

    /// The resources (indexed by [`SpanView::resource_index`]).
    pub fn resources(&self) -> &[ResourceView<'a>] {
        &self.resources
    }

    /// Resource `i` (an empty one if out of range).
    pub fn resource(&self, i: u32) -> &ResourceView<'a> {
        self.resources.get(i as usize).unwrap_or(&NO_RESOURCE)
    }

    /// The scopes (indexed by [`SpanView::scope_index`]).
    pub fn scopes(&self) -> &[ScopeView<'a>] {
        &self.scopes
    }

    /// Scope `i` (an empty one if out of range).
    pub fn scope(&self, i: u32) -> &ScopeView<'a> {
        self.scopes.get(i as usize).unwrap_or(&NO_SCOPE)
    }

    /// Attributes of a resource.
    pub fn resource_attributes(&self, r: &ResourceView<'a>) -> &[KvView<'a>] {
        self.kvs(&r.attrs)
    }

    /// Attributes of a scope.
    pub fn scope_attributes(&self, s: &ScopeView<'a>) -> &[KvView<'a>] {
        self.kvs(&s.attrs)
    }

    /// Attributes of an event.
    pub fn event_attributes(&self, e: &EventView<'a>) -> &[KvView<'a>] {
        self.kvs(&e.attrs)
    }

    /// Attributes of a link.
    pub fn link_attributes(&self, l: &LinkView<'a>) -> &[KvView<'a>] {
        self.kvs(&l.attrs)
    }

    fn kvs(&self, range: &Range<u32>) -> &[KvView<'a>] {
        slice(&self.kvs, range)
    }

    /// Owned [`Span`]s of the batch (for a store that keeps spans); spans of one resource or
    /// scope share one `Arc`.
    pub fn to_spans(&self) -> Vec<Span> {
        let owned = |kvs: &[KvView<'_>]| -> Vec<KeyValue> {
            kvs.iter()
                .map(|kv| KeyValue {
                    key: kv.key.to_owned(),
                    value: kv.value.to_owned_value(),
                })
                .collect()
        };
        let resources: Vec<Arc<Resource>> = self
            .resources
            .iter()
            .map(|r| {
                Arc::new(Resource {
                    service_name: r.service_name.to_owned(),
                    attributes: owned(self.kvs(&r.attrs)),
                })
            })
            .collect();
        let scopes: Vec<Arc<Scope>> = self
            .scopes
            .iter()
            .map(|s| {
                Arc::new(Scope {
                    name: s.name.to_owned(),
                    version: s.version.to_owned(),
                    attributes: owned(self.kvs(&s.attrs)),
                })
            })
            .collect();
        self.spans()
            .map(|s| Span {
                trace_id: s.trace_id,
                span_id: s.span_id,
                parent_span_id: s.parent_span_id,
                trace_state: s.trace_state.to_owned(),
                flags: s.flags,
                name: s.name.to_owned(),
                kind: s.kind,
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                attributes: owned(s.attributes()),
                events: s
                    .events()
                    .iter()
                    .map(|e| Event {
                        time_ns: e.time_ns,
                        name: e.name.to_owned(),
                        attributes: owned(self.kvs(&e.attrs)),
                    })
                    .collect(),
                links: s
                    .links()
                    .iter()
                    .map(|l| Link {
                        trace_id: l.trace_id,
                        span_id: l.span_id,
                        trace_state: l.trace_state.to_owned(),
                        attributes: owned(self.kvs(&l.attrs)),
                    })
                    .collect(),
                status: Status {
                    code: s.status_code,
                    message: s.status_message.to_owned(),
                },
                resource: resources
                    .get(s.resource as usize)
                    .map_or_else(|| Arc::new(empty_resource()), Arc::clone),
                scope: scopes
                    .get(s.scope as usize)
                    .map_or_else(|| Arc::new(Scope::default()), Arc::clone),
            })
            .collect()
    }
}

fn empty_resource() -> Resource {
    Resource {
        service_name: NO_SERVICE_NAME.to_owned(),
        attributes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test assertions")]

    use super::*;

    fn span(resource: &Arc<Resource>, scope: &Arc<Scope>, id: u8) -> Span {
        Span {
            trace_id: TraceId::from_bytes([1; 16]).unwrap(),
            span_id: SpanId::from_bytes([id; 8]).unwrap(),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 1,
            name: format!("op{id}"),
            kind: SpanKind::Server,
            start_ns: 10,
            end_ns: 30,
            attributes: vec![
                KeyValue {
                    key: "a".into(),
                    value: AttrValue::Array(vec![AttrValue::Int(1)]),
                },
                KeyValue {
                    key: "b".into(),
                    value: AttrValue::String("x".into()),
                },
            ],
            events: vec![Event {
                time_ns: 20,
                name: "e".into(),
                attributes: vec![KeyValue {
                    key: "k".into(),
                    value: AttrValue::Bool(true),
                }],
            }],
            links: Vec::new(),
            status: Status {
                code: StatusCode::Error,
                message: "boom".into(),
            },
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        }
    }

    #[test]
    fn model_round_trip_shares_resources() {
        let resource = Arc::new(Resource {
            service_name: "api".into(),
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: AttrValue::String("api".into()),
            }],
        });
        let scope = Arc::new(Scope::default());
        let spans = vec![span(&resource, &scope, 1), span(&resource, &scope, 2)];
        let view = BatchView::from_spans(&spans);
        assert_eq!(view.len(), 2);
        assert_eq!(view.resources().len(), 1);
        assert_eq!(view.scopes().len(), 1);
        let first = view.spans().next().unwrap();
        assert_eq!(first.service_name(), "api");
        assert_eq!(first.attributes().len(), 2);
        assert_eq!(first.attributes()[0].value.to_search_string(), "[1]");
        assert_eq!(first.events()[0].name, "e");
        let back = view.to_spans();
        assert_eq!(back, spans);
        assert!(Arc::ptr_eq(&back[0].resource, &back[1].resource));
    }
}
