//! Spans for the embedded-store tests: the proptest strategy of span specs, building spans
//! from them, and the store's test configuration. Included with `#[path]` by
//! `store_embedded.rs` (the model test) and `store_recovery.rs`.
#![allow(
    dead_code,
    reason = "each test crate uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed unwrap is a failed test, with its location"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use tracelight_collector::model::{
    AttrValue, Event, KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};
use tracelight_collector::store::EmbeddedConfig;

pub(crate) const SERVICES: [&str; 3] = ["api", "db", "cache"];
pub(crate) const OPERATIONS: [&str; 3] = ["GET /", "query", "set"];
pub(crate) const HOUR_NS: u64 = 3_600_000_000_000;

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tracelight-store-")
        .tempdir_in(std::env::temp_dir())
        .unwrap()
}

pub(crate) fn config(dir: &Path) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    c.block_spans = 16;
    c.segment_bytes = 4096;
    c.cache_bytes = 64 << 10;
    c
}

pub(crate) fn trace_id(n: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0xab;
    b[8..].copy_from_slice(&n.to_be_bytes());
    TraceId::from_bytes(b).unwrap()
}

pub(crate) fn span_id(n: u64) -> SpanId {
    SpanId::from_bytes((n + 1).to_be_bytes()).unwrap()
}

pub(crate) fn kv(key: &str, value: AttrValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value,
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SpanSpec {
    pub(crate) trace: u64,
    pub(crate) parent: Option<usize>,
    pub(crate) service: usize,
    pub(crate) operation: usize,
    pub(crate) server: bool,
    pub(crate) start: u64,
    pub(crate) duration: u64,
    pub(crate) status: u16,
    pub(crate) user: u8,
    pub(crate) error: bool,
    pub(crate) event: bool,
}

pub(crate) fn spec() -> impl Strategy<Value = SpanSpec> {
    (
        (0u64..6, proptest::option::of(0usize..40), 0..SERVICES.len()),
        (0..OPERATIONS.len(), any::<bool>(), 0u64..50, 0u64..20),
        (
            prop::sample::select(vec![200u16, 404, 500]),
            0u8..3,
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (trace, parent, service),
                (operation, server, start, duration),
                (status, user, error, event),
            )| SpanSpec {
                trace,
                parent,
                service,
                operation,
                server,
                start,
                duration,
                status,
                user,
                error,
                event,
            },
        )
}

/// Builds spans; span ids are the positions, parents point at other positions.
pub(crate) fn build(specs: &[SpanSpec], base: u64, resources: &[Arc<Resource>]) -> Vec<Span> {
    let scope = Arc::new(Scope {
        name: "lib".to_owned(),
        version: "1.0".to_owned(),
        attributes: vec![],
    });
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| Span {
            trace_id: trace_id(s.trace),
            span_id: span_id(i as u64),
            parent_span_id: s.parent.map(|p| span_id(p as u64)),
            trace_state: String::new(),
            flags: 1,
            name: OPERATIONS[s.operation].to_owned(),
            kind: if s.server {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            start_ns: base + s.start * 1000,
            end_ns: base + s.start * 1000 + s.duration * 100,
            attributes: vec![
                kv("http.status_code", AttrValue::Int(i64::from(s.status))),
                kv("user", AttrValue::String(format!("u{}", s.user))),
                kv("ratio", AttrValue::Double(0.5)),
                // Longer than the string table's limit: stored inline.
                kv(
                    "url",
                    AttrValue::String(format!("https://example.com/items/{}", s.user)),
                ),
                kv("cached", AttrValue::Bool(s.user == 1)),
            ],
            events: if s.event {
                vec![Event {
                    time_ns: base + s.start * 1000 + 5,
                    name: "retry".to_owned(),
                    attributes: vec![kv("attempt", AttrValue::Int(2))],
                }]
            } else {
                vec![]
            },
            links: vec![],
            status: Status {
                code: if s.error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                message: String::new(),
            },
            resource: Arc::clone(&resources[s.service]),
            scope: Arc::clone(&scope),
        })
        .collect()
}

pub(crate) fn resources() -> Vec<Arc<Resource>> {
    SERVICES
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Arc::new(Resource {
                service_name: (*s).to_owned(),
                attributes: vec![
                    kv("service.name", AttrValue::String((*s).to_owned())),
                    kv(
                        "env",
                        AttrValue::String(if i == 0 { "prod" } else { "dev" }.to_owned()),
                    ),
                ],
            })
        })
        .collect()
}
