//! End to end: the collector in process (memory store), every service as a child process of
//! the `shop` binary on ephemeral loopback ports, JSON logs captured from each child's stdout.
//! Assertions go through the gateway, the collector's Jaeger API and the services' `/metrics`.
//! No timing assertions: waits are bounded polls with a deadline.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test, with its location"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use shop::config::Service;
use shop::launch::{Echo, LaunchOptions, System};
use tokio_util::sync::CancellationToken;
use tracelight_collector::Running;

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Faults off unless a test turns them on, so each test controls what fails.
const QUIET: [(&str, &str); 6] = [
    ("SHOP_PAYMENTS_FAILURE_RATE", "0"),
    ("SHOP_PAYMENTS_SLOW_RATE", "0"),
    ("SHOP_PRODUCTS_SLOW_RATE", "0"),
    ("SHOP_SHIPPING_FAILURE_RATE", "0"),
    ("SHOP_DRAIN_DELAY_MS", "0"),
    // Generous: debug builds on a busy machine.
    ("SHOP_DASHBOARD_TIMEOUT_MS", "5000"),
];

struct Shop {
    system: System,
    collector: Running,
    collector_stop: CancellationToken,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    trace_id: String,
    body: Value,
}

impl Shop {
    async fn start(env: &[(&str, &str)]) -> Self {
        let mut config = tracelight_collector::config::Config::default();
        let any = "127.0.0.1:0".parse().unwrap();
        config.receiver.grpc_listen = any;
        config.receiver.http_listen = any;
        config.query.listen = any;
        config.admin.listen = any;
        config.storage.backend = "memory".to_owned();
        let collector_stop = CancellationToken::new();
        let collector =
            tracelight_collector::start(config.validate().unwrap(), collector_stop.clone())
                .await
                .unwrap();
        let options = LaunchOptions {
            exe: PathBuf::from(env!("CARGO_BIN_EXE_shop")),
            otlp_endpoint: format!("http://{}", collector.addrs().http),
            ephemeral_ports: true,
            env: QUIET
                .iter()
                .chain(env)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            echo: Echo::Nothing,
        };
        let system = System::start(&options).await.unwrap();
        Self {
            system,
            collector,
            collector_stop,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, service: Service, path: &str) -> String {
        format!("{}{path}", self.system.url(service).unwrap())
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let url = self.url(Service::Gateway, path);
        let mut request = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let traceparent = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
        let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        Answer {
            status,
            trace_id,
            body,
        }
    }

    async fn get_text(&self, url: &str) -> (u16, String) {
        let response = self.http.get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The trace, once `complete` says it has everything (spans arrive in batches).
    async fn trace(&self, trace_id: &str, complete: impl Fn(&Trace) -> bool) -> Trace {
        let url = format!(
            "http://{}/api/traces/{trace_id}",
            self.collector.addrs().query
        );
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            let (status, body) = self.get_text(&url).await;
            if status == 200 {
                let trace = Trace::parse(&serde_json::from_str(&body).unwrap());
                if complete(&trace) {
                    return trace;
                }
                last = Some(trace);
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("trace {trace_id} incomplete after {DEADLINE:?}: {last:#?}");
    }

    /// Waits until `service` has logged a line carrying `trace_id`.
    async fn wait_for_log(&self, service: Service, trace_id: &str) {
        let needle = format!(r#""trace_id":"{trace_id}""#);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while tokio::time::Instant::now() < deadline {
            if self
                .system
                .logs(service)
                .iter()
                .any(|l| l.contains(&needle))
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "no log line of {} carries trace {trace_id}:\n{}",
            service.name(),
            self.system.logs(service).join("\n")
        );
    }

    async fn metrics(&self, service: Service) -> String {
        self.get_text(&self.url(service, "/metrics")).await.1
    }

    /// Stops everything; every service must exit cleanly (drained, telemetry flushed).
    async fn shutdown(self) {
        self.system.stop().await.unwrap();
        self.collector_stop.cancel();
        self.collector.wait().await.unwrap();
    }
}

/// The value of the sample of `metric` whose labels include every `labels` pair.
fn sample(exposition: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!(r#"{k}="{v}""#)))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[derive(Debug, Clone)]
struct Span {
    id: String,
    parent: Option<String>,
    service: String,
    operation: String,
    /// Every tag and log field value, flattened to text, for loose checks.
    text: String,
}

#[derive(Debug)]
struct Trace {
    spans: Vec<Span>,
}

impl Trace {
    /// Reads a Jaeger v1 `/api/traces/{id}` answer.
    fn parse(answer: &Value) -> Self {
        let data = &answer["data"][0];
        let processes = &data["processes"];
        let spans = data["spans"]
            .as_array()
            .map(|spans| {
                spans
                    .iter()
                    .map(|s| {
                        let parent = s["references"].as_array().and_then(|refs| {
                            refs.iter()
                                .find(|r| r["refType"] == "CHILD_OF")
                                .map(|r| r["spanID"].as_str().unwrap().to_owned())
                        });
                        let process = s["processID"].as_str().unwrap();
                        Span {
                            id: s["spanID"].as_str().unwrap().to_owned(),
                            parent,
                            service: processes[process]["serviceName"]
                                .as_str()
                                .unwrap()
                                .to_owned(),
                            operation: s["operationName"].as_str().unwrap().to_owned(),
                            text: format!("{} {}", s["tags"], s["logs"]),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { spans }
    }

    fn by_id(&self) -> HashMap<&str, &Span> {
        self.spans.iter().map(|s| (s.id.as_str(), s)).collect()
    }

    fn find(&self, service: &str, operation: &str) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.service == service && s.operation == operation)
            .collect()
    }

    fn has(&self, service: &str, operation: &str) -> bool {
        !self.find(service, operation).is_empty()
    }

    /// `span` and its ancestors, innermost first; panics on a parent missing from the trace.
    fn ancestry<'a>(&'a self, span: &'a Span) -> Vec<&'a Span> {
        let by_id = self.by_id();
        let mut chain = vec![span];
        let mut current = span;
        while let Some(parent) = &current.parent {
            current = by_id
                .get(parent.as_str())
                .unwrap_or_else(|| panic!("parent {parent} of {current:?} not in the trace"));
            chain.push(current);
        }
        chain
    }

    /// The services along the ancestry, consecutive repeats removed.
    fn service_path(&self, span: &Span) -> Vec<String> {
        let mut path: Vec<String> = self
            .ancestry(span)
            .iter()
            .map(|s| s.service.clone())
            .collect();
        path.dedup();
        path
    }

    fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self.spans.iter().map(|s| s.service.clone()).collect();
        services.sort();
        services.dedup();
        services
    }
}

fn service(name: &str) -> Service {
    Service::from_name(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_one_trace_from_gateway_through_orders_to_payments_and_logs_carry_its_id() {
    let shop = Shop::start(&[]).await;

    let order = shop
        .call(
            "POST",
            "/orders",
            Some(json!({ "user_id": 1, "product_id": 2 })),
        )
        .await;
    assert_eq!(order.status, 201, "{}", order.body);
    assert_eq!(order.body["status"], "confirmed");
    let id = &order.trace_id;

    let trace = shop
        .trace(id, |t| {
            t.has("gateway", "POST /orders")
                && t.has("orders", "POST /orders")
                && t.has("payments", "POST /payments")
                && t.has("shipping", "POST /shipments")
                && t.has("products", "GET /products/{id}")
        })
        .await;

    // One root: the gateway's server span. Every other span's parent is in the trace.
    let roots: Vec<&Span> = trace.spans.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1, "{trace:#?}");
    assert_eq!(
        (roots[0].service.as_str(), roots[0].operation.as_str()),
        ("gateway", "POST /orders")
    );

    // payments' server span ← orders' client span ← charge_payment ← saga ← orders' server
    // span ← gateway's client span ← gateway's server span.
    let payment = trace.find("payments", "POST /payments")[0];
    assert_eq!(
        trace.service_path(payment),
        ["payments", "orders", "gateway"]
    );
    let operations: Vec<(&str, &str)> = trace
        .ancestry(payment)
        .iter()
        .map(|s| (s.service.as_str(), s.operation.as_str()))
        .collect();
    assert_eq!(
        operations,
        [
            ("payments", "POST /payments"),
            ("orders", "POST"),
            ("orders", "charge_payment"),
            ("orders", "saga place_order"),
            ("orders", "POST /orders"),
            ("gateway", "POST"),
            ("gateway", "POST /orders"),
        ]
    );
    // The other saga steps hang off the same saga span.
    let saga = trace.find("orders", "saga place_order")[0];
    for step in ["create_order", "ship_order"] {
        assert_eq!(
            trace.find("orders", step)[0].parent.as_deref(),
            Some(saga.id.as_str())
        );
    }

    // Every service in the trace wrote log lines carrying its trace id.
    let services = trace.services();
    assert_eq!(
        services,
        ["gateway", "orders", "payments", "products", "shipping"]
    );
    for name in &services {
        shop.wait_for_log(service(name), id).await;
    }

    // The RED metrics of tracelight and the shop's own, on each service's /metrics.
    let orders = shop.metrics(Service::Orders).await;
    let completed = [("saga", "place_order"), ("outcome", "completed")];
    assert_eq!(
        sample(&orders, "shop_saga_outcomes_total", &completed),
        Some(1.0),
        "{orders}"
    );
    let closed = [("breaker", "payments"), ("state", "closed")];
    assert_eq!(
        sample(&orders, "shop_circuit_breaker_state", &closed),
        Some(1.0)
    );
    let gateway = shop.metrics(Service::Gateway).await;
    assert!(
        gateway.contains(r#"http_route="/orders""#),
        "gateway RED metrics missing: {gateway}"
    );

    shop.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_degrades_when_a_service_is_down_and_ready_goes_false_while_draining() {
    let mut shop = Shop::start(&[("SHOP_DRAIN_DELAY_MS", "1500")]).await;

    let full = shop.call("GET", "/dashboard/1", None).await;
    assert_eq!(full.status, 200, "{}", full.body);
    assert_eq!(full.body["degraded"], false, "{}", full.body);
    assert_eq!(full.body["user"]["name"], "Ada");
    assert!(full.body["recommendations"].is_array());

    // Stopping products: /ready turns 503 while it still serves, then it exits cleanly.
    let ready = shop.url(Service::Products, "/ready");
    assert_eq!(shop.get_text(&ready).await.0, 200);
    shop.system.request_stop(Service::Products);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut saw_draining = false;
    while tokio::time::Instant::now() < deadline {
        match shop.http.get(&ready).send().await {
            Ok(r) if r.status().as_u16() == 503 => {
                saw_draining = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => break, // already closed: the poll missed the window
        }
    }
    assert!(saw_draining, "products never answered /ready with 503");
    let health = shop.get_text(&shop.url(Service::Products, "/health")).await;
    assert_eq!(health.0, 200, "still serving while draining");
    let status = shop.system.stop_service(Service::Products).await.unwrap();
    assert!(status.success(), "products exit: {status}");

    let partial = shop.call("GET", "/dashboard/1", None).await;
    assert_eq!(partial.status, 200, "{}", partial.body);
    assert_eq!(partial.body["degraded"], true);
    assert_eq!(partial.body["user"]["name"], "Ada");
    assert!(partial.body["orders"].is_array());
    assert!(partial.body["recommendations"].is_null());
    assert_eq!(
        partial.body["failed"],
        json!([{
            "part": "recommendations",
            "reason": "unavailable",
            "error": partial.body["failed"][0]["error"],
        }])
    );

    let gateway = shop.metrics(Service::Gateway).await;
    let degraded = [("result", "degraded")];
    assert_eq!(
        sample(&gateway, "shop_dashboard_responses_total", &degraded),
        Some(1.0),
        "{gateway}"
    );
    let part = [("part", "recommendations"), ("reason", "unavailable")];
    assert_eq!(
        sample(&gateway, "shop_dashboard_part_failures_total", &part),
        Some(1.0)
    );

    // The degraded answer's trace: the gateway's failed call to products is in it.
    let trace = shop
        .trace(&partial.trace_id, |t| {
            t.has("gateway", "dashboard") && t.has("users", "GET /users/{id}")
        })
        .await;
    let dashboard = trace.find("gateway", "dashboard")[0];
    assert!(
        dashboard.text.contains("dashboard part left out"),
        "{dashboard:?}"
    );
    shop.wait_for_log(Service::Gateway, &partial.trace_id).await;

    shop.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_payment_compensates_the_saga_and_opens_the_breaker() {
    let shop = Shop::start(&[
        ("SHOP_PAYMENTS_FAILURE_RATE", "1"),
        ("SHOP_RETRY_MAX_ATTEMPTS", "2"),
        ("SHOP_RETRY_BASE_MS", "1"),
        ("SHOP_BREAKER_FAILURE_THRESHOLD", "4"),
        ("SHOP_BREAKER_OPEN_MS", "600000"),
    ])
    .await;
    let new_order = json!({ "user_id": 2, "product_id": 1 });

    // 1st order: two attempts fail, the saga cancels the order.
    let first = shop.call("POST", "/orders", Some(new_order.clone())).await;
    assert_eq!(first.status, 503, "{}", first.body);
    assert_eq!(first.body["status"], "cancelled");
    assert_eq!(first.body["failed_step"], "charge_payment");
    assert_eq!(first.body["compensated"], true);
    let order_id = first.body["order_id"].as_u64().unwrap();
    let stored = shop.call("GET", &format!("/orders/{order_id}"), None).await;
    assert_eq!(stored.body["status"], "cancelled");

    let trace = shop
        .trace(&first.trace_id, |t| {
            t.find("payments", "POST /payments").len() == 2
                && t.has("orders", "compensate create_order")
                && t.has("gateway", "POST /orders")
        })
        .await;
    let saga = trace.find("orders", "saga place_order")[0];
    let step = trace.find("orders", "charge_payment")[0];
    let compensation = trace.find("orders", "compensate create_order")[0];
    assert_eq!(compensation.parent.as_deref(), Some(saga.id.as_str()));
    assert!(step.text.contains("retrying after backoff"), "{step:?}");
    for attempt in trace.find("payments", "POST /payments") {
        assert_eq!(
            trace.service_path(attempt),
            ["payments", "orders", "gateway"]
        );
        assert!(trace.ancestry(attempt).iter().any(|s| s.id == step.id));
    }
    // Nothing to undo for the step that failed, nor for the step never reached.
    assert!(!trace.has("orders", "compensate charge_payment"));
    assert!(!trace.has("orders", "ship_order"));
    shop.wait_for_log(Service::Payments, &first.trace_id).await;
    shop.wait_for_log(Service::Orders, &first.trace_id).await;

    // 2nd order: two more failures make four in a row: the breaker opens, an event in the trace.
    let second = shop.call("POST", "/orders", Some(new_order.clone())).await;
    assert_eq!(second.status, 503, "{}", second.body);
    let trace = shop
        .trace(&second.trace_id, |t| {
            t.has("orders", "compensate create_order")
        })
        .await;
    let step = trace.find("orders", "charge_payment")[0];
    assert!(
        step.text.contains("circuit breaker state changed"),
        "{step:?}"
    );

    // 3rd order: refused by the open breaker, payments is not called at all.
    let third = shop.call("POST", "/orders", Some(new_order)).await;
    assert_eq!(third.status, 503, "{}", third.body);
    assert_eq!(third.body["error"], "circuit breaker payments is open");
    let trace = shop
        .trace(&third.trace_id, |t| {
            t.has("orders", "compensate create_order")
        })
        .await;
    assert!(!trace.services().contains(&"payments".to_owned()));

    let orders = shop.metrics(Service::Orders).await;
    let compensated = [("outcome", "compensated")];
    assert_eq!(
        sample(&orders, "shop_saga_outcomes_total", &compensated),
        Some(3.0),
        "{orders}"
    );
    let open = [("breaker", "payments"), ("state", "open")];
    assert_eq!(
        sample(&orders, "shop_circuit_breaker_state", &open),
        Some(1.0)
    );
    let opened = [("from", "closed"), ("to", "open")];
    assert_eq!(
        sample(&orders, "shop_circuit_breaker_transitions_total", &opened),
        Some(1.0)
    );
    assert_eq!(
        sample(&orders, "shop_circuit_breaker_rejected_total", &[]),
        Some(1.0)
    );
    let payments = shop.metrics(Service::Payments).await;
    let failed = [("result", "failed")];
    assert_eq!(
        sample(&payments, "shop_payments_charges_total", &failed),
        Some(4.0)
    );

    shop.shutdown().await;
}
