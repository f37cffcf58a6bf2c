//! Outgoing HTTP calls with `reqwest`: a client span per call, W3C context injected, client RED
//! metrics.
//!
//! [`ClientMiddleware`] is a [`reqwest_middleware::Middleware`]. For every request it opens a
//! span of kind client (a child of the current span, or of the server span when called directly
//! from a handler), injects that span's `traceparent`,
//! `tracestate` and `baggage` (or B3, as configured) into the request, and records
//! `http_client_request_duration_seconds`. The callee therefore sees **the client span** as its
//! parent, and each call gets its own span id.
//!
//! ```no_run
//! # async fn run(telemetry: &tracelight::Telemetry) -> Result<(), Box<dyn std::error::Error>> {
//! let client = telemetry.http_client();
//! let body = client.get("http://127.0.0.1:3001/stock/42").send().await?.text().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Instant;

use http::Extensions;
use opentelemetry::trace::TraceContextExt;
use reqwest_middleware::{Middleware, Next};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::MetricsHandle;
use crate::metrics::http::{ClientMetrics, ClientOutcome, METHODS, method_index};
use crate::metrics::names::OTHER_METHOD;
use crate::middleware::classify;
use crate::propagation::Propagators;

/// Traces and measures outgoing `reqwest` calls. Obtain it from
/// [`Telemetry::client_middleware`](crate::Telemetry::client_middleware), or a ready client from
/// [`Telemetry::http_client`](crate::Telemetry::http_client).
#[derive(Clone)]
pub struct ClientMiddleware {
    propagators: Propagators,
    metrics: Arc<ClientMetrics>,
}

impl std::fmt::Debug for ClientMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMiddleware").finish_non_exhaustive()
    }
}

impl ClientMiddleware {
    pub(crate) fn new(propagators: Propagators, metrics: MetricsHandle) -> Self {
        Self {
            propagators,
            metrics: Arc::new(ClientMetrics::new(metrics)),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for ClientMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let method = method_index(req.method());
        let method_str = METHODS[usize::from(method)];
        let url = req.url();
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or_default();
        let span = tracing::info_span!(
            target: "tracelight::http",
            "HTTP client request",
            otel.name = if method_str == OTHER_METHOD { "HTTP" } else { method_str },
            otel.kind = "client",
            http.request.method = method_str,
            server.address = host.as_str(),
            server.port = i64::from(port),
            url.full = redacted_url(url).as_str(),
            http.response.status_code = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        );
        if !span.is_disabled() {
            let cx = span.context();
            self.propagators.inject(&cx, req.headers_mut());
        } else {
            // No span (tracing off): still propagate the current context so traces stay joined.
            let cx = crate::trace::current_context();
            if cx.span().span_context().is_valid() {
                self.propagators.inject(&cx, req.headers_mut());
            }
        }
        let start = Instant::now();
        let result = next.run(req, extensions).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(resp) => ClientOutcome::Status(resp.status().as_u16()),
            Err(reqwest_middleware::Error::Reqwest(e)) => ClientOutcome::Failed(error_kind(e)),
            Err(_) => ClientOutcome::Failed("_OTHER"),
        };
        self.metrics
            .duration(method, &host, port, outcome)
            .record(start.elapsed().as_secs_f64());
        match outcome {
            ClientOutcome::Status(code) => {
                span.record("http.response.status_code", i64::from(code));
                if http::StatusCode::from_u16(code).is_ok_and(classify::client_error) {
                    span.record("error.type", tracing::field::display(code));
                    span.record("otel.status_code", "error");
                }
            }
            ClientOutcome::Failed(kind) => {
                span.record("error.type", kind);
                span.record("otel.status_code", "error");
            }
        }
        result
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "_OTHER"
    }
}

/// `url.full` without credentials (semconv: user info MUST NOT be recorded).
fn redacted_url(url: &reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.as_str().to_owned();
    }
    let mut u = url.clone();
    let _ = u.set_username("REDACTED");
    let _ = u.set_password(Some("REDACTED"));
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        let u = reqwest::Url::parse("http://alice:secret@127.0.0.1:8080/x?y=1").unwrap();
        let r = redacted_url(&u);
        assert!(!r.contains("secret") && !r.contains("alice"), "{r}");
        let u = reqwest::Url::parse("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(redacted_url(&u), "http://127.0.0.1:8080/x");
    }
}
