//! The orders service: owns orders and orchestrates the `place_order` saga.
//!
//! ```text
//! create_order   (products: price; store: pending)   ↺ cancel the order
//! charge_payment (payments, breaker + retry)          ↺ refund
//! ship_order     (shipping)                           ↺ cancel the shipment
//! ```
//!
//! `POST /orders` answers 201 with the confirmed order, or, when a step failed and the saga
//! compensated, 503 (a dependency failed) or 404 (unknown product) with the failed step.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::breaker::CircuitBreaker;
use crate::config::{Env, EnvLookup, OrdersConfig, ServeConfig, Service};
use crate::payments_client::PaymentsClient;
use crate::saga::{Saga, SagaOutcome, Step, StepFuture};
use crate::server;
use crate::upstream::{Upstream, UpstreamError};

/// The saga's name (the `saga` label).
pub const SAGA_PLACE_ORDER: &str = "place_order";

/// Runs the orders service.
pub async fn run(env: &dyn EnvLookup) -> anyhow::Result<()> {
    let env = Env::new(env);
    let serve = ServeConfig::from_env(Service::Orders, env)?;
    let config = OrdersConfig::from_env(env)?;
    let telemetry = tracelight::init("orders")?;
    let client = telemetry.http_client();
    let timeout = config.payments_timeout;
    let deps = Arc::new(Deps {
        store: Mutex::new(Store::default()),
        products: Upstream::new("products", &config.products_url, client.clone(), timeout),
        payments: PaymentsClient::new(
            Upstream::new("payments", &config.payments_url, client.clone(), timeout),
            CircuitBreaker::new("payments", config.breaker),
            config.retry,
        ),
        shipping: Upstream::new("shipping", &config.shipping_url, client, timeout),
    });
    server::serve(telemetry, serve, router(deps)).await
}

/// An order, as stored and returned.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    /// Order id.
    pub id: u64,
    /// Buyer.
    pub user_id: u64,
    /// Product bought.
    pub product_id: u64,
    /// How many.
    pub quantity: u64,
    /// Total price.
    pub amount_cents: u64,
    /// `pending`, `confirmed` or `cancelled`.
    pub status: &'static str,
    /// Payment, once charged.
    pub payment_id: Option<u64>,
    /// Shipment, once scheduled.
    pub shipment_id: Option<u64>,
}

#[derive(Debug, Default)]
struct Store {
    next_id: u64,
    orders: HashMap<u64, Order>,
}

/// What the saga steps use.
#[derive(Debug)]
pub struct Deps {
    store: Mutex<Store>,
    products: Upstream,
    payments: PaymentsClient,
    shipping: Upstream,
}

#[derive(Debug, Clone)]
struct AppState {
    deps: Arc<Deps>,
    saga: Arc<Saga<PlaceOrder>>,
}

/// `POST /orders`, `GET /orders[?user_id=]`, `GET /orders/{id}`.
pub fn router(deps: Arc<Deps>) -> Router {
    let saga = Saga::new(SAGA_PLACE_ORDER)
        .step(CreateOrder(Arc::clone(&deps)))
        .step(ChargePayment(Arc::clone(&deps)))
        .step(ShipOrder(Arc::clone(&deps)));
    let state = AppState {
        deps,
        saga: Arc::new(saga),
    };
    Router::new()
        .route("/orders", get(list).post(place))
        .route("/orders/{id}", get(get_order))
        .with_state(state)
}

/// The saga's context: the request, then what each step produced.
#[derive(Debug, Clone, Default)]
pub struct PlaceOrder {
    user_id: u64,
    product_id: u64,
    quantity: u64,
    order_id: Option<u64>,
    amount_cents: u64,
    payment_id: Option<u64>,
    shipment_id: Option<u64>,
}

impl PlaceOrder {
    fn order_id(&self) -> anyhow::Result<u64> {
        self.order_id
            .ok_or_else(|| anyhow::anyhow!("no order created yet"))
    }
}

struct CreateOrder(Arc<Deps>);
struct ChargePayment(Arc<Deps>);
struct ShipOrder(Arc<Deps>);

impl Step<PlaceOrder> for CreateOrder {
    fn name(&self) -> &'static str {
        "create_order"
    }

    fn execute<'a>(&'a self, ctx: &'a mut PlaceOrder) -> StepFuture<'a> {
        Box::pin(async move {
            let product = self
                .0
                .products
                .get(&format!("/products/{}", ctx.product_id))
                .await?;
            let price = product["price_cents"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("product without a price"))?;
            ctx.amount_cents = price * ctx.quantity;
            let mut store = self.0.store.lock();
            store.next_id += 1;
            let order = Order {
                id: store.next_id,
                user_id: ctx.user_id,
                product_id: ctx.product_id,
                quantity: ctx.quantity,
                amount_cents: ctx.amount_cents,
                status: "pending",
                payment_id: None,
                shipment_id: None,
            };
            ctx.order_id = Some(order.id);
            tracing::info!(
                order.id = order.id,
                amount_cents = order.amount_cents,
                "order created"
            );
            store.orders.insert(order.id, order);
            Ok(())
        })
    }

    fn compensate<'a>(&'a self, ctx: &'a mut PlaceOrder) -> StepFuture<'a> {
        Box::pin(async move {
            let id = ctx.order_id()?;
            if let Some(order) = self.0.store.lock().orders.get_mut(&id) {
                order.status = "cancelled";
            }
            tracing::info!(order.id = id, "order cancelled");
            Ok(())
        })
    }
}

impl Step<PlaceOrder> for ChargePayment {
    fn name(&self) -> &'static str {
        "charge_payment"
    }

    fn execute<'a>(&'a self, ctx: &'a mut PlaceOrder) -> StepFuture<'a> {
        Box::pin(async move {
            let order_id = ctx.order_id()?;
            let payment_id = self.0.payments.charge(order_id, ctx.amount_cents).await?;
            ctx.payment_id = Some(payment_id);
            tracing::info!(
                order.id = order_id,
                payment.id = payment_id,
                "payment charged"
            );
            Ok(())
        })
    }

    fn compensate<'a>(&'a self, ctx: &'a mut PlaceOrder) -> StepFuture<'a> {
        Box::pin(async move {
            let Some(payment_id) = ctx.payment_id else {
                return Ok(());
            };
            self.0.payments.refund(payment_id).await?;
            tracing::info!(payment.id = payment_id, "payment refunded");
            Ok(())
        })
    }
}

impl Step<PlaceOrder> for ShipOrder {
    fn name(&self) -> &'static str {
        "ship_order"
    }

    fn execute<'a>(&'a self, ctx: &'a mut PlaceOrder) -> StepFuture<'a> {
        Box::pin(async move {
            let order_id = ctx.order_id()?;
            let body = json!({ "order_id": order_id });
            let shipment = self
                .0
                .shipping
                .call(Method::POST, "/shipments", Some(&body), &[])
                .await?;
            let id = shipment["id"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("shipment without an id"))?;
            ctx.shipment_id = Some(id);
            tracing::info!(order.id = order_id, shipment.id = id, "shipment scheduled");
            Ok(())
        })
    }

    fn compensate<'a>(&'a self, ctx: &'a mut PlaceOrder) -> StepFuture<'a> {
        Box::pin(async move {
            let Some(id) = ctx.shipment_id else {
                return Ok(());
            };
            self.0
                .shipping
                .call(Method::DELETE, &format!("/shipments/{id}"), None, &[])
                .await?;
            Ok(())
        })
    }
}

/// `POST /orders` body.
#[derive(Debug, Deserialize)]
struct NewOrder {
    user_id: u64,
    product_id: u64,
    #[serde(default = "one")]
    quantity: u64,
}

fn one() -> u64 {
    1
}

async fn place(
    State(state): State<AppState>,
    Json(new): Json<NewOrder>,
) -> (StatusCode, Json<Value>) {
    if new.quantity == 0 || new.quantity > 100 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "quantity must be between 1 and 100" })),
        );
    }
    let mut ctx = PlaceOrder {
        user_id: new.user_id,
        product_id: new.product_id,
        quantity: new.quantity,
        ..PlaceOrder::default()
    };
    let outcome = state.saga.run(&mut ctx).await;
    let store = &state.deps.store;
    match outcome {
        SagaOutcome::Completed => {
            let mut store = store.lock();
            let Some(order) = ctx.order_id.and_then(|id| store.orders.get_mut(&id)) else {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "order vanished" })),
                );
            };
            order.status = "confirmed";
            order.payment_id = ctx.payment_id;
            order.shipment_id = ctx.shipment_id;
            tracing::info!(order.id = order.id, "order confirmed");
            (StatusCode::CREATED, Json(json!(order)))
        }
        SagaOutcome::Compensated { failed_step, error } => {
            let not_found = error
                .downcast_ref::<UpstreamError>()
                .and_then(UpstreamError::status)
                == Some(404);
            let status = if not_found {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                status,
                Json(json!({
                    "status": "cancelled",
                    "order_id": ctx.order_id,
                    "failed_step": failed_step,
                    "error": error.to_string(),
                    "compensated": true,
                })),
            )
        }
        SagaOutcome::CompensationFailed {
            failed_step,
            error,
            failed_compensations,
        } => {
            let failed: Vec<Value> = failed_compensations
                .iter()
                .map(|(step, e)| json!({ "step": step, "error": e.to_string() }))
                .collect();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({
                    "status": "needs_attention",
                    "order_id": ctx.order_id,
                    "failed_step": failed_step,
                    "error": error.to_string(),
                    "compensated": false,
                    "failed_compensations": failed,
                })),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    user_id: Option<u64>,
}

async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Json<Value> {
    let store = state.deps.store.lock();
    let mut orders: Vec<&Order> = store
        .orders
        .values()
        .filter(|o| query.user_id.is_none_or(|u| o.user_id == u))
        .collect();
    orders.sort_by_key(|o| o.id);
    tracing::info!(count = orders.len(), "listing orders");
    Json(json!(orders))
}

async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, StatusCode> {
    let store = state.deps.store.lock();
    let order = store.orders.get(&id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!(order)))
}
