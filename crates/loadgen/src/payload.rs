//! The synthetic OTLP payload: realistic 5-span traces across three services.
//!
//! Every trace has the shape of one request fanning out to two backends:
//!
//! ```text
//! 0 SERVER  frontend  GET /api/checkout          (root)
//! ├─ 1 CLIENT  frontend  GET /cart/{id}
//! │  └─ 3 SERVER  cart     GET /cart/{id}
//! └─ 2 CLIENT  frontend  POST /payments
//!    └─ 4 SERVER  payment  POST /payments
//! ```
//!
//! Each span carries 10 attributes (HTTP method, route, status code, path, client address,
//! server address and port, user id, region, and the user agent (server spans) or the full URL
//! (client spans)), and encodes to about 500 bytes including its share of the resource. A request of `n` spans holds `n / 5` whole
//! traces plus, if `n` is not a multiple of 5, the first spans of one more trace (whose parents
//! are always in the request). Spans are grouped by service into one `ResourceSpans` each, as an
//! agent or gateway forwarding many processes' spans would send them.
//!
//! Generation is deterministic for a seed, so tests and the decode bench see the same bytes.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};

/// Spans in each generated trace.
pub const SPANS_PER_TRACE: usize = 5;

/// Attributes on each generated span.
pub const ATTRIBUTES_PER_SPAN: usize = 10;

/// One HTTP call: the service that serves it, its method and route.
#[derive(Debug, Clone, Copy)]
struct Call {
    service: &'static str,
    method: &'static str,
    route: &'static str,
}

/// A trace shape: a root call on one service that calls two others.
#[derive(Debug, Clone, Copy)]
struct Topology {
    root: Call,
    downstream: [Call; 2],
}

const fn call(service: &'static str, method: &'static str, route: &'static str) -> Call {
    Call {
        service,
        method,
        route,
    }
}

const TOPOLOGIES: [Topology; 4] = [
    Topology {
        root: call("frontend", "GET", "/api/checkout"),
        downstream: [
            call("cart", "GET", "/cart/{id}"),
            call("payment", "POST", "/payments"),
        ],
    },
    Topology {
        root: call("api-gateway", "GET", "/api/users/{id}"),
        downstream: [
            call("users", "GET", "/users/{id}"),
            call("auth", "POST", "/auth/verify"),
        ],
    },
    Topology {
        root: call("web", "POST", "/api/orders"),
        downstream: [
            call("orders", "POST", "/orders"),
            call("inventory", "GET", "/inventory/{id}"),
        ],
    },
    Topology {
        root: call("mobile-bff", "GET", "/api/feed"),
        downstream: [
            call("recommendations", "GET", "/recommendations/{id}"),
            call("catalog", "GET", "/products/{id}"),
        ],
    },
];

const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1"];

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                          Chrome/126.0.0.0 Safari/537.36";

/// Parent index of each span of a trace (`None`: the root).
pub const PARENTS: [Option<usize>; SPANS_PER_TRACE] = [None, Some(0), Some(0), Some(1), Some(2)];

/// A small, fast, deterministic generator (SplitMix64); good enough for ids and choices.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// A value in `0..n` (`n` > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn nonzero_u64(&mut self) -> u64 {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return v;
            }
        }
    }

    fn trace_id(&mut self) -> Vec<u8> {
        let mut id = Vec::with_capacity(16);
        id.extend_from_slice(&self.nonzero_u64().to_be_bytes());
        id.extend_from_slice(&self.nonzero_u64().to_be_bytes());
        id
    }

    fn span_id(&mut self) -> Vec<u8> {
        self.nonzero_u64().to_be_bytes().to_vec()
    }
}

/// SplitMix64's output function: a bijective 64-bit mix.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            string("service.name", service),
            string("service.version", "1.42.0"),
            string("service.namespace", "shop"),
            string("deployment.environment.name", "production"),
            string("host.name", format!("{service}-7d9c6b5f4-x2k8p")),
            string("k8s.namespace.name", "shop"),
            string("telemetry.sdk.name", "opentelemetry"),
            string("telemetry.sdk.language", "rust"),
            string("telemetry.sdk.version", "0.33.0"),
        ],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

/// Concrete path for a route: `{id}` becomes a number.
fn path(route: &str, rng: &mut SplitMix64) -> String {
    route.replace("{id}", &(10_000 + rng.below(90_000)).to_string())
}

/// A pod-network address (a string attribute; nothing connects to it).
fn client_address(rng: &mut SplitMix64) -> String {
    format!("10.244.{}.{}", rng.below(64), 2 + rng.below(250))
}

/// A UUID-shaped user id derived from `n`.
fn uuid(n: u64) -> String {
    let a = mix64(n);
    let b = mix64(!n);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

struct TraceContext<'a> {
    trace_id: &'a [u8],
    span_ids: &'a [Vec<u8>],
    start_ns: u64,
    user_id: u64,
    region: &'static str,
    failed: bool,
}

/// One span of a trace: its index in [`PARENTS`] order, kind, caller and callee, and its
/// start and end offsets from the trace start in milliseconds.
struct SpanPlan {
    index: usize,
    kind: SpanKind,
    service: &'static str,
    callee: Call,
    offsets_ms: (u64, u64),
}

fn span(ctx: &TraceContext<'_>, plan: SpanPlan, rng: &mut SplitMix64) -> (Span, &'static str) {
    let SpanPlan {
        index,
        kind,
        service,
        callee,
        offsets_ms: (start_ms, end_ms),
    } = plan;
    let status_code: i64 = if ctx.failed { 500 } else { 200 };
    let url_path = path(callee.route, rng);
    let mut attributes = vec![
        string("http.method", callee.method),
        string("http.route", callee.route),
        int("http.status_code", status_code),
        string("url.path", url_path.clone()),
        string("client.address", client_address(rng)),
        string(
            "server.address",
            format!("{}.shop.svc.cluster.local", callee.service),
        ),
        int("server.port", 8080),
        string("user.id", uuid(ctx.user_id)),
        string("region", ctx.region),
    ];
    if kind == SpanKind::Client {
        let full = format!(
            "http://{}.shop.svc.cluster.local:8080{}?locale=en-GB",
            callee.service, url_path
        );
        attributes.push(string("url.full", full));
    } else {
        attributes.push(string("user_agent.original", USER_AGENT));
    }
    let status = if ctx.failed {
        Status {
            message: format!("HTTP {status_code} from {}", callee.service),
            code: StatusCode::Error as i32,
        }
    } else {
        Status::default()
    };
    let span = Span {
        trace_id: ctx.trace_id.to_vec(),
        span_id: ctx.span_ids[index].clone(),
        trace_state: String::new(),
        parent_span_id: PARENTS[index]
            .map(|p| ctx.span_ids[p].clone())
            .unwrap_or_default(),
        flags: 0x101, // sampled, and whether the parent is remote is known
        name: format!("{} {}", callee.method, callee.route),
        kind: kind as i32,
        start_time_unix_nano: ctx.start_ns + start_ms * 1_000_000,
        end_time_unix_nano: ctx.start_ns + end_ms * 1_000_000,
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(status),
    };
    (span, service)
}

/// The spans of one trace, in [`PARENTS`] order, each with its service.
fn trace(rng: &mut SplitMix64, start_ns: u64) -> Vec<(Span, &'static str)> {
    let topology = TOPOLOGIES[rng.below(TOPOLOGIES.len() as u64) as usize];
    let trace_id = rng.trace_id();
    let span_ids: Vec<Vec<u8>> = (0..SPANS_PER_TRACE).map(|_| rng.span_id()).collect();
    let ctx = TraceContext {
        trace_id: &trace_id,
        span_ids: &span_ids,
        start_ns,
        user_id: rng.below(1_000_000),
        region: REGIONS[rng.below(REGIONS.len() as u64) as usize],
        failed: rng.below(50) == 0,
    };
    let root = topology.root;
    let [a, b] = topology.downstream;
    let plans = [
        (SpanKind::Server, root.service, root, (0, 42)),
        (SpanKind::Client, root.service, a, (2, 17)),
        (SpanKind::Client, root.service, b, (18, 40)),
        (SpanKind::Server, a.service, a, (3, 16)),
        (SpanKind::Server, b.service, b, (19, 39)),
    ];
    plans
        .into_iter()
        .enumerate()
        .map(|(index, (kind, service, callee, offsets_ms))| {
            let plan = SpanPlan {
                index,
                kind,
                service,
                callee,
                offsets_ms,
            };
            span(&ctx, plan, rng)
        })
        .collect()
}

/// Builds an export request of `spans` spans (see the module docs), deterministic in `seed`.
///
/// Span start times begin at `start_unix_nanos` and advance 1 ms per trace.
pub fn build_request(spans: usize, seed: u64, start_unix_nanos: u64) -> ExportTraceServiceRequest {
    let mut rng = SplitMix64::new(seed);
    let mut by_service: Vec<(&'static str, Vec<Span>)> = Vec::new();
    let traces = spans.div_ceil(SPANS_PER_TRACE);
    let mut left = spans;
    for t in 0..traces {
        let start = start_unix_nanos + t as u64 * 1_000_000;
        for (span, service) in trace(&mut rng, start).into_iter().take(left) {
            match by_service.iter_mut().find(|(s, _)| *s == service) {
                Some((_, list)) => list.push(span),
                None => by_service.push((service, vec![span])),
            }
            left -= 1;
        }
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tracelight".to_owned(),
                    version: "0.1.0".to_owned(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// The spans of a request, with the service name of their resource.
pub fn spans_with_service(request: &ExportTraceServiceRequest) -> Vec<(&Span, &str)> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or("");
        for ss in &rs.scope_spans {
            out.extend(ss.spans.iter().map(|s| (s, service)));
        }
    }
    out
}

/// Number of spans in a request.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

#[cfg(test)]
mod tests;
