//! The internal span model: identifiers, spans, OTLP conversion and trace assembly.
//!
//! Receivers read OTLP protobuf into a borrowed [`BatchView`] ([`parse_request`]), which the
//! store encodes and the derived metrics observe; the query API reads [`Span`]s decoded from the
//! store. JSON requests and the memory store go through [`convert_request`] and [`Span`].
//! Resource and scope data are shared between the spans of one OTLP batch through [`Arc`]s,
//! so a batch of 512 spans from one service holds one copy of its resource attributes.
//!
//! [`Arc`]: std::sync::Arc

mod ids;
mod otlp;
mod span;
mod text;
mod trace;
mod view;
mod wire;

pub use ids::{IdError, SpanId, TraceId};
pub(crate) use otlp::MAX_VALUE_DEPTH;
pub use otlp::{
    Converted, SpanRejection, convert_attributes, convert_request, span_kind_number,
    status_code_number,
};
pub use span::{
    AttrValue, Event, KeyValue, Link, NO_SERVICE_NAME, Resource, Scope, Span, SpanBatch, SpanKind,
    Status, StatusCode,
};
pub(crate) use text::same_str;
pub use trace::{DependencyLink, Trace, count_dependencies, links_from_counts};
pub use view::{
    BatchView, EventView, KvView, LinkView, ResourceView, ScopeView, SpanRef, SpanView, ValueView,
};
#[cfg(test)]
pub(crate) use wire::tests::generated as generated_requests;
pub use wire::{Parsed, WireError, parse_request};
pub(crate) use wire::{nested_items, nested_len};
