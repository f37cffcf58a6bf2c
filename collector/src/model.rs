//! The internal span model: identifiers, spans, OTLP conversion and trace assembly.
//!
//! Receivers convert OTLP into [`Span`]s once; the store and the query API only see this model.
//! Resource and scope data are shared between the spans of one OTLP batch through [`Arc`]s,
//! so a batch of 512 spans from one service holds one copy of its resource attributes.
//!
//! [`Arc`]: std::sync::Arc

mod ids;
mod otlp;
mod span;
mod trace;

pub use ids::{IdError, SpanId, TraceId};
pub use otlp::{
    Converted, SpanRejection, convert_attributes, convert_request, span_kind_number,
    status_code_number,
};
pub use span::{
    AttrValue, Event, KeyValue, Link, NO_SERVICE_NAME, Resource, Scope, Span, SpanBatch, SpanKind,
    Status, StatusCode,
};
pub use trace::{DependencyLink, Trace, count_dependencies, links_from_counts};
