//! The application and telemetry the benches measure, shared by `middleware.rs` (time) and
//! `allocations.rs` (allocations).

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use http::Request;
use tracelight::{LogFormat, Protocol, Sampler, Telemetry, TracesExporter};
use tracelight_testkit::OtlpReceiver;

pub(crate) async fn hello(Path(id): Path<u32>) -> &'static str {
    tracing::info!(id, "hello");
    "hello"
}

pub(crate) fn router() -> Router {
    Router::new().route("/hello/{id}", get(hello))
}

pub(crate) fn request() -> Request<Body> {
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

/// The four variants, in bench order, with the telemetry whose dispatcher each runs under.
/// `sampled` runs last: its batch processor and the receiver keep working for a while after it
/// (export, decoding), which would disturb whatever ran next.
pub(crate) fn variants<'a>(
    sampled: &'a Telemetry,
    unsampled: &'a Telemetry,
) -> [(&'static str, &'a Telemetry, Router); 4] {
    [
        ("bare", sampled, router()),
        (
            "metrics_only",
            sampled,
            router().layer(sampled.layer_builder().spans(false).build()),
        ),
        ("unsampled", unsampled, router().layer(unsampled.layer())),
        ("sampled", sampled, router().layer(sampled.layer())),
    ]
}

/// What every bench starts with: the telemetry of the `sampled` and `unsampled` variants,
/// exporting to a loopback receiver, and the current-thread runtime requests run on. Fields drop
/// in declaration order: the telemetries flush before the receiver goes away, so shutdown does
/// not wait on a dead endpoint.
pub(crate) struct Setup {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) sampled: Telemetry,
    pub(crate) unsampled: Telemetry,
    pub(crate) receiver: OtlpReceiver,
    _receiver_rt: tokio::runtime::Runtime,
}

/// Starts the receiver, both telemetries and the bench runtime.
pub(crate) fn setup() -> Setup {
    let (receiver, receiver_rt) = start_receiver();
    let url = receiver.http_traces_url();
    Setup {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("bench runtime"),
        sampled: telemetry(Sampler::AlwaysOn, &url),
        unsampled: telemetry(Sampler::AlwaysOff, &url),
        receiver,
        _receiver_rt: receiver_rt,
    }
}
