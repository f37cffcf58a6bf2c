//! The query API: Jaeger v1 JSON (`/api/…`) and the api_v3 HTTP gateway (`/api/v3/…`).
//!
//! Contract: `jaeger-query-api.md`. Handlers parse parameters ([`params`]), ask the store on
//! a blocking thread, and render with [`jaeger`] (v1) or [`otlp_json`] (v3).

pub mod jaeger;
pub mod otlp_json;
pub mod params;
mod spm;
mod v1;
mod v3;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use serde::Serialize;

use crate::derived::Derived;
use crate::metrics::Metrics;
use crate::store::{Operation, SpanStore, StoreError};

/// Route templates; also the `route` label values of the latency metric.
const ROUTES: [&str; 14] = [
    "/api/services",
    "/api/services/{service}/operations",
    "/api/operations",
    "/api/traces",
    "/api/traces/{trace_id}",
    "/api/dependencies",
    "/api/v3/services",
    "/api/v3/operations",
    "/api/v3/traces",
    "/api/v3/traces/{trace_id}",
    "/api/v3/trace-summaries",
    "/api/metrics/calls",
    "/api/metrics/errors",
    "/api/metrics/latencies",
];

/// Shared state of the query handlers.
#[derive(Debug, Clone)]
pub struct QueryState {
    store: Arc<dyn SpanStore>,
    metrics: Arc<Metrics>,
    derived: Option<Arc<Derived>>,
}

impl QueryState {
    /// Creates the state.
    pub fn new(store: Arc<dyn SpanStore>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            derived: None,
        }
    }

    /// Answers `/api/metrics/*` from `derived` (501 without it).
    #[must_use]
    pub fn with_derived(mut self, derived: Option<Arc<Derived>>) -> Self {
        self.derived = derived;
        self
    }

    /// Runs a store call on a blocking thread.
    async fn with_store<T, F>(&self, f: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn SpanStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| QueryError::Task(e.to_string()))?
            .map_err(QueryError::Store)
    }
}

/// A failed query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Bad request parameters (400).
    #[error(transparent)]
    Param(#[from] params::ParamError),
    /// No such trace (404).
    #[error("trace not found")]
    TraceNotFound,
    /// A v3 search found nothing (404).
    #[error("No traces found")]
    NoTracesFound,
    /// The store failed (500).
    #[error("storage error: {0}")]
    Store(#[source] StoreError),
    /// `/api/metrics/*` without span metrics (501).
    #[error("span metrics are disabled in this collector (spanmetrics.enabled = false)")]
    MetricsDisabled,
    /// The blocking store task died (500).
    #[error("query task failed: {0}")]
    Task(String),
}

impl QueryError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Param(_) => StatusCode::BAD_REQUEST,
            Self::TraceNotFound | Self::NoTracesFound => StatusCode::NOT_FOUND,
            Self::Store(_) | Self::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::MetricsDisabled => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// The query router.
pub fn router(state: QueryState) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .route(ROUTES[0], get(v1::services))
        .route(ROUTES[1], get(v1::service_operations))
        .route(ROUTES[2], get(v1::operations))
        .route(ROUTES[3], get(v1::search))
        .route(ROUTES[4], get(v1::trace))
        .route(ROUTES[5], get(v1::dependencies))
        .route(ROUTES[6], get(v3::services))
        .route(ROUTES[7], get(v3::operations))
        .route(ROUTES[8], get(v3::search))
        .route(ROUTES[9], get(v3::trace))
        .route(ROUTES[10], get(v3::summaries))
        .route(ROUTES[11], get(spm::calls))
        .route(ROUTES[12], get(spm::errors))
        .route(ROUTES[13], get(spm::latencies))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            record_latency,
        ))
}

async fn record_latency(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().find(|r| **r == m.as_str()))
        .copied()
        .unwrap_or("unmatched");
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.query_latency(route, started.elapsed());
    response
}

/// One operation as both Jaeger APIs list it (`/api/operations`, `/api/v3/operations`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OperationJson {
    name: String,
    span_kind: String,
}

impl OperationJson {
    /// `unspecified` is the kind text for spans of unspecified kind: the two APIs differ.
    fn new(op: Operation, unspecified: &'static str) -> Self {
        Self {
            span_kind: op.kind.jaeger_name().unwrap_or(unspecified).to_owned(),
            name: op.name,
        }
    }
}

/// Current time, ns since the epoch.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A JSON response, indented when `pretty`.
fn json_response<T: Serialize>(status: StatusCode, body: &T, pretty: bool) -> Response {
    let bytes = if pretty {
        serde_json::to_vec_pretty(body)
    } else {
        serde_json::to_vec(body)
    };
    match bytes {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise query response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
