//! The shipping service: creates and cancels shipments. Refuses some
//! (`SHOP_SHIPPING_FAILURE_RATE`), which makes the order saga refund and cancel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Env, EnvLookup, SHIPPING_FAULTS, ServeConfig, Service};
use crate::faults::Faults;
use crate::server;

/// Runs the shipping service.
pub async fn run(env: &dyn EnvLookup) -> anyhow::Result<()> {
    let env = Env::new(env);
    let serve = ServeConfig::from_env(Service::Shipping, env)?;
    let faults = Faults::from_env(SHIPPING_FAULTS, env)?;
    let telemetry = tracelight::init("shipping")?;
    server::serve(telemetry, serve, router(faults)).await
}

#[derive(Debug, Default)]
struct Shipments {
    next_id: AtomicU64,
    by_id: Mutex<HashMap<u64, (u64, &'static str)>>,
}

#[derive(Debug)]
struct AppState {
    faults: Faults,
    shipments: Shipments,
}

/// `POST /shipments`, `DELETE /shipments/{id}`.
pub fn router(faults: Faults) -> Router {
    let state = Arc::new(AppState {
        faults,
        shipments: Shipments::default(),
    });
    Router::new()
        .route("/shipments", post(create))
        .route("/shipments/{id}", delete(cancel))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct NewShipment {
    order_id: u64,
}

async fn create(
    State(state): State<Arc<AppState>>,
    Json(new): Json<NewShipment>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    state
        .faults
        .inject()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let id = state.shipments.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    state
        .shipments
        .by_id
        .lock()
        .insert(id, (new.order_id, "scheduled"));
    tracing::info!(
        shipment.id = id,
        order.id = new.order_id,
        "shipment scheduled"
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "order_id": new.order_id, "status": "scheduled" })),
    ))
}

async fn cancel(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> StatusCode {
    match state.shipments.by_id.lock().get_mut(&id) {
        Some(shipment) => {
            shipment.1 = "cancelled";
            tracing::info!(shipment.id = id, "shipment cancelled");
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}
