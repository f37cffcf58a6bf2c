//! The application and telemetry the benches measure, shared by `middleware.rs` (time) and
//! `allocations.rs` (allocations).

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use http::Request;
use tracelight::{LogFormat, Protocol, Sampler, Telemetry, TracelightLayer, TracesExporter};
use tracelight_testkit::OtlpReceiver;

/// The primary variants' handler: no log event, so the difference to `bare` is the layer's own
/// cost.
pub(crate) async fn hello(Path(id): Path<u32>) -> &'static str {
    std::hint::black_box(id);
    "hello"
}

/// The `*_log` variants' handler: one `info!`, which the layer turns into a span event of the
/// sampled server span and whose JSON line carries the span's ids.
pub(crate) async fn hello_log(Path(id): Path<u32>) -> &'static str {
    tracing::info!(id, "hello");
    "hello"
}

/// The routes, without a layer; `log` selects the handler.
pub(crate) fn routes(log: bool) -> Router {
    if log {
        Router::new().route("/hello/{id}", get(hello_log))
    } else {
        Router::new().route("/hello/{id}", get(hello))
    }
}

/// `router` converted once as `axum::serve` does (`with_state(())`, what `into_make_service`
/// calls): routes become services once, and `Router::layer` is not re-applied per request.
pub(crate) fn served(router: Router) -> Router {
    router.with_state(())
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

/// Number of variants: `identity_layer` and the four primary ones (handler without a log
/// event), then the same four with the one-`info!` handler.
pub(crate) const VARIANTS: usize = 9;

/// The variant a variant's delta is taken against: `bare_log` for the `*_log` ones, else `bare`.
pub(crate) fn baseline(name: &str) -> &'static str {
    if name.ends_with("_log") {
        "bare_log"
    } else {
        "bare"
    }
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

impl Setup {
    /// The variants, in bench order, with the telemetry whose dispatcher each runs under: `bare`,
    /// `identity_layer` (a layer that does nothing: what axum's `Router::layer` itself costs per
    /// request, boxing the layered route's service and future), `metrics_only`, `unsampled`,
    /// `sampled`, then `bare_log`, `metrics_only_log`, `unsampled_log`, `sampled_log`. Each `*_log`
    /// variant is compared with `bare_log`. The sampled ones run last in
    /// their group: their batch processor and the receiver keep working for a while after them
    /// (export, decoding), which would disturb whatever ran next.
    pub(crate) fn variants(&self) -> [(&'static str, &Telemetry, Router); VARIANTS] {
        let (sampled, unsampled) = (&self.sampled, &self.unsampled);
        let layered = |log: bool, layer: TracelightLayer| served(routes(log).layer(layer));
        let metrics_only = || sampled.layer_builder().spans(false).build();
        [
            ("bare", sampled, served(routes(false))),
            (
                "identity_layer",
                sampled,
                served(routes(false).layer(tower::layer::util::Identity::new())),
            ),
            ("metrics_only", sampled, layered(false, metrics_only())),
            ("unsampled", unsampled, layered(false, unsampled.layer())),
            ("sampled", sampled, layered(false, sampled.layer())),
            ("bare_log", sampled, served(routes(true))),
            ("metrics_only_log", sampled, layered(true, metrics_only())),
            ("unsampled_log", unsampled, layered(true, unsampled.layer())),
            ("sampled_log", sampled, layered(true, sampled.layer())),
        ]
    }
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
