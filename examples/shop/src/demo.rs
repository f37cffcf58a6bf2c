//! `shop demo`: the collector (in process, memory store), every service as a child process and
//! a traffic generator, on loopback. Ctrl-C stops the traffic, then the services callers-first
//! (each drains and flushes its spans), then the collector.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracelight::TracesExporter;
use tracelight_collector::config::Config as CollectorConfig;

use crate::config::{DemoConfig, Env, EnvLookup, Service};
use crate::launch::{Echo, LaunchOptions, System};
use crate::traffic;

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(env: &dyn EnvLookup) -> anyhow::Result<()> {
    let config = DemoConfig::from_env(Env::new(env))?;
    // The demo's own logs (and the in-process collector's). Its spans are not exported: the
    // collector would be tracing itself.
    let telemetry = tracelight::builder("shop-demo")
        .traces_exporter(TracesExporter::None)
        .init()?;

    let collector_stop = CancellationToken::new();
    let collector = tracelight_collector::start(collector_config(&config)?, collector_stop.clone())
        .await
        .context(
            "starting the collector (is another one using its ports? see SHOP_COLLECTOR_*_ADDR)",
        )?;
    let addrs = collector.addrs();

    let options = LaunchOptions {
        exe: std::env::current_exe().context("cannot find the shop binary")?,
        otlp_endpoint: format!("http://{}", addrs.http),
        ephemeral_ports: false,
        env: Vec::new(),
        echo: Echo::Important,
    };
    let system = match System::start(&options).await {
        Ok(system) => system,
        Err(e) => {
            collector_stop.cancel();
            let _ = collector.wait().await;
            return Err(e);
        }
    };
    let query_url = format!("http://{}", addrs.query);
    let gateway = system.url(Service::Gateway).unwrap_or_default();
    print_banner(&system, &gateway, &query_url, addrs.admin, config.rps);

    let traffic_stop = CancellationToken::new();
    let traffic = tokio::spawn(traffic::run(
        gateway,
        config.rps,
        query_url,
        traffic_stop.clone(),
    ));
    tracelight::shutdown_signal().await;
    println!("[    demo] stopping: traffic, then gateway → orders → the rest, then the collector");
    traffic_stop.cancel();
    let _ = traffic.await;
    let stopped = system.stop().await;
    collector_stop.cancel();
    collector.wait().await.context("collector shutdown")?;
    telemetry.shutdown().await;
    stopped?;
    println!("[    demo] stopped cleanly");
    Ok(())
}

fn collector_config(
    config: &DemoConfig,
) -> anyhow::Result<tracelight_collector::config::ValidatedConfig> {
    let mut c = CollectorConfig::default();
    c.receiver.grpc_listen = config.otlp_grpc;
    c.receiver.http_listen = config.otlp_http;
    c.query.listen = config.query;
    c.admin.listen = config.admin;
    c.storage.backend = "memory".to_owned();
    Ok(c.validate()?)
}

fn print_banner(system: &System, gateway: &str, query: &str, admin: SocketAddr, rps: f64) {
    println!();
    println!("The shop is running ({rps} requests/s of generated traffic). Where to look:");
    println!("  shop API (gateway)   {gateway}   e.g. curl {gateway}/dashboard/1");
    println!("  Jaeger query API     {query}/api/services");
    println!(
        "                       {query}/api/traces?service=gateway&operation=POST%20/orders&limit=5"
    );
    println!("  collector metrics    http://{admin}/metrics");
    for service in Service::ALL.iter().rev() {
        if let Some(url) = system.url(*service) {
            println!(
                "  {:<20} {url}/metrics   {url}/ready",
                format!("{} metrics", service.name())
            );
        }
    }
    println!("Ctrl-C stops everything. Warnings and errors of the services are shown below.");
    println!();
}
