//! Per-request cost of the tracelight server layer (criterion).
//!
//! One `GET /hello/42` goes through an axum `Router` with `tower::ServiceExt::oneshot` (no
//! sockets). The router is converted once with `with_state(())`, as `axum::serve` does, so that
//! axum does not re-apply `Router::layer` to the route on every request (a cost of calling an
//! unconverted `Router` directly, not of the layer). The handler of the primary variants emits
//! no event, so their difference to `bare` is the layer's own cost; the `*_log` variants run the
//! same routers with a handler that emits one `tracing::info!` (a JSON line written to
//! `std::io::sink`, and a span event when sampled), compared with `bare_log`, so the cost of log
//! correlation and span events stays visible.
//!
//! | id | router |
//! |---|---|
//! | `bare` | no layer |
//! | `sampled` | `telemetry.layer()`, `AlwaysOn`, spans exported by the real batch processor over OTLP/HTTP-protobuf to a loopback `OtlpReceiver` |
//! | `unsampled` | `telemetry.layer()`, `AlwaysOff` (same exporter, nothing exported) |
//! | `metrics_only` | `telemetry.layer_builder().spans(false)` |
//! | `upstream_unsampled` | the reference, `opentelemetry-instrumentation-tower`'s layer (traces and metrics), `AlwaysOff` |
//! | `upstream` | the same, `AlwaysOn`, spans exported by the SDK's batch processor over OTLP/HTTP-protobuf to the same receiver |
//! | `*_log` | the same, with the one-`info!` handler |
//!
//! Times are **CPU time of the bench thread** (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the
//! machine is shared, and on-CPU time is not inflated when other processes preempt the bench.
//! (Criterion still labels them `time`.)
//!
//! The telemetry is built with [`Builder::build`](tracelight::Builder::build), not installed
//! globally: its dispatcher is made the bench thread's default, and a current-thread tokio
//! runtime runs the requests on that thread. The receiver runs on its own thread and runtime; it
//! is cleared after every sample so memory stays flat. Export (protobuf encoding and the HTTP
//! post on the batch processor's thread) is therefore *not* in the measured time of `sampled`,
//! only handing the finished span to the processor's queue is; the whole-process comparison in
//! `bench/compare.sh` counts all of it.
//!
//! Run: `cargo bench -p tracelight --bench middleware -- --warm-up-time 1 --measurement-time 3`,
//! then `bench/criterion-summary.sh` prints the times and the deltas to `bare` (to `bare_log`
//! for the `*_log` variants). Allocations per request of the same variants: `cargo bench -p
//! tracelight --bench allocations` (a separate binary, so that its counting allocator does not
//! slow down the timed one).
//!
//! On a busy machine, `TRACELIGHT_BENCH_INTERLEAVED=30 cargo bench -p tracelight --bench
//! middleware` runs the variants interleaved instead (30 rounds of 5,000 requests each, every
//! variant once per round) and prints the median of the per-round deltas to `bare` (or
//! `bare_log`): paired deltas cancel most of the drift a shared machine adds between
//! criterion's back-to-back groups.

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use cpu_time::ThreadTime;
use criterion::Criterion;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tower::ServiceExt as _;

#[path = "support/app.rs"]
mod app;

use app::request;

/// Requests between two flushes of the batch span processor: below its queue of 2,048 spans, so
/// that no span is dropped. A served app does not drop spans in steady state; a bench thread
/// that outruns the exporter would, and would then pay for dropping them (freeing each span) on
/// top of the layer's cost. Flushing blocks the bench thread while the processor's thread
/// exports, which costs it almost no CPU time.
const FLUSH_EVERY: u64 = 1_000;

/// CPU time of `iters` requests through `app`, on a current-thread runtime driven from this
/// thread, flushing `provider`'s spans every [`FLUSH_EVERY`] requests.
fn run(
    rt: &tokio::runtime::Runtime,
    app: &Router,
    provider: &SdkTracerProvider,
    iters: u64,
) -> Duration {
    let start = ThreadTime::now();
    let mut left = iters;
    while left > 0 {
        let n = left.min(FLUSH_EVERY);
        rt.block_on(async {
            for _ in 0..n {
                let response = app
                    .clone()
                    .oneshot(request())
                    .await
                    .expect("infallible router");
                black_box(response);
            }
        });
        // A failed flush only means that spans may be dropped, which the next flush absorbs.
        let _ = provider.force_flush();
        left -= n;
    }
    start.elapsed()
}

fn middleware(c: &mut Criterion) {
    let setup = app::setup();
    let app::Setup { rt, receiver, .. } = &setup;
    let variants = setup.variants();

    let mut group = c.benchmark_group("middleware");
    for v in &variants {
        let _default = tracing::dispatcher::set_default(v.dispatch);
        group.bench_function(v.name, |b| {
            b.iter_custom(|iters| {
                let elapsed = run(rt, &v.app, v.provider, iters);
                receiver.clear();
                elapsed
            });
        });
    }
    group.finish();
}

/// Paired measurement for a busy machine: `ROUNDS` rounds, each running every variant for
/// `PER_ROUND` requests back to back, so that the variants of one round see the same machine
/// state. Prints the median over rounds of each variant's CPU time per request and of its
/// per-round delta to its baseline (`bare`, or `bare_log` for the `*_log` variants).
fn interleaved(rounds: usize, per_round: u64) {
    let setup = app::setup();
    let app::Setup { rt, receiver, .. } = &setup;
    let variants = setup.variants();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..=rounds {
        for (v, out) in variants.iter().zip(&mut times) {
            let _default = tracing::dispatcher::set_default(v.dispatch);
            let elapsed = run(rt, &v.app, v.provider, per_round);
            receiver.clear();
            // Round 0 warms up.
            if round > 0 {
                out.push(elapsed.as_secs_f64() * 1e6 / per_round as f64);
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "| variant | µs/request, median of {rounds} rounds | Δ vs its baseline, median of per-round deltas |"
    );
    println!("|---|---:|---:|");
    for (v, t) in variants.iter().zip(&times) {
        let (name, base) = (v.name, app::baseline(v.name));
        let Some(b) = variants
            .iter()
            .position(|other| other.name == base)
            .and_then(|i| times.get(i))
        else {
            continue;
        };
        let deltas = t.iter().zip(b).map(|(v, b)| v - b).collect();
        println!(
            "| {name} | {:.2} | {:+.2} ({base}) |",
            median(t.clone()),
            median(deltas)
        );
    }
}

/// Runs `n` requests of one variant (after 500 of warm-up) and nothing else: for counting
/// instructions with `valgrind --tool=callgrind`, whose counts, unlike times, do not depend on
/// what else the machine is running. See `bench/instructions.sh`.
fn requests_only(variant: &str, n: u64) {
    let setup = app::setup();
    let app::Setup { rt, .. } = &setup;
    let variants = setup.variants();
    if let Some(v) = variants.iter().find(|v| v.name == variant) {
        let _default = tracing::dispatcher::set_default(v.dispatch);
        run(rt, &v.app, v.provider, 500);
        run(rt, &v.app, v.provider, n);
    }
}

// What `criterion_group!`/`criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    // `TRACELIGHT_BENCH_REQUESTS=VARIANT:N`: only run N requests of one variant.
    if let Some((variant, n)) = std::env::var("TRACELIGHT_BENCH_REQUESTS")
        .ok()
        .and_then(|v| {
            v.split_once(':')
                .map(|(a, b)| (a.to_owned(), b.parse().ok()))
        })
        .and_then(|(a, b)| Some((a, b?)))
    {
        requests_only(&variant, n);
        return;
    }
    // `TRACELIGHT_BENCH_INTERLEAVED=ROUNDS` (e.g. 30): the paired measurement instead of criterion.
    if let Some(rounds) = std::env::var("TRACELIGHT_BENCH_INTERLEAVED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        interleaved(rounds, 5_000);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    middleware(&mut c);
    c.final_summary();
}
