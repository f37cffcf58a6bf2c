//! The API gateway: the single entry point. Routes `/users`, `/orders` and `/products` to
//! their services and aggregates `/dashboard/{user_id}` from three of them in parallel.
//!
//! The dashboard degrades instead of failing: each part has its own timeout
//! (`SHOP_DASHBOARD_TIMEOUT_MS`); a part that fails or is late is `null` in the answer and
//! listed under `failed`, with `"degraded": true`. Only when every part fails is the answer an
//! error (502). Each left-out part is a warning on the `dashboard` span and counted in
//! `shop_dashboard_part_failures_total{part,reason}`; answers are counted in
//! `shop_dashboard_responses_total{result}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use tracing::Instrument;
use tracing::field::Empty;

use crate::config::{Env, EnvLookup, GatewayConfig, ServeConfig, Service};
use crate::upstream::{Upstream, UpstreamError};
use crate::{names, server};

/// Largest request body the gateway forwards.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Runs the gateway.
pub async fn run(env: &dyn EnvLookup) -> anyhow::Result<()> {
    let env = Env::new(env);
    let serve = ServeConfig::from_env(Service::Gateway, env)?;
    let config = GatewayConfig::from_env(env)?;
    let telemetry = tracelight::init("gateway")?;
    let client = telemetry.http_client();
    let timeout = config.upstream_timeout;
    let upstreams = Upstreams {
        users: Upstream::new("users", &config.users_url, client.clone(), timeout),
        orders: Upstream::new("orders", &config.orders_url, client.clone(), timeout),
        products: Upstream::new("products", &config.products_url, client, timeout),
    };
    server::serve(
        telemetry,
        serve,
        router(upstreams, config.dashboard_timeout),
    )
    .await
}

/// The services behind the gateway.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// Users service.
    pub users: Upstream,
    /// Orders service.
    pub orders: Upstream,
    /// Products service.
    pub products: Upstream,
}

/// The gateway's routes.
pub fn router(upstreams: Upstreams, dashboard_timeout: std::time::Duration) -> Router {
    let proxy_to = |upstream: &Upstream, prefix: &str| {
        let state = Arc::new(upstream.clone());
        Router::new()
            .route(prefix, any(proxy))
            .route(&format!("{prefix}/{{*rest}}"), any(proxy))
            .with_state(state)
    };
    let dashboard = Arc::new(Upstreams {
        users: upstreams.users.with_timeout(dashboard_timeout),
        orders: upstreams.orders.with_timeout(dashboard_timeout),
        products: upstreams.products.with_timeout(dashboard_timeout),
    });
    Router::new()
        .route("/dashboard/{user_id}", get(dashboard_handler))
        .with_state(dashboard)
        .merge(proxy_to(&upstreams.users, "/users"))
        .merge(proxy_to(&upstreams.orders, "/orders"))
        .merge(proxy_to(&upstreams.products, "/products"))
}

/// Forwards the request (method, path, query, JSON body) and relays the answer.
async fn proxy(State(upstream): State<Arc<Upstream>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let body = (!body.is_empty()).then_some(body);
    tracing::info!(upstream = upstream.service(), path = %path, "proxying");
    match upstream.send(parts.method, &path, body, &[]).await {
        Ok(raw) => {
            let status = StatusCode::from_u16(raw.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = Response::new(Body::from(raw.body));
            *response.status_mut() = status;
            if let Some(ct) = raw.content_type.and_then(|ct| ct.parse().ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response
        }
        Err(e) => {
            tracing::warn!(upstream = upstream.service(), error = %e, "upstream call failed");
            let status = match e {
                UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            error(status, &e.to_string())
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// One part of the dashboard.
struct Part {
    name: &'static str,
    result: Result<Value, UpstreamError>,
}

async fn dashboard_handler(
    State(up): State<Arc<Upstreams>>,
    Path(user_id): Path<u64>,
) -> (StatusCode, Json<Value>) {
    let span = tracing::info_span!(
        "dashboard",
        user.id = user_id,
        dashboard.degraded = Empty,
        dashboard.failed_parts = Empty,
    );
    aggregate(&up, user_id).instrument(span).await
}

async fn aggregate(up: &Upstreams, user_id: u64) -> (StatusCode, Json<Value>) {
    let user_path = format!("/users/{user_id}");
    let orders_path = format!("/orders?user_id={user_id}");
    let (user, orders, recommendations) = tokio::join!(
        up.users.get(&user_path),
        up.orders.get(&orders_path),
        up.products.get("/products?limit=3"),
    );
    let parts = [
        Part {
            name: "user",
            result: user,
        },
        Part {
            name: "orders",
            result: orders,
        },
        Part {
            name: "recommendations",
            result: recommendations,
        },
    ];
    let mut body = json!({ "user_id": user_id });
    let mut failed = Vec::new();
    for part in parts {
        match part.result {
            Ok(value) => body[part.name] = value,
            Err(e) => {
                metrics::counter!(
                    names::DASHBOARD_PART_FAILURES,
                    names::LABEL_PART => part.name,
                    names::LABEL_REASON => e.reason(),
                )
                .increment(1);
                tracing::warn!(part = part.name, error = %e, "dashboard part left out");
                body[part.name] = Value::Null;
                failed.push(
                    json!({ "part": part.name, "reason": e.reason(), "error": e.to_string() }),
                );
            }
        }
    }
    let (status, result) = match failed.len() {
        0 => (StatusCode::OK, "complete"),
        3 => (StatusCode::BAD_GATEWAY, "failed"),
        _ => (StatusCode::OK, "degraded"),
    };
    let span = tracing::Span::current();
    span.record("dashboard.degraded", !failed.is_empty());
    span.record("dashboard.failed_parts", failed.len());
    metrics::counter!(names::DASHBOARD_RESPONSES, names::LABEL_RESULT => result).increment(1);
    body["degraded"] = json!(!failed.is_empty());
    body["failed"] = json!(failed);
    (status, Json(body))
}
