//! [`Tracelight`]: the service that opens the server span and starts the clock.
//!
//! The server span is an OpenTelemetry span made the current [`opentelemetry::Context`] while
//! the request future is polled (see [`crate::trace`]'s `context` module for who reads it).
//! Going through a `tracing` span and the `tracing-opentelemetry` bridge instead cost several µs
//! per request, sampled or not. It is not an SDK span either: the middleware samples it with the
//! provider's sampler and records it as a `ServerSpan` (`trace/server_span.rs`), which hands the
//! finished `SpanData` to the provider's processors itself.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use http::header::{HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, Response};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _,
    TraceFlags, Tracer as _,
};
use opentelemetry::{Context as OtelContext, KeyValue, Value};
use opentelemetry_sdk::trace::{
    SamplingDecision, ShouldSample as _, SpanData, SpanEvents, SpanLinks,
};
use tower_service::Service;

use super::future::{ResponseFuture, ServerScope, State};
use super::layer::{InboundContext, Shared};
use super::route::{InternedRoute, Route, interned, name_method, route_of_ref, route_str};
use super::values;
use crate::metrics::http::{METHODS, SCHEMES, method_index};
use crate::metrics::names::OTHER_METHOD;
use crate::propagation::is_carrier;
use crate::trace::{ServerSpan, ids};

/// Tracing and metrics middleware for one inner service. Created by
/// [`TracelightLayer`](super::TracelightLayer).
#[derive(Clone)]
pub struct Tracelight<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Tracelight<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

impl<S: fmt::Debug> fmt::Debug for Tracelight<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracelight")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Tracelight<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if (self.shared.exclude)(req.uri().path()) {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let start = Instant::now();
        let method = method_index(req.method());
        let scheme = u8::from(req.uri().scheme_str() == Some("https"));
        // The route is resolved once: interned templates are then carried as a `&'static`
        // (no `MatchedPath` clone), and index the metric series without hashing.
        let route = route_of_ref(&req);
        let interned = route.map(route_str).and_then(interned);
        let owned_route = match (route, interned) {
            (Some(r), None) => Some(r.clone()),
            _ => None,
        };
        if let Some(m) = &self.shared.metrics {
            m.active(method, scheme).increment(1.0);
        }
        let (span_cx, name, start_time) = if self.shared.spans {
            let (cx, name, start_time) =
                server_span(&self.shared, &req, route, interned, method, scheme);
            (Some(cx), name, start_time)
        } else {
            (None, None, None)
        };
        let inner = if call_is_deferred::<S>() {
            self.inner.call(req)
        } else {
            let _scope = span_cx.as_ref().map(|cx| ServerScope::enter(cx, name));
            self.inner.call(req)
        };
        ResponseFuture::new(
            inner,
            State {
                span_cx,
                name,
                start,
                start_time,
                interned,
                route: owned_route,
                method,
                scheme,
                shared: self.shared.clone(),
                finished: false,
            },
        )
    }
}

/// Whether calling an `S` only stores the request, running nothing of the application until its
/// future is first polled: then the server span need not be made current around `call` (that
/// costs as much as the scope around each poll, where the application code does run). This is
/// axum's [`Route`](axum::routing::Route), what `Router::layer` and `MethodRouter::layer` wrap:
/// its `call` puts the request into a `tower::util::Oneshot`, which calls the route's services
/// (the handler, layers added before this one) from its `poll`. For any other service the span is
/// current around `call` too, since a tower service may do work there (create a span, log).
fn call_is_deferred<S: 'static>() -> bool {
    #[cfg(feature = "axum")]
    {
        std::any::TypeId::of::<S>() == std::any::TypeId::of::<axum::routing::Route>()
    }
    #[cfg(not(feature = "axum"))]
    {
        false
    }
}

/// Opens the server span and returns the context holding it (its parent context plus the span),
/// its name when interned (for log lines), and its start time when it records.
///
/// Not recording (not sampled): the context holds only the span's ids, and no attribute is built.
/// When the sampler's decision is certain to be "drop" (see [`Shared::certainly_dropped`]), no
/// SDK span is built at all: the ids are generated here, as the SDK would.
fn server_span<B>(
    shared: &Shared,
    req: &Request<B>,
    route: Option<&Route>,
    interned: Option<&'static InternedRoute>,
    method: u8,
    scheme: u8,
) -> (OtelContext, Option<&'static str>, Option<SystemTime>) {
    let route_text = route.map(route_str);
    // Semconv span name: "{method} {route}", "{method}" without a route, "HTTP" for _OTHER.
    let static_name = match (route_text, interned) {
        (None, _) => Some(name_method(method)),
        (Some(_), Some(r)) => Some(r.name(method)),
        (Some(_), None) => None,
    };
    let headers = req.headers();
    let scanned = Scanned::of(headers);
    let mut links = None;
    let parent = match shared.inbound {
        InboundContext::Continue => match scanned
            .carrier
            .then(|| shared.propagators.extract_carried(headers))
        {
            // Baggage alone (no valid remote span) still becomes the parent context.
            Some(extracted)
                if extracted.span().span_context().is_valid()
                    || !extracted.baggage().is_empty() =>
            {
                extracted
            }
            _ => crate::trace::current_context(),
        },
        InboundContext::NewRootWithLink => {
            // A fresh root, whatever context is current, linked to the caller's span.
            let extracted = shared.propagators.extract(headers);
            let remote = extracted.span().span_context().clone();
            if remote.is_valid() {
                links = Some(vec![Link::with_context(remote)]);
            }
            OtelContext::new()
        }
    };
    if shared.certainly_dropped(&parent) {
        // What the SDK builds for a dropped span: the parent's trace id (or a new one), a new
        // span id, flags 0, the parent's trace state.
        let span = parent.span();
        let psc = span.span_context();
        let trace_id = if psc.is_valid() {
            psc.trace_id()
        } else {
            ids::new_trace_id()
        };
        let sc = SpanContext::new(
            trace_id,
            ids::new_span_id(),
            TraceFlags::default(),
            false,
            psc.trace_state().clone(),
        );
        return (parent.with_remote_span_context(sc), static_name, None);
    }
    let name: Cow<'static, str> = match (static_name, route_text) {
        (Some(n), _) => n.into(),
        (None, text) => format!("{} {}", name_method(method), text.unwrap_or_default()).into(),
    };
    let route_value = || -> Option<Value> {
        match (interned, route_text) {
            (Some(r), _) => Some(r.route.into()),
            (None, Some(text)) => Some(text.to_owned().into()),
            (None, None) => None,
        }
    };
    let early = shared.likely_recorded(parent.span().span_context());
    let start_time = SystemTime::now();
    let template = interned.map(|r| r.route);
    let early_attributes =
        early.then(|| attributes(req, &scanned, method, scheme, route_value(), template));
    if parent.is_telemetry_suppressed() || shared.sink.is_shut_down() {
        // The SDK makes an invalid, non-recording span then; let it.
        let mut builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_start_time(start_time);
        builder.attributes = early_attributes;
        builder.links = links;
        let span = shared.tracer.build_with_context(builder, &parent);
        let sc = span.span_context().clone();
        return (parent.with_remote_span_context(sc), static_name, None);
    }
    // What `SdkTracer::build_with_context` does, minus its per-span overhead (see
    // `trace::server_span`): ids, the sampler's decision, the span data.
    let sink = &shared.sink;
    let (trace_id, parent_id, parent_remote, flags) = {
        let span = parent.span();
        let psc = span.span_context();
        if psc.is_valid() {
            (
                psc.trace_id(),
                psc.span_id(),
                psc.is_remote(),
                psc.trace_flags(),
            )
        } else {
            (
                ids::new_trace_id(),
                SpanId::INVALID,
                false,
                TraceFlags::default(),
            )
        }
    };
    let span_id = ids::new_span_id();
    let sampling = sink.sampler.should_sample(
        Some(&parent),
        trace_id,
        &name,
        &SpanKind::Server,
        early_attributes.as_deref().unwrap_or_default(),
        links.as_deref().unwrap_or_default(),
    );
    let sampled = match sampling.decision {
        SamplingDecision::Drop => {
            // Children and log lines need only the ids.
            let sc = SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::default(),
                false,
                sampling.trace_state,
            );
            return (parent.with_remote_span_context(sc), static_name, None);
        }
        SamplingDecision::RecordOnly => false,
        SamplingDecision::RecordAndSample => true,
    };
    let span_context = SpanContext::new(
        trace_id,
        span_id,
        flags.with_sampled(sampled),
        false,
        sampling.trace_state,
    );
    let mut attributes = early_attributes
        .unwrap_or_else(|| attributes(req, &scanned, method, scheme, route_value(), template));
    attributes.extend(sampling.attributes);
    let mut span_links = SpanLinks::default();
    span_links.links = links.unwrap_or_default();
    let data = SpanData {
        span_context,
        parent_span_id: parent_id,
        parent_span_is_remote: parent_remote,
        span_kind: SpanKind::Server,
        name,
        start_time,
        end_time: start_time,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: span_links,
        status: Status::Unset,
        instrumentation_scope: sink.scope.clone(),
    };
    let span = ServerSpan::new(data, Arc::clone(sink));
    (parent.with_span(span), static_name, Some(start_time))
}

/// What the middleware reads from the request headers, found in one pass over them rather than
/// a hashed lookup per header: a request carries a handful of headers, and comparing a standard
/// header name is one integer comparison.
#[derive(Default)]
struct Scanned<'a> {
    /// The first `Host` header.
    host: Option<&'a HeaderValue>,
    /// The first `User-Agent` header.
    user_agent: Option<&'a HeaderValue>,
    /// Whether a header some propagation format reads is present
    /// ([`is_carrier`](crate::propagation::is_carrier)).
    carrier: bool,
}

impl<'a> Scanned<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let mut out = Scanned::default();
        for (name, value) in headers {
            if *name == HOST {
                out.host.get_or_insert(value);
            } else if *name == USER_AGENT {
                out.user_agent.get_or_insert(value);
            } else if !out.carrier {
                out.carrier = is_carrier(name);
            }
        }
        out
    }
}

/// Number of span attributes a request can have: the ten known before the response (nine plus
/// `http.request.method_original`), then `http.response.status_code` and `error.type`.
const MAX_REQUEST_ATTRIBUTES: usize = 12;

/// The semconv attributes known before the response, with room for those of the response.
/// `template` is the interned route template, if any.
fn attributes<B>(
    req: &Request<B>,
    scanned: &Scanned<'_>,
    method: u8,
    scheme: u8,
    route: Option<Value>,
    template: Option<&'static str>,
) -> Vec<KeyValue> {
    let method_str = METHODS[usize::from(method).min(METHODS.len() - 1)];
    let mut out = Vec::with_capacity(MAX_REQUEST_ATTRIBUTES);
    out.push(KeyValue::new("http.request.method", method_str));
    if method_str == OTHER_METHOD {
        out.push(KeyValue::new(
            "http.request.method_original",
            req.method().as_str().to_owned(),
        ));
    }
    if let Some(route) = route {
        out.push(KeyValue::new("http.route", route));
    }
    out.push(KeyValue::new(
        "url.path",
        url_path(req.uri().path(), template),
    ));
    out.push(KeyValue::new(
        "url.scheme",
        SCHEMES[usize::from(scheme).min(SCHEMES.len() - 1)],
    ));
    out.push(KeyValue::new(
        "network.protocol.version",
        protocol_version(req.version()),
    ));
    if let Some(ua) = scanned
        .user_agent
        .and_then(|v| values::user_agent(v.as_bytes()))
    {
        out.push(KeyValue::new("user_agent.original", ua));
    }
    if let Some(addr) = client_address(req) {
        out.push(KeyValue::new("client.address", addr.ip().to_string()));
    }
    if let Some(authority) = server_authority(req, scanned.host) {
        out.push(KeyValue::new("server.address", authority.host));
        if let Some(port) = authority.port {
            out.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    out
}

/// `url.path`: the route template itself when the path is exactly that (a route without
/// parameters, such as `/orders` or `/health`), shared instead of copied into a new string.
fn url_path(path: &str, template: Option<&'static str>) -> Value {
    match template {
        Some(t) if t == path => Value::from(t),
        _ => Value::from(path.to_owned()),
    }
}

/// `server.address` / `server.port` from the URI (HTTP/2) or the `Host` header (HTTP/1.1).
fn server_authority<B>(req: &Request<B>, host: Option<&HeaderValue>) -> Option<values::Authority> {
    let raw = match req.uri().authority() {
        Some(authority) => authority.as_str().as_bytes(),
        None => host?.as_bytes(),
    };
    values::authority(raw)
}

fn client_address<B>(req: &Request<B>) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    {
        req.extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
    }
    #[cfg(not(feature = "axum"))]
    {
        req.extensions().get::<SocketAddr>().copied()
    }
}

fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap()
    }

    fn authority(req: &Request<()>) -> (Option<String>, Option<u16>) {
        match server_authority(req, Scanned::of(req.headers()).host) {
            Some(a) => (Some(a.host.as_str().into_owned()), a.port),
            None => (None, None),
        }
    }

    #[test]
    fn authority_from_host_or_uri() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            authority(&req("/x", Some("shop.example:8080"))),
            (some("shop.example"), Some(8080))
        );
        assert_eq!(
            authority(&req("/x", Some("shop.example"))),
            (some("shop.example"), None)
        );
        assert_eq!(
            authority(&req("/x", Some("[::1]:9000"))),
            (some("[::1]"), Some(9000))
        );
        assert_eq!(authority(&req("/x", Some("[::1]"))), (some("[::1]"), None));
        assert_eq!(
            authority(&req("http://a.b:81/x", Some("other:1"))),
            (some("a.b"), Some(81))
        );
        assert_eq!(
            authority(&req("/x", Some("shop.example:http"))),
            (some("shop.example"), None)
        );
        assert_eq!(authority(&req("/x", None)), (None, None));
    }

    #[test]
    fn url_path_shares_a_template_without_parameters() {
        let template: &'static str = "/orders";
        let Value::String(shared) = url_path("/orders", Some(template)) else {
            panic!("string expected");
        };
        assert!(std::ptr::eq(shared.as_str(), template));
        for (path, template) in [
            ("/orders/42", Some("/orders/{id}")),
            ("/orders", None),
            ("/orders/", Some("/orders")),
        ] {
            assert_eq!(url_path(path, template), Value::from(path.to_owned()));
        }
    }

    #[test]
    fn one_pass_finds_first_host_user_agent_and_carriers() {
        let mut headers = HeaderMap::new();
        headers.append(HOST, HeaderValue::from_static("a.example"));
        headers.append(HOST, HeaderValue::from_static("b.example"));
        headers.append(USER_AGENT, HeaderValue::from_static("curl/8"));
        let scanned = Scanned::of(&headers);
        assert_eq!(
            scanned.host.map(HeaderValue::as_bytes),
            Some(&b"a.example"[..])
        );
        assert_eq!(
            scanned.user_agent.map(HeaderValue::as_bytes),
            Some(&b"curl/8"[..])
        );
        assert!(!scanned.carrier);
        for carrier in ["traceparent", "baggage", "b3", "x-b3-traceid"] {
            let mut h = headers.clone();
            h.insert(
                http::HeaderName::from_static(carrier),
                HeaderValue::from_static("x"),
            );
            assert!(Scanned::of(&h).carrier, "{carrier}");
        }
        let mut h = headers.clone();
        h.insert("tracestate", HeaderValue::from_static("a=b"));
        assert!(!Scanned::of(&h).carrier, "tracestate alone is not read");
    }
}
