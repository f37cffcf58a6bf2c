//! The products service: the catalogue and prices. Sometimes slow (`SHOP_PRODUCTS_SLOW_RATE`),
//! which is what makes the gateway's dashboard degrade in the demo.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Env, EnvLookup, PRODUCTS_FAULTS, ServeConfig, Service};
use crate::faults::Faults;
use crate::server;

const PRODUCTS: [(u64, &str, u64); 6] = [
    (1, "Keyboard", 4_999),
    (2, "Mouse", 1_999),
    (3, "Monitor", 18_999),
    (4, "Headphones", 7_999),
    (5, "Webcam", 5_499),
    (6, "Desk lamp", 2_499),
];

/// Runs the products service.
pub async fn run(env: &dyn EnvLookup) -> anyhow::Result<()> {
    let env = Env::new(env);
    let serve = ServeConfig::from_env(Service::Products, env)?;
    let faults = Faults::from_env(PRODUCTS_FAULTS, env)?;
    let telemetry = tracelight::init("products")?;
    server::serve(telemetry, serve, router(faults)).await
}

/// `GET /products[?limit=n]`, `GET /products/{id}`.
pub fn router(faults: Faults) -> Router {
    Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(get_product))
        .with_state(Arc::new(faults))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

fn product(id: u64, name: &str, price_cents: u64) -> Value {
    json!({ "id": id, "name": name, "price_cents": price_cents })
}

async fn list(
    State(faults): State<Arc<Faults>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, StatusCode> {
    faults
        .inject()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let limit = query.limit.unwrap_or(PRODUCTS.len());
    tracing::info!(limit, "listing products");
    Ok(Json(
        PRODUCTS
            .iter()
            .take(limit)
            .map(|(id, n, p)| product(*id, n, *p))
            .collect(),
    ))
}

async fn get_product(
    State(faults): State<Arc<Faults>>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, StatusCode> {
    faults
        .inject()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let Some((id, name, price)) = PRODUCTS.iter().find(|p| p.0 == id) else {
        tracing::info!(product.id = id, "no such product");
        return Err(StatusCode::NOT_FOUND);
    };
    tracing::info!(product.id = id, "product found");
    Ok(Json(product(*id, name, *price)))
}
