//! [`Tracelight`]: the service that opens the server span and starts the clock.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::future::{ResponseFuture, State};
use super::layer::{InboundContext, Shared};
use super::route::{Route, route_of, route_str};
use crate::metrics::http::{METHODS, SCHEMES, method_index};
use crate::metrics::names::OTHER_METHOD;

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
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
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
        let route = route_of(&req);
        if let Some(m) = &self.shared.metrics {
            m.active(method, scheme).increment(1.0);
        }
        let span = if self.shared.spans {
            server_span(&self.shared, &req, route.as_ref(), method, scheme)
        } else {
            Span::none()
        };
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture::new(
            inner,
            State {
                span,
                start,
                route,
                method,
                scheme,
                shared: self.shared.clone(),
                finished: false,
            },
        )
    }
}

/// Opens the server span with the semantic-convention attributes known before the response.
fn server_span<B>(
    shared: &Shared,
    req: &Request<B>,
    route: Option<&Route>,
    method: u8,
    scheme: u8,
) -> Span {
    let method_str = METHODS[usize::from(method)];
    let route = route.map(route_str);
    // Semconv span name: "{method} {route}", "{method}" without a route, "HTTP" for _OTHER.
    let name_method = if method_str == OTHER_METHOD {
        "HTTP"
    } else {
        method_str
    };
    let headers = req.headers();
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let (server_address, server_port) = server_authority(req);
    let span = tracing::info_span!(
        target: "tracelight::http",
        "HTTP request",
        otel.name = %SpanName { method: name_method, route },
        otel.kind = "server",
        http.request.method = method_str,
        http.request.method_original = Empty,
        http.route = route,
        url.path = req.uri().path(),
        url.scheme = SCHEMES[usize::from(scheme)],
        network.protocol.version = protocol_version(req.version()),
        user_agent.original = user_agent,
        client.address = Empty,
        server.address = server_address,
        server.port = server_port.map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if method_str == OTHER_METHOD {
        span.record("http.request.method_original", req.method().as_str());
    }
    if let Some(addr) = client_address(req) {
        span.record("client.address", tracing::field::display(addr.ip()));
    }
    let parent = shared.propagators.extract(headers);
    let remote = parent.span().span_context().clone();
    match shared.inbound {
        InboundContext::Continue => {
            // Baggage alone (no valid remote span) still becomes the parent context.
            if remote.is_valid() || !parent.baggage().is_empty() {
                let _ = span.set_parent(parent);
            }
        }
        InboundContext::NewRootWithLink => {
            // A fresh root, whatever span is current, linked to the caller's span.
            let _ = span.set_parent(opentelemetry::Context::new());
            if remote.is_valid() {
                span.add_link(remote);
            }
        }
    }
    span
}

/// The semconv span name: `{method} {route}`, or `{method}` without a route.
struct SpanName<'a> {
    method: &'a str,
    route: Option<&'a str>,
}

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.route {
            Some(route) => write!(f, "{} {route}", self.method),
            None => f.write_str(self.method),
        }
    }
}

/// `server.address` / `server.port` from the `Host` header (HTTP/1.1) or the URI (HTTP/2).
fn server_authority<B>(req: &Request<B>) -> (Option<&str>, Option<u16>) {
    let authority = req
        .uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        });
    let Some(authority) = authority else {
        return (None, None);
    };
    // IPv6 literals are bracketed: [::1]:8080.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            (&authority[..i], authority[i + 1..].parse().ok())
        }
        _ => (authority, None),
    };
    (Some(host), port)
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

    #[test]
    fn authority_from_host_or_uri() {
        assert_eq!(
            server_authority(&req("/x", Some("shop.example:8080"))),
            (Some("shop.example"), Some(8080))
        );
        assert_eq!(
            server_authority(&req("/x", Some("shop.example"))),
            (Some("shop.example"), None)
        );
        assert_eq!(
            server_authority(&req("/x", Some("[::1]:9000"))),
            (Some("[::1]"), Some(9000))
        );
        assert_eq!(
            server_authority(&req("/x", Some("[::1]"))),
            (Some("[::1]"), None)
        );
        assert_eq!(
            server_authority(&req("http://a.b:81/x", None)),
            (Some("a.b"), Some(81))
        );
        assert_eq!(server_authority(&req("/x", None)), (None, None));
    }
}
