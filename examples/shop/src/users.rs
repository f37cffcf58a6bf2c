//! The users service: a fixed set of user profiles (its own data, nobody else's).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::config::{Env, EnvLookup, ServeConfig, Service};
use crate::server;

const USERS: [(u64, &str, &str); 5] = [
    (1, "Ada", "ada@example.com"),
    (2, "Grace", "grace@example.com"),
    (3, "Alan", "alan@example.com"),
    (4, "Edsger", "edsger@example.com"),
    (5, "Barbara", "barbara@example.com"),
];

/// Runs the users service.
pub async fn run(env: &dyn EnvLookup) -> anyhow::Result<()> {
    let serve = ServeConfig::from_env(Service::Users, Env::new(env))?;
    let telemetry = tracelight::init("users")?;
    server::serve(telemetry, serve, router()).await
}

/// `GET /users`, `GET /users/{id}`.
pub fn router() -> Router {
    Router::new()
        .route("/users", get(list))
        .route("/users/{id}", get(get_user))
}

fn user(id: u64, name: &str, email: &str) -> Value {
    json!({ "id": id, "name": name, "email": email })
}

async fn list() -> Json<Value> {
    Json(USERS.iter().map(|(id, n, e)| user(*id, n, e)).collect())
}

async fn get_user(Path(id): Path<u64>) -> Result<Json<Value>, StatusCode> {
    let Some((id, name, email)) = USERS.iter().find(|u| u.0 == id) else {
        tracing::info!(user.id = id, "no such user");
        return Err(StatusCode::NOT_FOUND);
    };
    tracing::info!(user.id = id, "user found");
    Ok(Json(user(*id, name, email)))
}
