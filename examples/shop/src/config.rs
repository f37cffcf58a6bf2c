//! Configuration from environment variables: every variable, its default and every port, in one
//! place.
//!
//! Values are read through [`EnvLookup`] (the process environment in `main`, a list of pairs in
//! tests), so nothing here touches process-global state. An empty value counts as unset. A value
//! that does not parse stops the service with a [`ConfigError`] naming the variable.
//!
//! ## Ports (all on 127.0.0.1)
//!
//! | Process | Listens on | Listen variable | Others reach it through |
//! |---|---|---|---|
//! | gateway | `8080` | `SHOP_GATEWAY_ADDR` | `SHOP_GATEWAY_URL` |
//! | users | `8081` | `SHOP_USERS_ADDR` | `SHOP_USERS_URL` |
//! | products | `8082` | `SHOP_PRODUCTS_ADDR` | `SHOP_PRODUCTS_URL` |
//! | orders | `8083` | `SHOP_ORDERS_ADDR` | `SHOP_ORDERS_URL` |
//! | payments | `8084` | `SHOP_PAYMENTS_ADDR` | `SHOP_PAYMENTS_URL` |
//! | shipping | `8085` | `SHOP_SHIPPING_ADDR` | `SHOP_SHIPPING_URL` |
//! | collector OTLP/gRPC (demo) | `4317` | `SHOP_COLLECTOR_OTLP_GRPC_ADDR` | |
//! | collector OTLP/HTTP (demo) | `4318` | `SHOP_COLLECTOR_OTLP_HTTP_ADDR` | `OTEL_EXPORTER_OTLP_ENDPOINT` |
//! | collector Jaeger query API (demo) | `16686` | `SHOP_COLLECTOR_QUERY_ADDR` | |
//! | collector admin, its `/metrics` (demo) | `8888` | `SHOP_COLLECTOR_ADMIN_ADDR` | |
//!
//! A `*_URL` defaults to `http://` + the matching `*_ADDR`. Port `0` picks a free port; the
//! service logs the address it bound (`"message":"listening","addr":...`).
//!
//! ## Behaviour
//!
//! | Variable | Used by | Default | Meaning |
//! |---|---|---|---|
//! | `SHOP_DRAIN_DELAY_MS` | all | `500` | after a stop signal, `/ready` answers 503 this long before the listener closes |
//! | `SHOP_STOP_ON_STDIN_EOF` | all | `false` | also stop when stdin closes (set by `shop demo` for its children) |
//! | `SHOP_UPSTREAM_TIMEOUT_MS` | gateway | `2000` | timeout of a proxied call |
//! | `SHOP_DASHBOARD_TIMEOUT_MS` | gateway | `300` | timeout of each part of `/dashboard/{user_id}` |
//! | `SHOP_PAYMENTS_TIMEOUT_MS` | orders | `500` | timeout of one call to payments |
//! | `SHOP_BREAKER_FAILURE_THRESHOLD` | orders | `5` | consecutive failures that open the breaker |
//! | `SHOP_BREAKER_OPEN_MS` | orders | `5000` | how long it stays open before a probe |
//! | `SHOP_BREAKER_HALF_OPEN_PROBES` | orders | `1` | successful probes that close it again |
//! | `SHOP_RETRY_MAX_ATTEMPTS` | orders | `3` | attempts per payment call, first one included |
//! | `SHOP_RETRY_BASE_MS` / `SHOP_RETRY_MAX_MS` | orders | `50` / `1000` | backoff: base × 2ⁿ, capped |
//! | `SHOP_RETRY_JITTER` | orders | `0.5` | fraction of each delay that is randomised (0–1) |
//! | `SHOP_PAYMENTS_FAILURE_RATE` | payments | `0.1` | share of charges answered with 503 (0–1) |
//! | `SHOP_PAYMENTS_SLOW_RATE` / `SHOP_PAYMENTS_SLOW_MS` | payments | `0.1` / `800` | share of slow charges and their delay |
//! | `SHOP_PRODUCTS_FAILURE_RATE` | products | `0` | share of requests answered with 503 |
//! | `SHOP_PRODUCTS_SLOW_RATE` / `SHOP_PRODUCTS_SLOW_MS` | products | `0.05` / `600` | share of slow answers and their delay |
//! | `SHOP_SHIPPING_FAILURE_RATE` | shipping | `0.05` | share of shipments refused with 503 |
//! | `SHOP_DEMO_RPS` | demo | `4` | requests per second of the traffic generator |

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

pub use tracelight::env::{EnvLookup, SystemEnv};

use crate::breaker::BreakerConfig;
use crate::faults::Faults;
use crate::retry::RetryPolicy;

/// Milliseconds a stopping service keeps answering `/ready` with 503 before closing its listener.
pub const ENV_DRAIN_DELAY_MS: &str = "SHOP_DRAIN_DELAY_MS";
/// Stop when stdin reaches end of file.
pub const ENV_STOP_ON_STDIN_EOF: &str = "SHOP_STOP_ON_STDIN_EOF";
/// Gateway: proxied call timeout.
pub const ENV_UPSTREAM_TIMEOUT_MS: &str = "SHOP_UPSTREAM_TIMEOUT_MS";
/// Gateway: per-part dashboard timeout.
pub const ENV_DASHBOARD_TIMEOUT_MS: &str = "SHOP_DASHBOARD_TIMEOUT_MS";
/// Orders: timeout of one payments call.
pub const ENV_PAYMENTS_TIMEOUT_MS: &str = "SHOP_PAYMENTS_TIMEOUT_MS";
/// Orders: consecutive failures that open the breaker.
pub const ENV_BREAKER_FAILURE_THRESHOLD: &str = "SHOP_BREAKER_FAILURE_THRESHOLD";
/// Orders: how long the breaker stays open.
pub const ENV_BREAKER_OPEN_MS: &str = "SHOP_BREAKER_OPEN_MS";
/// Orders: successful half-open probes that close the breaker.
pub const ENV_BREAKER_HALF_OPEN_PROBES: &str = "SHOP_BREAKER_HALF_OPEN_PROBES";
/// Orders: attempts per payments call.
pub const ENV_RETRY_MAX_ATTEMPTS: &str = "SHOP_RETRY_MAX_ATTEMPTS";
/// Orders: first backoff delay.
pub const ENV_RETRY_BASE_MS: &str = "SHOP_RETRY_BASE_MS";
/// Orders: backoff cap.
pub const ENV_RETRY_MAX_MS: &str = "SHOP_RETRY_MAX_MS";
/// Orders: randomised share of each delay.
pub const ENV_RETRY_JITTER: &str = "SHOP_RETRY_JITTER";
/// Demo: traffic generator rate.
pub const ENV_DEMO_RPS: &str = "SHOP_DEMO_RPS";
/// Demo: collector OTLP/gRPC listen address.
pub const ENV_COLLECTOR_OTLP_GRPC_ADDR: &str = "SHOP_COLLECTOR_OTLP_GRPC_ADDR";
/// Demo: collector OTLP/HTTP listen address.
pub const ENV_COLLECTOR_OTLP_HTTP_ADDR: &str = "SHOP_COLLECTOR_OTLP_HTTP_ADDR";
/// Demo: collector Jaeger query API listen address.
pub const ENV_COLLECTOR_QUERY_ADDR: &str = "SHOP_COLLECTOR_QUERY_ADDR";
/// Demo: collector admin (`/metrics`, `/ready`) listen address.
pub const ENV_COLLECTOR_ADMIN_ADDR: &str = "SHOP_COLLECTOR_ADMIN_ADDR";

/// Default collector ports (the collector's own defaults).
pub const DEFAULT_COLLECTOR_OTLP_GRPC_ADDR: &str = "127.0.0.1:4317";
/// Default OTLP/HTTP address.
pub const DEFAULT_COLLECTOR_OTLP_HTTP_ADDR: &str = "127.0.0.1:4318";
/// Default Jaeger query API address.
pub const DEFAULT_COLLECTOR_QUERY_ADDR: &str = "127.0.0.1:16686";
/// Default collector admin address.
pub const DEFAULT_COLLECTOR_ADMIN_ADDR: &str = "127.0.0.1:8888";

/// The shop's processes (the collector aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The API gateway: the only entry point for clients.
    Gateway,
    /// User profiles.
    Users,
    /// The product catalogue.
    Products,
    /// Orders and the order saga.
    Orders,
    /// Payments (slow and failing on purpose).
    Payments,
    /// Shipments.
    Shipping,
}

impl Service {
    /// Every service, dependencies before their callers (the start order).
    pub const ALL: [Self; 6] = [
        Self::Users,
        Self::Products,
        Self::Payments,
        Self::Shipping,
        Self::Orders,
        Self::Gateway,
    ];

    /// The service name: the subcommand, `service.name` and the `service_name` metric label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Users => "users",
            Self::Products => "products",
            Self::Orders => "orders",
            Self::Payments => "payments",
            Self::Shipping => "shipping",
        }
    }

    /// The service named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The default listen port.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Gateway => 8080,
            Self::Users => 8081,
            Self::Products => 8082,
            Self::Orders => 8083,
            Self::Payments => 8084,
            Self::Shipping => 8085,
        }
    }

    /// The variable holding the listen address, e.g. `SHOP_ORDERS_ADDR`.
    pub fn addr_var(self) -> &'static str {
        match self {
            Self::Gateway => "SHOP_GATEWAY_ADDR",
            Self::Users => "SHOP_USERS_ADDR",
            Self::Products => "SHOP_PRODUCTS_ADDR",
            Self::Orders => "SHOP_ORDERS_ADDR",
            Self::Payments => "SHOP_PAYMENTS_ADDR",
            Self::Shipping => "SHOP_SHIPPING_ADDR",
        }
    }

    /// The variable holding the base URL callers use, e.g. `SHOP_ORDERS_URL`.
    pub fn url_var(self) -> &'static str {
        match self {
            Self::Gateway => "SHOP_GATEWAY_URL",
            Self::Users => "SHOP_USERS_URL",
            Self::Products => "SHOP_PRODUCTS_URL",
            Self::Orders => "SHOP_ORDERS_URL",
            Self::Payments => "SHOP_PAYMENTS_URL",
            Self::Shipping => "SHOP_SHIPPING_URL",
        }
    }

    /// The services this one calls.
    pub fn dependencies(self) -> &'static [Self] {
        match self {
            Self::Gateway => &[Self::Users, Self::Orders, Self::Products],
            Self::Orders => &[Self::Products, Self::Payments, Self::Shipping],
            Self::Users | Self::Products | Self::Payments | Self::Shipping => &[],
        }
    }

    /// The default listen address, `127.0.0.1:<default port>`.
    pub fn default_addr(self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.default_port()))
    }
}

/// A variable that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {var}: {reason}")]
pub struct ConfigError {
    /// The variable, e.g. `SHOP_PAYMENTS_FAILURE_RATE`.
    pub var: &'static str,
    /// What it held.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// Typed reads of environment variables with defaults.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    lookup: &'a dyn EnvLookup,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl<'a> Env<'a> {
    /// Reads from `lookup`.
    pub fn new(lookup: &'a dyn EnvLookup) -> Self {
        Self { lookup }
    }

    /// The trimmed value of `var`; empty counts as unset.
    pub fn raw(&self, var: &str) -> Option<String> {
        self.lookup
            .get(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn check<T>(
        &self,
        var: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(value) => parse(&value).map_err(|reason| ConfigError { var, value, reason }),
        }
    }

    /// `var` parsed with [`FromStr`], or `default`.
    pub fn parse<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.check(var, default, |v| {
            v.parse().map_err(|e: T::Err| e.to_string())
        })
    }

    /// A duration in whole milliseconds.
    pub fn millis(&self, var: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.check(var, Duration::from_millis(default_ms), |v| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("expected milliseconds as a whole number: {e}"))
        })
    }

    /// A share between 0 and 1 inclusive.
    pub fn ratio(&self, var: &'static str, default: f64) -> Result<f64, ConfigError> {
        self.check(var, default, |v| match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            Ok(_) => Err("expected a number between 0 and 1".to_owned()),
            Err(e) => Err(format!("expected a number between 0 and 1: {e}")),
        })
    }

    /// A count of at least 1.
    pub fn count(&self, var: &'static str, default: u32) -> Result<u32, ConfigError> {
        self.check(var, default, |v| match v.parse::<u32>() {
            Ok(0) => Err("expected a whole number of at least 1".to_owned()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("expected a whole number of at least 1: {e}")),
        })
    }

    /// `true`/`false` (also `1`/`0`).
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.check(var, default, |v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        })
    }

    /// A socket address such as `127.0.0.1:8080`.
    pub fn addr(&self, var: &'static str, default: SocketAddr) -> Result<SocketAddr, ConfigError> {
        self.check(var, default, |v| {
            v.parse()
                .map_err(|e| format!("expected an address such as 127.0.0.1:8080: {e}"))
        })
    }

    /// The listen address of `service`.
    pub fn listen_addr(&self, service: Service) -> Result<SocketAddr, ConfigError> {
        self.addr(service.addr_var(), service.default_addr())
    }

    /// The base URL of `service` (no trailing slash): its `*_URL` variable, else `http://` and
    /// its listen address.
    pub fn service_url(&self, service: Service) -> Result<String, ConfigError> {
        let var = service.url_var();
        match self.raw(var) {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(url.trim_end_matches('/').to_owned())
            }
            Some(value) => Err(ConfigError {
                var,
                value,
                reason: "expected an http:// URL".to_owned(),
            }),
            None => Ok(format!("http://{}", self.listen_addr(service)?)),
        }
    }
}

/// How a service listens and stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// How long `/ready` answers 503 before the listener closes.
    pub drain_delay: Duration,
    /// Also stop at end of stdin.
    pub stop_on_stdin_eof: bool,
}

impl ServeConfig {
    /// Reads the settings of `service`.
    pub fn from_env(service: Service, env: Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: env.listen_addr(service)?,
            drain_delay: env.millis(ENV_DRAIN_DELAY_MS, 500)?,
            stop_on_stdin_eof: env.flag(ENV_STOP_ON_STDIN_EOF, false)?,
        })
    }
}

/// The gateway's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Users service base URL.
    pub users_url: String,
    /// Orders service base URL.
    pub orders_url: String,
    /// Products service base URL.
    pub products_url: String,
    /// Timeout of a proxied call.
    pub upstream_timeout: Duration,
    /// Timeout of each dashboard part.
    pub dashboard_timeout: Duration,
}

impl GatewayConfig {
    /// Reads the gateway's settings.
    pub fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            users_url: env.service_url(Service::Users)?,
            orders_url: env.service_url(Service::Orders)?,
            products_url: env.service_url(Service::Products)?,
            upstream_timeout: env.millis(ENV_UPSTREAM_TIMEOUT_MS, 2000)?,
            dashboard_timeout: env.millis(ENV_DASHBOARD_TIMEOUT_MS, 300)?,
        })
    }
}

/// The orders service's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersConfig {
    /// Products service base URL (prices).
    pub products_url: String,
    /// Payments service base URL.
    pub payments_url: String,
    /// Shipping service base URL.
    pub shipping_url: String,
    /// Timeout of one payments call.
    pub payments_timeout: Duration,
    /// The payments circuit breaker.
    pub breaker: BreakerConfig,
    /// Retries of payments calls.
    pub retry: RetryPolicy,
}

impl OrdersConfig {
    /// Reads the orders service's settings.
    pub fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            products_url: env.service_url(Service::Products)?,
            payments_url: env.service_url(Service::Payments)?,
            shipping_url: env.service_url(Service::Shipping)?,
            payments_timeout: env.millis(ENV_PAYMENTS_TIMEOUT_MS, 500)?,
            breaker: BreakerConfig {
                failure_threshold: env.count(ENV_BREAKER_FAILURE_THRESHOLD, 5)?,
                open_for: env.millis(ENV_BREAKER_OPEN_MS, 5000)?,
                half_open_probes: env.count(ENV_BREAKER_HALF_OPEN_PROBES, 1)?,
            },
            retry: RetryPolicy {
                max_attempts: env.count(ENV_RETRY_MAX_ATTEMPTS, 3)?,
                base_delay: env.millis(ENV_RETRY_BASE_MS, 50)?,
                max_delay: env.millis(ENV_RETRY_MAX_MS, 1000)?,
                jitter: env.ratio(ENV_RETRY_JITTER, 0.5)?,
            },
        })
    }
}

/// Fault-injection variables of one service.
#[derive(Debug, Clone, Copy)]
pub struct FaultVars {
    /// Share of requests answered with 503.
    pub failure_rate: &'static str,
    /// Share of slow answers.
    pub slow_rate: &'static str,
    /// Delay of a slow answer.
    pub slow_ms: &'static str,
}

/// Payments' fault variables, defaults 0.1 / 0.1 / 800 ms.
pub const PAYMENTS_FAULTS: (FaultVars, Faults) = (
    FaultVars {
        failure_rate: "SHOP_PAYMENTS_FAILURE_RATE",
        slow_rate: "SHOP_PAYMENTS_SLOW_RATE",
        slow_ms: "SHOP_PAYMENTS_SLOW_MS",
    },
    Faults {
        failure_rate: 0.1,
        slow_rate: 0.1,
        slow_delay: Duration::from_millis(800),
    },
);

/// Products' fault variables, defaults 0 / 0.05 / 600 ms.
pub const PRODUCTS_FAULTS: (FaultVars, Faults) = (
    FaultVars {
        failure_rate: "SHOP_PRODUCTS_FAILURE_RATE",
        slow_rate: "SHOP_PRODUCTS_SLOW_RATE",
        slow_ms: "SHOP_PRODUCTS_SLOW_MS",
    },
    Faults {
        failure_rate: 0.0,
        slow_rate: 0.05,
        slow_delay: Duration::from_millis(600),
    },
);

/// Shipping's fault variables, defaults 0.05 / 0 / 0 ms.
pub const SHIPPING_FAULTS: (FaultVars, Faults) = (
    FaultVars {
        failure_rate: "SHOP_SHIPPING_FAILURE_RATE",
        slow_rate: "SHOP_SHIPPING_SLOW_RATE",
        slow_ms: "SHOP_SHIPPING_SLOW_MS",
    },
    Faults {
        failure_rate: 0.05,
        slow_rate: 0.0,
        slow_delay: Duration::ZERO,
    },
);

impl Faults {
    /// Reads the fault settings named by `vars`, with `defaults`.
    pub fn from_env(
        (vars, defaults): (FaultVars, Self),
        env: Env<'_>,
    ) -> Result<Self, ConfigError> {
        let default_ms = u64::try_from(defaults.slow_delay.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            failure_rate: env.ratio(vars.failure_rate, defaults.failure_rate)?,
            slow_rate: env.ratio(vars.slow_rate, defaults.slow_rate)?,
            slow_delay: env.millis(vars.slow_ms, default_ms)?,
        })
    }
}

/// The demo's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoConfig {
    /// Collector OTLP/gRPC address.
    pub otlp_grpc: SocketAddr,
    /// Collector OTLP/HTTP address (the services export here).
    pub otlp_http: SocketAddr,
    /// Collector Jaeger query API address.
    pub query: SocketAddr,
    /// Collector admin address.
    pub admin: SocketAddr,
    /// Traffic generator requests per second.
    pub rps: f64,
}

impl DemoConfig {
    /// Reads the demo's settings.
    pub fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
        let addr = |var, default: &str| {
            env.addr(
                var,
                default
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            )
        };
        Ok(Self {
            otlp_grpc: addr(
                ENV_COLLECTOR_OTLP_GRPC_ADDR,
                DEFAULT_COLLECTOR_OTLP_GRPC_ADDR,
            )?,
            otlp_http: addr(
                ENV_COLLECTOR_OTLP_HTTP_ADDR,
                DEFAULT_COLLECTOR_OTLP_HTTP_ADDR,
            )?,
            query: addr(ENV_COLLECTOR_QUERY_ADDR, DEFAULT_COLLECTOR_QUERY_ADDR)?,
            admin: addr(ENV_COLLECTOR_ADMIN_ADDR, DEFAULT_COLLECTOR_ADMIN_ADDR)?,
            rps: env.check(ENV_DEMO_RPS, 4.0, |v| match v.parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 1000.0 => Ok(r),
                Ok(_) => Err("expected a rate between 0 and 1000".to_owned()),
                Err(e) => Err(format!("expected a number: {e}")),
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_variables() {
        let empty: [(&str, &str); 0] = [];
        let env = Env::new(&empty);
        let serve = ServeConfig::from_env(Service::Orders, env).unwrap();
        assert_eq!(serve.listen, "127.0.0.1:8083".parse().unwrap());
        let orders = OrdersConfig::from_env(env).unwrap();
        assert_eq!(orders.payments_url, "http://127.0.0.1:8084");
        assert_eq!(orders.breaker.failure_threshold, 5);
        let demo = DemoConfig::from_env(env).unwrap();
        assert_eq!(demo.query, "127.0.0.1:16686".parse().unwrap());
    }

    #[test]
    fn url_follows_the_listen_address_unless_set() {
        let vars = [
            ("SHOP_PAYMENTS_ADDR", "127.0.0.1:9000"),
            ("SHOP_SHIPPING_URL", "http://127.0.0.1:9100/"),
        ];
        let orders = OrdersConfig::from_env(Env::new(&vars)).unwrap();
        assert_eq!(orders.payments_url, "http://127.0.0.1:9000");
        assert_eq!(orders.shipping_url, "http://127.0.0.1:9100");
    }

    #[test]
    fn errors_name_the_variable_and_value() {
        let vars = [("SHOP_PAYMENTS_FAILURE_RATE", "1.5")];
        let err = Faults::from_env(PAYMENTS_FAULTS, Env::new(&vars)).unwrap_err();
        assert_eq!(err.var, "SHOP_PAYMENTS_FAILURE_RATE");
        assert_eq!(
            err.to_string(),
            "invalid value \"1.5\" for SHOP_PAYMENTS_FAILURE_RATE: expected a number between 0 and 1"
        );

        let vars = [("SHOP_BREAKER_FAILURE_THRESHOLD", "0")];
        let err = OrdersConfig::from_env(Env::new(&vars)).unwrap_err();
        assert_eq!(err.var, "SHOP_BREAKER_FAILURE_THRESHOLD");

        let vars = [("SHOP_GATEWAY_ADDR", "localhost")];
        let err = ServeConfig::from_env(Service::Gateway, Env::new(&vars)).unwrap_err();
        assert_eq!(err.var, "SHOP_GATEWAY_ADDR");

        let vars = [("SHOP_USERS_URL", "users:8081")];
        let err = GatewayConfig::from_env(Env::new(&vars)).unwrap_err();
        assert_eq!(err.var, "SHOP_USERS_URL");
    }

    #[test]
    fn every_service_has_distinct_ports_and_names() {
        let mut ports: Vec<u16> = Service::ALL.iter().map(|s| s.default_port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), Service::ALL.len());
        for s in Service::ALL {
            assert_eq!(Service::from_name(s.name()), Some(s));
            assert!(s.addr_var().contains(&s.name().to_ascii_uppercase()));
        }
    }
}
