//! What every service shares: `/ready`, tracelight's `/metrics` and `/health` and its layer,
//! and a graceful shutdown that drains in-flight requests and then flushes telemetry.
//!
//! Shutdown, on SIGTERM, Ctrl-C or (when `SHOP_STOP_ON_STDIN_EOF` is set) end of stdin:
//! 1. `/ready` answers 503 and `shop_ready` drops to 0, for `SHOP_DRAIN_DELAY_MS`, so a load
//!    balancer stops sending new work while the listener still accepts;
//! 2. the listener closes and in-flight requests finish (axum's graceful shutdown);
//! 3. `Telemetry::shutdown` exports the spans still buffered, within its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::io::AsyncReadExt as _;
use tracelight::Telemetry;

use crate::config::ServeConfig;
use crate::names;

/// The message of the log line announcing the bound address (field `addr`).
pub const LISTENING_MESSAGE: &str = "listening";

/// Serves `routes` plus `/ready`, `/metrics` and `/health` until told to stop, then drains and
/// flushes telemetry.
pub async fn serve(
    telemetry: Telemetry,
    config: ServeConfig,
    routes: Router,
) -> anyhow::Result<()> {
    names::describe();
    let ready = Arc::new(AtomicBool::new(false));
    let app = routes
        .route("/ready", get(readiness(Arc::clone(&ready))))
        .merge(telemetry.routes())
        .layer(telemetry.layer());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("no local address")?;
    set_ready(&ready, true);
    tracing::info!(addr = %addr, "{LISTENING_MESSAGE}");

    let drain = async move {
        stop_requested(config.stop_on_stdin_eof).await;
        set_ready(&ready, false);
        tracing::info!(
            drain_delay_ms = u64::try_from(config.drain_delay.as_millis()).unwrap_or(u64::MAX),
            "draining: /ready answers 503"
        );
        tokio::time::sleep(config.drain_delay).await;
        tracing::info!("closing the listener, finishing in-flight requests");
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(drain)
        .await
        .context("server failed")?;
    tracing::info!("in-flight requests done, flushing telemetry");
    telemetry.shutdown().await;
    Ok(())
}

fn readiness(
    ready: Arc<AtomicBool>,
) -> impl Fn() -> std::future::Ready<(StatusCode, &'static str)> + Clone + Send + 'static {
    move || {
        std::future::ready(if ready.load(Ordering::Acquire) {
            (StatusCode::OK, r#"{"status":"ready"}"#)
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
        })
    }
}

fn set_ready(ready: &AtomicBool, value: bool) {
    ready.store(value, Ordering::Release);
    metrics::gauge!(names::READY).set(if value { 1.0 } else { 0.0 });
}

/// Resolves on SIGTERM or Ctrl-C, or at end of stdin when `stdin_eof` is set (how `shop demo`
/// stops its children in order, and why they stop if the demo dies).
pub async fn stop_requested(stdin_eof: bool) {
    let eof = async {
        if !stdin_eof {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = tracelight::shutdown_signal() => {}
        () = eof => tracing::info!("stdin closed, shutting down"),
    }
}
