//! Per-request cost of the tracelight server layer (criterion).
//!
//! One `GET /hello/42` goes through an axum `Router` with `tower::ServiceExt::oneshot` (no
//! sockets). The handler emits one `tracing::info!`, so every variant pays for one JSON log line
//! (written to `std::io::sink`); the differences between variants are the layer's own cost.
//!
//! | id | router |
//! |---|---|
//! | `bare` | no layer |
//! | `sampled` | `telemetry.layer()`, `AlwaysOn`, spans exported by the real batch processor over OTLP/HTTP-protobuf to a loopback `OtlpReceiver` |
//! | `unsampled` | `telemetry.layer()`, `AlwaysOff` (same exporter, nothing exported) |
//! | `metrics_only` | `telemetry.layer_builder().spans(false)` |
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
//! then `bench/criterion-summary.sh` prints the times and the deltas to `bare`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use cpu_time::ThreadTime;
use criterion::Criterion;
use http::Request;
use tower::ServiceExt as _;
use tracelight::{LogFormat, Protocol, Sampler, Telemetry, TracesExporter};
use tracelight_testkit::OtlpReceiver;

async fn hello(Path(id): Path<u32>) -> &'static str {
    tracing::info!(id, "hello");
    "hello"
}

fn router() -> Router {
    Router::new().route("/hello/{id}", get(hello))
}

fn request() -> Request<Body> {
    Request::get("/hello/42")
        .header(http::header::HOST, "127.0.0.1:3000")
        .header(http::header::USER_AGENT, "bench")
        .body(Body::empty())
        .expect("a valid request")
}

fn telemetry(sampler: Sampler, receiver_url: &str) -> Telemetry {
    tracelight::builder("bench")
        .sampler(sampler)
        .traces_exporter(TracesExporter::Otlp)
        .protocol(Protocol::HttpProtobuf)
        .endpoint(receiver_url)
        .log_format(LogFormat::Json)
        .log_writer(std::io::sink)
        .env(HashMap::<String, String>::new())
        .build()
        .expect("telemetry builds")
}

/// Starts the OTLP receiver on a thread of its own, so its work does not run on the bench
/// thread. Returns the receiver handle (for `clear`) and the runtime keeping it alive.
fn start_receiver() -> (OtlpReceiver, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-receiver")
        .enable_all()
        .build()
        .expect("receiver runtime");
    let receiver = rt.block_on(OtlpReceiver::start());
    (receiver, rt)
}

/// CPU time of `iters` requests through `app`, on a current-thread runtime driven from this
/// thread.
fn run(rt: &tokio::runtime::Runtime, app: &Router, iters: u64) -> Duration {
    rt.block_on(async {
        let start = ThreadTime::now();
        for _ in 0..iters {
            let response = app
                .clone()
                .oneshot(request())
                .await
                .expect("infallible router");
            black_box(response);
        }
        start.elapsed()
    })
}

fn middleware(c: &mut Criterion) {
    let (receiver, receiver_rt) = start_receiver();
    let url = receiver.http_traces_url();
    let sampled = telemetry(Sampler::AlwaysOn, &url);
    let unsampled = telemetry(Sampler::AlwaysOff, &url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("bench runtime");

    // `sampled` runs last: its batch processor and the receiver keep working for a while after
    // it (export, decoding), which would disturb whatever ran next.
    let variants: [(&str, &Telemetry, Router); 4] = [
        ("bare", &sampled, router()),
        (
            "metrics_only",
            &sampled,
            router().layer(sampled.layer_builder().spans(false).build()),
        ),
        ("unsampled", &unsampled, router().layer(unsampled.layer())),
        ("sampled", &sampled, router().layer(sampled.layer())),
    ];

    let mut group = c.benchmark_group("middleware");
    for (name, telemetry, app) in &variants {
        let _default = tracing::dispatcher::set_default(telemetry.dispatch());
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let elapsed = run(&rt, app, iters);
                receiver.clear();
                elapsed
            });
        });
    }
    group.finish();
    drop(variants);
    // Flush before the receiver goes away, so shutdown does not wait on a dead endpoint.
    drop(sampled);
    drop(unsampled);
    drop(receiver);
    drop(receiver_rt);
}

// What `criterion_group!`/`criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    middleware(&mut c);
    c.final_summary();
}
