//! Server middleware: W3C context extraction, server spans and RED metrics for tower services.
//!
//! Laid out like `tower-http`'s `trace` module: [`TracelightLayer`] (with [`LayerBuilder`]) in
//! `layer.rs`, the [`Tracelight`] service in `service.rs`, its [`ResponseFuture`] in
//! `future.rs`, error classification in [`classify`] and the route label in `route.rs`.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = tracelight::init("orders")?;
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .merge(telemetry.routes())
//!     .layer(telemetry.layer());
//! # Ok(()) }
//! ```
//!
//! Add the layer with `Router::layer` (not around the `Router` from outside) so that axum's
//! `MatchedPath` is available: requests are labelled with the route template (`/orders/{id}`),
//! never with the raw path. Requests that match no route are labelled
//! [`UNMATCHED_ROUTE`](crate::metrics::names::UNMATCHED_ROUTE).
//!
//! The server span is an OpenTelemetry span (exported through the SDK's processors like any
//! other), not a `tracing` span: it is the current [`opentelemetry::Context`] while the request
//! is handled, so `tracing` spans created in the
//! handler (`#[instrument]`, `.instrument()`-ed tasks) are its children, log lines outside them
//! carry its ids, and events outside them become its span events. `tracing::Span::current()` in
//! a handler does not see it: use [`current_context`](crate::current_context). Unsampled
//! requests get a non-recording span (ids only, no attributes).
//!
//! What is recorded, per request:
//!
//! | | |
//! |---|---|
//! | span | `{METHOD} {route}`, kind server, parent from `traceparent` (or B3), attributes `http.request.method`, `http.route`, `url.path`, `url.scheme`, `network.protocol.version`, `user_agent.original`, `client.address`, `server.address`, `server.port`, `http.response.status_code`; status Error on 5xx and on a handler panic (answered with a 500) |
//! | `http_server_request_duration_seconds` | histogram, labels `http_request_method`, `http_route`, `http_response_status_code`, `url_scheme`, `error_type` (5xx only), `service_name` |
//! | `http_server_active_requests` | gauge, labels `http_request_method`, `url_scheme`, `service_name` |
//! | response | `traceparent` of the server span (see [`LayerBuilder::response_traceparent`]) |

pub mod classify;
mod future;
mod layer;
pub(crate) mod route;
mod service;
mod values;

pub use future::ResponseFuture;
pub use layer::{
    DEFAULT_EXCLUDED_PATHS, ExcludePredicate, InboundContext, LayerBuilder, TracelightLayer,
};
pub use service::Tracelight;
