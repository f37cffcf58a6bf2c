//! Admin endpoint: `/metrics` (Prometheus text), `/health` (liveness), `/ready` (readiness).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};

use crate::derived::Derived;
use crate::metrics::Metrics;
use crate::pipeline::PipelineProbe;
use crate::store::SpanStore;

/// Path of the Prometheus exposition.
pub const PATH_METRICS: &str = "/metrics";
/// Path of the liveness probe (200 while the process serves).
pub const PATH_HEALTH: &str = "/health";
/// Path of the readiness probe (200 once the store is open and receivers are bound, 503 while
/// shutting down).
pub const PATH_READY: &str = "/ready";

/// Readiness: true once the store is open and every receiver is bound; false again when
/// shutdown starts.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Sets the flag.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Reads the flag.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    store: Arc<dyn SpanStore>,
    pipeline: PipelineProbe,
    ready: Arc<Readiness>,
    derived: Option<Arc<Derived>>,
}

/// The admin router; `derived` adds span metrics and the service graph to `/metrics`.
pub fn router(
    metrics: Arc<Metrics>,
    store: Arc<dyn SpanStore>,
    pipeline: PipelineProbe,
    ready: Arc<Readiness>,
    derived: Option<Arc<Derived>>,
) -> Router {
    Router::new()
        .route(PATH_METRICS, get(metrics_text))
        .route(PATH_HEALTH, get(health))
        .route(PATH_READY, get(readiness))
        .with_state(AdminState {
            metrics,
            store,
            pipeline,
            ready,
            derived,
        })
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    let store = Arc::clone(&state.store);
    let derived = state.derived.clone();
    let metrics = Arc::clone(&state.metrics);
    let queued = state.pipeline.queued();
    // Store statistics may touch disk in a durable store, and the derived series are sorted.
    let body = tokio::task::spawn_blocking(move || {
        let mut body = metrics.render(store.stats(), queued);
        if let Some(derived) = derived {
            derived.render(&mut body);
        }
        body
    })
    .await
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn health() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readiness(State(state): State<AdminState>) -> Response {
    if state.ready.get() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}
