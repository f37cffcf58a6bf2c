//! The span types the store keeps and the query API reads.

use std::fmt;
use std::sync::Arc;

use super::ids::{SpanId, TraceId};

/// Service name used when a resource has no `service.name` (same value as the Jaeger translator).
pub const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

/// An attribute value, mirroring OTLP `AnyValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A UTF-8 string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An ordered list of values.
    Array(Vec<AttrValue>),
    /// A nested list of key/value pairs.
    Map(Vec<KeyValue>),
    /// An `AnyValue` with no value set.
    Empty,
}

impl AttrValue {
    /// The value rendered as a JSON value (arrays and maps keep their structure; bytes become
    /// base64). Used for Jaeger string rendering of complex values and for tag matching.
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        match self {
            Self::String(s) => serde_json::Value::String(s.clone()),
            Self::Bool(b) => serde_json::Value::Bool(*b),
            Self::Int(i) => serde_json::Value::from(*i),
            Self::Double(d) => serde_json::Number::from_f64(*d)
                .map_or_else(|| serde_json::Value::String(d.to_string()), Into::into),
            Self::Bytes(b) => {
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            Self::Array(values) => values.iter().map(Self::to_json).collect(),
            Self::Map(kvs) => serde_json::Value::Object(
                kvs.iter()
                    .map(|kv| (kv.key.clone(), kv.value.to_json()))
                    .collect(),
            ),
            Self::Empty => serde_json::Value::Null,
        }
    }

    /// The value as the string a user types in a tag search (`"500"`, `"true"`, `"1.5"`).
    pub fn to_search_string(&self) -> String {
        match self {
            Self::String(s) => s.clone(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Double(d) => d.to_string(),
            Self::Empty => String::new(),
            Self::Bytes(_) | Self::Array(_) | Self::Map(_) => self.to_json().to_string(),
        }
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// Attribute key.
    pub key: String,
    /// Attribute value.
    pub value: AttrValue,
}

/// The entity that produced a batch of spans, shared by all its spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `service.name`, or [`NO_SERVICE_NAME`].
    pub service_name: String,
    /// All resource attributes, including `service.name`.
    pub attributes: Vec<KeyValue>,
}

/// The instrumentation scope of a group of spans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    /// Scope name (often the library name).
    pub name: String,
    /// Scope version.
    pub version: String,
    /// Scope attributes.
    pub attributes: Vec<KeyValue>,
}

/// Span kind, as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED`.
    Unspecified,
    /// `SPAN_KIND_INTERNAL`.
    Internal,
    /// `SPAN_KIND_SERVER`.
    Server,
    /// `SPAN_KIND_CLIENT`.
    Client,
    /// `SPAN_KIND_PRODUCER`.
    Producer,
    /// `SPAN_KIND_CONSUMER`.
    Consumer,
}

impl SpanKind {
    /// From the OTLP enum number; unknown numbers map to `Unspecified`.
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// The OTLP enum number.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unspecified => 0,
            Self::Internal => 1,
            Self::Server => 2,
            Self::Client => 3,
            Self::Producer => 4,
            Self::Consumer => 5,
        }
    }

    /// The Jaeger `span.kind` tag value; `None` for `Unspecified`.
    pub fn jaeger_name(self) -> Option<&'static str> {
        match self {
            Self::Unspecified => None,
            Self::Internal => Some("internal"),
            Self::Server => Some("server"),
            Self::Client => Some("client"),
            Self::Producer => Some("producer"),
            Self::Consumer => Some("consumer"),
        }
    }

    /// Parses a Jaeger span kind name (`server`, `client`, …, also `unspecified`).
    pub fn from_jaeger_name(name: &str) -> Option<Self> {
        match name {
            "unspecified" => Some(Self::Unspecified),
            "internal" => Some(Self::Internal),
            "server" => Some(Self::Server),
            "client" => Some(Self::Client),
            "producer" => Some(Self::Producer),
            "consumer" => Some(Self::Consumer),
            _ => None,
        }
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jaeger_name().unwrap_or("unspecified"))
    }
}

/// Span status code, as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    /// `STATUS_CODE_UNSET`.
    #[default]
    Unset,
    /// `STATUS_CODE_OK`.
    Ok,
    /// `STATUS_CODE_ERROR`.
    Error,
}

impl StatusCode {
    /// From the OTLP enum number; unknown numbers map to `Unset`.
    pub fn from_otlp(value: i32) -> Self {
        match value {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    /// The OTLP enum number.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error => 2,
        }
    }
}

/// Span status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Status code.
    pub code: StatusCode,
    /// Developer-facing message.
    pub message: String,
}

/// A timestamped event inside a span (a Jaeger "log").
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event time, ns since the Unix epoch.
    pub time_ns: u64,
    /// Event name.
    pub name: String,
    /// Event attributes.
    pub attributes: Vec<KeyValue>,
}

/// A link to another span (a Jaeger `FOLLOWS_FROM` reference).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// W3C tracestate of the link.
    pub trace_state: String,
    /// Link attributes.
    pub attributes: Vec<KeyValue>,
}

/// One span, converted from OTLP.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// W3C tracestate.
    pub trace_state: String,
    /// OTLP span flags (the low 8 bits are the W3C trace flags).
    pub flags: u32,
    /// Span name (Jaeger operation name).
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, ns since the Unix epoch.
    pub start_ns: u64,
    /// End, ns since the Unix epoch.
    pub end_ns: u64,
    /// Span attributes.
    pub attributes: Vec<KeyValue>,
    /// Events.
    pub events: Vec<Event>,
    /// Links.
    pub links: Vec<Link>,
    /// Status.
    pub status: Status,
    /// The resource, shared by every span of the same OTLP `ResourceSpans`.
    pub resource: Arc<Resource>,
    /// The scope, shared by every span of the same OTLP `ScopeSpans`.
    pub scope: Arc<Scope>,
}

impl Span {
    /// Duration in ns (0 when the end precedes the start).
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The service that produced the span.
    pub fn service_name(&self) -> &str {
        &self.resource.service_name
    }

    /// Whether the span has status ERROR.
    pub fn is_error(&self) -> bool {
        self.status.code == StatusCode::Error
    }

    /// Whether a search tag `key=value` matches this span: span attributes, resource
    /// attributes, event attributes, and the tags the Jaeger view derives (`span.kind`,
    /// `otel.status_code`, `error`, `otel.scope.name`, `otel.scope.version`).
    pub fn matches_tag(&self, key: &str, value: &str) -> bool {
        let in_list = |list: &[KeyValue]| {
            list.iter()
                .any(|kv| kv.key == key && kv.value.to_search_string() == value)
        };
        if in_list(&self.attributes)
            || in_list(&self.resource.attributes)
            || self.events.iter().any(|e| in_list(&e.attributes))
        {
            return true;
        }
        match key {
            "span.kind" => self.kind.jaeger_name() == Some(value),
            "error" => self.is_error() && value == "true",
            "otel.status_code" => match self.status.code {
                StatusCode::Ok => value == "OK",
                StatusCode::Error => value == "ERROR",
                StatusCode::Unset => false,
            },
            "otel.status_description" => {
                !self.status.message.is_empty() && self.status.message == value
            }
            "otel.scope.name" => !self.scope.name.is_empty() && self.scope.name == value,
            "otel.scope.version" => !self.scope.version.is_empty() && self.scope.version == value,
            _ => false,
        }
    }

    /// A rough in-memory size, used for the store-size metric.
    pub fn approx_size(&self) -> usize {
        fn attrs(list: &[KeyValue]) -> usize {
            list.iter().map(|kv| kv.key.len() + 24).sum()
        }
        size_of::<Self>()
            + self.name.len()
            + self.trace_state.len()
            + attrs(&self.attributes)
            + self
                .events
                .iter()
                .map(|e| e.name.len() + 32 + attrs(&e.attributes))
                .sum::<usize>()
            + self.links.len() * size_of::<Link>()
            + self.status.message.len()
    }
}

/// Spans converted from one export request, ready for the store.
#[derive(Debug, Clone, Default)]
pub struct SpanBatch {
    /// The valid spans of the request.
    pub spans: Vec<Span>,
}

impl SpanBatch {
    /// Number of spans.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch has no spans.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}
