//! Heap allocations per request of each variant of the `middleware` bench.
//!
//! Same router, handler and telemetry as `middleware.rs`; the counting allocator of
//! `allocation-counter` counts what the bench thread allocates while `N` requests run (after a
//! warm-up, so one-time registrations are excluded). Everything a request does in process runs
//! on that thread (current-thread runtime); the batch exporter's and the receiver's threads are
//! not counted. The request itself (`Request` builder, header map) is in every variant, so the
//! layer's cost is the difference to `bare` (to `bare_log` for the `*_log` variants, whose
//! handler logs one line). `identity_layer` (a layer that does nothing) shows what axum's
//! `Router::layer` itself costs per request.
//!
//! Run: `cargo bench -p tracelight --bench allocations` (prints a Markdown table).

use std::hint::black_box;

use allocation_counter::AllocationInfo;
use axum::Router;
use tower::ServiceExt as _;

#[path = "support/app.rs"]
mod app;

/// Requests per measurement.
const N: u64 = 20_000;
/// Requests before measuring: registers metric series, fills caches, grows buffers.
const WARM_UP: u64 = 2_000;

fn requests(rt: &tokio::runtime::Runtime, app: &Router, n: u64) {
    rt.block_on(async {
        for _ in 0..n {
            let response = app
                .clone()
                .oneshot(app::request())
                .await
                .expect("infallible router");
            black_box(response);
        }
    });
}

fn main() {
    let setup = app::setup();
    let app::Setup { rt, receiver, .. } = &setup;
    let variants = setup.variants();

    let mut rows: Vec<(&str, AllocationInfo)> = Vec::new();
    for v in &variants {
        let _default = tracing::dispatcher::set_default(v.dispatch);
        requests(rt, &v.app, WARM_UP);
        // Start with the batch processor's queue empty (a failed flush only leaves spans in it).
        let _ = v.provider.force_flush();
        receiver.clear();
        let info = allocation_counter::measure(|| requests(rt, &v.app, N));
        receiver.clear();
        rows.push((v.name, info));
    }
    let per = |v: u64| v as f64 / N as f64;
    println!("| variant | allocations/request | Δ vs baseline | bytes/request | Δ vs baseline |");
    println!("|---|---:|---:|---:|---:|");
    for (name, info) in &rows {
        let base = app::baseline(name);
        let bare = rows
            .iter()
            .find(|(n, _)| *n == base)
            .map(|(_, i)| *i)
            .unwrap_or_default();
        println!(
            "| {name} | {:.2} | {:+.2} | {:.0} | {:+.0} |",
            per(info.count_total),
            per(info.count_total) - per(bare.count_total),
            per(info.bytes_total),
            per(info.bytes_total) - per(bare.bytes_total),
        );
    }
}
