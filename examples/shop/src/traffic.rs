//! The demo's traffic generator: a steady mix of shop requests through the gateway.
//!
//! Every ~10 s it prints what it sent and how it went, and a recent order whose trace you can
//! open in the Jaeger API (the gateway returns each request's `traceparent`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// How often the summary is printed.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Stats {
    /// (scenario, status class) → count.
    counts: BTreeMap<(&'static str, String), u64>,
    last_order_trace: Option<String>,
}

/// Sends about `rps` requests per second to `gateway_url` until `stop` is cancelled.
pub async fn run(gateway_url: String, rps: f64, query_url: String, stop: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("traffic generator: cannot build an HTTP client: {e}");
            return;
        }
    };
    let stats = Arc::new(Mutex::new(Stats::default()));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
    let mut report = tokio::time::interval(REPORT_EVERY);
    report.tick().await;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                let (client, url, stats) = (client.clone(), gateway_url.clone(), Arc::clone(&stats));
                tasks.spawn(async move { one_request(&client, &url, &stats).await });
                while tasks.try_join_next().is_some() {}
            }
            _ = report.tick() => print_report(&stats, &query_url),
        }
    }
    // Let requests in flight finish before the services are stopped.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

async fn one_request(client: &reqwest::Client, gateway: &str, stats: &Mutex<Stats>) {
    let user = rand::random_range(1..=6u64); // user 6 does not exist: some 404s
    let product = rand::random_range(1..=6u64);
    let roll = rand::random::<f64>();
    let (scenario, request) = if roll < 0.4 {
        let body = format!(r#"{{"user_id":{user},"product_id":{product},"quantity":1}}"#);
        (
            "place order",
            client
                .post(format!("{gateway}/orders"))
                .header("content-type", "application/json")
                .body(body),
        )
    } else if roll < 0.65 {
        (
            "dashboard",
            client.get(format!("{gateway}/dashboard/{user}")),
        )
    } else if roll < 0.85 {
        ("products", client.get(format!("{gateway}/products")))
    } else {
        ("user", client.get(format!("{gateway}/users/{user}")))
    };
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status();
            if scenario == "place order" && status.is_success() {
                let trace = response
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|tp| tp.split('-').nth(1))
                    .map(str::to_owned);
                if trace.is_some() {
                    stats.lock().last_order_trace = trace;
                }
            }
            format!("{}xx", status.as_u16() / 100)
        }
        Err(e) if e.is_timeout() => "timeout".to_owned(),
        Err(_) => "error".to_owned(),
    };
    *stats.lock().counts.entry((scenario, outcome)).or_default() += 1;
}

fn print_report(stats: &Mutex<Stats>, query_url: &str) {
    let stats = stats.lock();
    let mut by_scenario: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((scenario, outcome), n) in &stats.counts {
        by_scenario
            .entry(scenario)
            .or_default()
            .push(format!("{outcome} {n}"));
    }
    let summary: Vec<String> = by_scenario
        .iter()
        .map(|(s, o)| format!("{s}: {}", o.join(", ")))
        .collect();
    println!("[ traffic] sent so far — {}", summary.join(" | "));
    if let Some(trace) = &stats.last_order_trace {
        println!("[ traffic] a recent order's trace: curl -s {query_url}/api/traces/{trace}");
    }
}
