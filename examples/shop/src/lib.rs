//! A small shop built from microservices, observed with `tracelight`: the patterns of the
//! seed article (API gateway with graceful degradation, an orchestrated saga with
//! compensation, a circuit breaker with retry, exponential backoff and jitter, health and
//! readiness, graceful shutdown) as they look in traces, logs and metrics.
//!
//! Run with: `cargo run -p shop -- demo` (collector, every service and a traffic generator on
//! loopback), or one service with `cargo run -p shop -- <service>`.
//!
//! ```text
//!                 ┌──────────▶ users
//! client ──▶ gateway ──────▶ orders ──▶ products (price)
//!                 │            ├──────▶ payments (circuit breaker, retry)
//!                 │            └──────▶ shipping
//!                 └──────────▶ products
//! ```
//!
//! Each service is its own process with one line of `tracelight` init; ports and every
//! setting are in [`config`], metric names in [`names`].

pub mod breaker;
pub mod config;
pub mod demo;
pub mod faults;
pub mod gateway;
pub mod launch;
pub mod names;
pub mod orders;
pub mod payments;
pub mod payments_client;
pub mod products;
pub mod retry;
pub mod saga;
pub mod server;
pub mod shipping;
pub mod traffic;
pub mod upstream;
pub mod users;

use config::{EnvLookup, Service};

/// The command-line help.
pub const USAGE: &str = "\
usage: shop <command>

commands:
  demo       collector + every service + traffic generator on 127.0.0.1, Ctrl-C stops
  gateway    the API gateway            (SHOP_GATEWAY_ADDR, default 127.0.0.1:8080)
  users      the users service          (SHOP_USERS_ADDR, default 127.0.0.1:8081)
  products   the products service       (SHOP_PRODUCTS_ADDR, default 127.0.0.1:8082)
  orders     the orders service (saga)  (SHOP_ORDERS_ADDR, default 127.0.0.1:8083)
  payments   the payments service       (SHOP_PAYMENTS_ADDR, default 127.0.0.1:8084)
  shipping   the shipping service       (SHOP_SHIPPING_ADDR, default 127.0.0.1:8085)

Every variable is listed in examples/shop/README.md.";

/// A command line that names no known command.
#[derive(Debug, thiserror::Error)]
#[error("unknown command {0:?}\n\n{USAGE}")]
pub struct UsageError(pub String);

/// Runs the command named by `command` with settings from `env`.
pub async fn run(command: &str, env: &dyn EnvLookup) -> anyhow::Result<()> {
    if command == "demo" {
        return demo::run(env).await;
    }
    match Service::from_name(command) {
        Some(Service::Gateway) => gateway::run(env).await,
        Some(Service::Users) => users::run(env).await,
        Some(Service::Products) => products::run(env).await,
        Some(Service::Orders) => orders::run(env).await,
        Some(Service::Payments) => payments::run(env).await,
        Some(Service::Shipping) => shipping::run(env).await,
        None => Err(UsageError(command.to_owned()).into()),
    }
}
