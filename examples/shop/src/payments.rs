//! The payments service: charges and refunds, deliberately unreliable
//! (`SHOP_PAYMENTS_FAILURE_RATE`, `SHOP_PAYMENTS_SLOW_RATE`, `SHOP_PAYMENTS_SLOW_MS`).
//!
//! A charge carries an `Idempotency-Key`; a second charge with the same key returns the first
//! payment instead of charging again. That is what makes the caller's retries safe, including
//! the retry of a charge that succeeded here but answered too late: the charge is recorded
//! before the (injected) slowness, the failure is decided before the charge.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Env, EnvLookup, PAYMENTS_FAULTS, ServeConfig, Service};
use crate::faults::Faults;
use crate::{names, server};

/// The header that makes a charge idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Runs the payments service.
pub async fn run(env: &dyn EnvLookup) -> anyhow::Result<()> {
    let env = Env::new(env);
    let serve = ServeConfig::from_env(Service::Payments, env)?;
    let faults = Faults::from_env(PAYMENTS_FAULTS, env)?;
    let telemetry = tracelight::init("payments")?;
    server::serve(telemetry, serve, router(faults)).await
}

#[derive(Debug, Clone)]
struct Payment {
    id: u64,
    order_id: u64,
    amount_cents: u64,
    refunded: bool,
}

impl Payment {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "order_id": self.order_id,
            "amount_cents": self.amount_cents,
            "status": if self.refunded { "refunded" } else { "charged" },
        })
    }
}

#[derive(Debug, Default)]
struct Ledger {
    next_id: u64,
    by_id: HashMap<u64, Payment>,
    by_key: HashMap<String, u64>,
}

#[derive(Debug)]
struct AppState {
    faults: Faults,
    ledger: Mutex<Ledger>,
}

/// `POST /payments`, `POST /payments/{id}/refund`.
pub fn router(faults: Faults) -> Router {
    let state = Arc::new(AppState {
        faults,
        ledger: Mutex::new(Ledger::default()),
    });
    Router::new()
        .route("/payments", post(charge))
        .route("/payments/{id}/refund", post(refund))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct Charge {
    order_id: u64,
    amount_cents: u64,
}

fn count(result: &'static str) {
    metrics::counter!(names::PAYMENTS_CHARGES, names::LABEL_RESULT => result).increment(1);
}

async fn charge(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(charge): Json<Charge>,
) -> Result<(StatusCode, Json<Value>), (StatusCode, Json<Value>)> {
    if state.faults.maybe_fail().is_err() {
        count("failed");
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "payment processor unavailable" })),
        ));
    }
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, payment) = {
        let mut ledger = state.ledger.lock();
        let existing = key.as_ref().and_then(|k| ledger.by_key.get(k).copied());
        match existing.and_then(|id| ledger.by_id.get(&id)) {
            Some(payment) => (StatusCode::OK, payment.clone()),
            None => {
                ledger.next_id += 1;
                let payment = Payment {
                    id: ledger.next_id,
                    order_id: charge.order_id,
                    amount_cents: charge.amount_cents,
                    refunded: false,
                };
                ledger.by_id.insert(payment.id, payment.clone());
                if let Some(k) = key {
                    ledger.by_key.insert(k, payment.id);
                }
                (StatusCode::CREATED, payment)
            }
        }
    };
    if status == StatusCode::OK {
        count("duplicate");
        tracing::info!(
            payment.id = payment.id,
            order.id = payment.order_id,
            "charge already made, returning it"
        );
    } else {
        count("approved");
        tracing::info!(
            payment.id = payment.id,
            order.id = payment.order_id,
            amount_cents = payment.amount_cents,
            "payment charged"
        );
    }
    state.faults.maybe_delay().await;
    Ok((status, Json(payment.json())))
}

async fn refund(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, StatusCode> {
    let payment = {
        let mut ledger = state.ledger.lock();
        let payment = ledger.by_id.get_mut(&id).ok_or(StatusCode::NOT_FOUND)?;
        payment.refunded = true;
        payment.clone()
    };
    tracing::info!(
        payment.id = id,
        order.id = payment.order_id,
        "payment refunded"
    );
    Ok(Json(payment.json()))
}
