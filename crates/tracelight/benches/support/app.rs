//! The application and telemetry the benches measure, shared by `middleware.rs` (time) and
//! `allocations.rs` (allocations).

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use http::Request;
use opentelemetry::global;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry_instrumentation_tower::http::server::{Layer as UpstreamLayer, LayerBuilder};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
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
/// event), the two upstream ones, then the same four with the one-`info!` handler.
pub(crate) const VARIANTS: usize = 11;

/// The variant a variant's delta is taken against: `bare_log` for the `*_log` ones, else `bare`.
pub(crate) fn baseline(name: &str) -> &'static str {
    if name.ends_with("_log") {
        "bare_log"
    } else {
        "bare"
    }
}

/// One router of the benches, with what runs around its requests.
pub(crate) struct Variant<'a> {
    /// The variant's id in the bench output.
    pub(crate) name: &'static str,
    /// The `tracing` dispatcher the requests run under.
    pub(crate) dispatch: &'a tracing::Dispatch,
    /// The tracer provider whose batch processor is flushed between requests.
    pub(crate) provider: &'a SdkTracerProvider,
    /// The router, converted as `axum::serve` does.
    pub(crate) app: Router,
}

/// The upstream layer the issue measures against (`opentelemetry-instrumentation-tower`), set up
/// as its README does: the SDK's tracer provider, with the same batch processor and OTLP/HTTP
/// exporter to the same loopback receiver as `tracelight`'s, and the SDK's meter provider
/// (whose periodic reader exports nowhere: only recording is per request). The global
/// propagator is W3C tracecontext + baggage, `tracelight`'s default; the layer reads it per
/// request.
pub(crate) struct Upstream {
    sampled: SdkTracerProvider,
    unsampled: SdkTracerProvider,
    sampled_layer: UpstreamLayer,
    unsampled_layer: UpstreamLayer,
    meters: SdkMeterProvider,
}

impl Upstream {
    fn start(receiver_url: &str) -> Self {
        use opentelemetry_sdk::trace::Sampler as SdkSampler;
        let provider = |sampler: SdkSampler| {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(receiver_url)
                .build()
                .expect("OTLP/HTTP exporter");
            SdkTracerProvider::builder()
                .with_sampler(sampler)
                .with_batch_exporter(exporter)
                .build()
        };
        let meters = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(Discard).build())
            .build();
        global::set_meter_provider(meters.clone());
        global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]));
        // The layer takes its tracer from the global provider when it is built.
        let layer = |provider: &SdkTracerProvider| {
            global::set_tracer_provider(provider.clone());
            LayerBuilder::builder().build().expect("upstream layer")
        };
        let sampled = provider(SdkSampler::AlwaysOn);
        let unsampled = provider(SdkSampler::AlwaysOff);
        Self {
            sampled_layer: layer(&sampled),
            unsampled_layer: layer(&unsampled),
            sampled,
            unsampled,
            meters,
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Export what is left while the receiver still runs; errors only mean nothing was left.
        let _ = self.sampled.shutdown();
        let _ = self.unsampled.shutdown();
        let _ = self.meters.shutdown();
    }
}

/// A metric exporter that drops what it is given.
#[derive(Debug)]
struct Discard;

impl PushMetricExporter for Discard {
    async fn export(&self, _: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// What every bench starts with: the telemetry of the `sampled` and `unsampled` variants and the
/// upstream layer's providers, exporting to a loopback receiver, and the current-thread runtime
/// requests run on. Fields drop in declaration order: the telemetries flush before the receiver
/// goes away, so shutdown does not wait on a dead endpoint.
pub(crate) struct Setup {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) sampled: Telemetry,
    pub(crate) unsampled: Telemetry,
    upstream: Upstream,
    pub(crate) receiver: OtlpReceiver,
    _receiver_rt: tokio::runtime::Runtime,
}

impl Setup {
    /// The variants, in bench order: `bare`, `identity_layer` (a layer that does nothing: what
    /// axum's `Router::layer` itself costs per request, boxing the layered route's service and
    /// future), `metrics_only`, `unsampled`, `sampled`, `upstream_unsampled` and `upstream`
    /// (the upstream layer, traces and metrics, with `AlwaysOff` / `AlwaysOn`), then `bare_log`,
    /// `metrics_only_log`, `unsampled_log`, `sampled_log`. Each `*_log` variant is compared with
    /// `bare_log`. The sampled ones run last in their group: their batch processor and the
    /// receiver keep working for a while after them (export, decoding), which would disturb
    /// whatever ran next.
    pub(crate) fn variants(&self) -> [Variant<'_>; VARIANTS] {
        let (sampled, unsampled, up) = (&self.sampled, &self.unsampled, &self.upstream);
        let layered = |log: bool, layer: TracelightLayer| served(routes(log).layer(layer));
        let metrics_only = || sampled.layer_builder().spans(false).build();
        fn ours<'a>(name: &'static str, telemetry: &'a Telemetry, app: Router) -> Variant<'a> {
            Variant {
                name,
                dispatch: telemetry.dispatch(),
                provider: telemetry.provider(),
                app,
            }
        }
        let upstream = |name, provider, layer: &UpstreamLayer| Variant {
            name,
            dispatch: sampled.dispatch(),
            provider,
            app: served(routes(false).layer(layer.clone())),
        };
        [
            ours("bare", sampled, served(routes(false))),
            ours(
                "identity_layer",
                sampled,
                served(routes(false).layer(tower::layer::util::Identity::new())),
            ),
            ours("metrics_only", sampled, layered(false, metrics_only())),
            ours("unsampled", unsampled, layered(false, unsampled.layer())),
            ours("sampled", sampled, layered(false, sampled.layer())),
            upstream("upstream_unsampled", &up.unsampled, &up.unsampled_layer),
            upstream("upstream", &up.sampled, &up.sampled_layer),
            ours("bare_log", sampled, served(routes(true))),
            ours("metrics_only_log", sampled, layered(true, metrics_only())),
            ours("unsampled_log", unsampled, layered(true, unsampled.layer())),
            ours("sampled_log", sampled, layered(true, sampled.layer())),
        ]
    }
}

/// Starts the receiver, both telemetries, the upstream layer's providers and the bench runtime.
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
        upstream: Upstream::start(&url),
        receiver,
        _receiver_rt: receiver_rt,
    }
}
