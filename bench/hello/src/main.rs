//! `hello --mode <bare|full|metrics|community|receiver> [--port N] [--otlp URL]`
//!
//! A hello-world axum service (`GET /hello/{id}`, one `info!` in the handler) for
//! `bench/compare.sh`. Every server mode writes one JSON log line per request to stdout.
//!
//! - `bare`: axum + `tracing_subscriber::fmt().json()`, nothing else.
//! - `full`: tracelight with the `AlwaysOn` sampler, spans exported over OTLP/HTTP-protobuf to
//!   `--otlp`, RED metrics, JSON logs with trace ids.
//! - `metrics`: tracelight with `layer_builder().spans(false)` and no traces exporter.
//! - `community`: `init-tracing-opentelemetry` (production preset: JSON logs with trace id, OTLP
//!   export) + `axum-tracing-opentelemetry` + `axum-prometheus`, exporting to `--otlp`.
//! - `receiver`: a loopback OTLP/HTTP sink: `POST /v1/traces` reads and discards the body;
//!   `GET /stats` returns `<requests> <bytes>`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::{get, post};

async fn hello(Path(id): Path<u32>) -> &'static str {
    tracing::info!(id, "hello");
    "hello"
}

fn app() -> Router {
    Router::new().route("/hello/{id}", get(hello))
}

struct Args {
    mode: String,
    port: u16,
    otlp: String,
}

fn args() -> Args {
    let mut args = Args {
        mode: String::new(),
        port: 18080,
        otlp: "http://127.0.0.1:14318/v1/traces".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--mode" => args.mode = value,
            "--port" => args.port = value.parse().unwrap_or_else(|_| usage("bad --port")),
            "--otlp" => args.otlp = value,
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    args
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "hello: {msg}\nusage: hello --mode bare|full|metrics|community|receiver [--port N] [--otlp URL]"
    );
    std::process::exit(2)
}

async fn serve(app: Router, port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| usage(&format!("bind {addr}: {e}")));
    axum::serve(listener, app)
        .with_graceful_shutdown(tracelight::shutdown_signal())
        .await
        .expect("serve");
}

fn main() {
    let args = args();
    if args.mode == "community" {
        // init-tracing-opentelemetry reads its exporter settings from the environment only. Set
        // here, before the runtime starts any thread (environment writes are `unsafe` in edition
        // 2024 because of concurrent readers; there are none yet).
        unsafe {
            std::env::set_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &args.otlp);
            std::env::set_var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf");
            std::env::set_var("OTEL_TRACES_SAMPLER", "always_on");
            std::env::set_var("OTEL_SERVICE_NAME", "hello");
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(args));
}

async fn run(args: Args) {
    match args.mode.as_str() {
        "bare" => {
            tracing_subscriber::fmt().json().init();
            serve(app(), args.port).await;
        }
        "full" => {
            // See Cargo.toml: needed only because of feature unification with the community
            // crates in this benchmark workspace.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let telemetry = tracelight::builder("hello")
                .sampler(tracelight::Sampler::AlwaysOn)
                .traces_exporter(tracelight::TracesExporter::Otlp)
                .protocol(tracelight::Protocol::HttpProtobuf)
                .endpoint(args.otlp)
                .log_format(tracelight::LogFormat::Json)
                .init()
                .expect("tracelight init");
            let router = app().merge(telemetry.routes()).layer(telemetry.layer());
            serve(router, args.port).await;
            telemetry.shutdown().await;
        }
        "metrics" => {
            let telemetry = tracelight::builder("hello")
                .traces_exporter(tracelight::TracesExporter::None)
                .log_format(tracelight::LogFormat::Json)
                .init()
                .expect("tracelight init");
            let router = app()
                .merge(telemetry.routes())
                .layer(telemetry.layer_builder().spans(false).build());
            serve(router, args.port).await;
            telemetry.shutdown().await;
        }
        "community" => community(args).await,
        "receiver" => receiver(args.port).await,
        other => usage(&format!("unknown mode {other:?}")),
    }
}

async fn community(args: Args) {
    use axum_tracing_opentelemetry::middleware::{OtelAxumLayer, OtelInResponseLayer};
    let _guard = init_tracing_opentelemetry::TracingConfig::production()
        .init_subscriber()
        .expect("init-tracing-opentelemetry");
    let (prometheus_layer, metric_handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let router = app()
        .layer(OtelInResponseLayer::default())
        .layer(OtelAxumLayer::default())
        .route(
            "/metrics",
            get(move || async move { metric_handle.render() }),
        )
        .layer(prometheus_layer);
    serve(router, args.port).await;
}

async fn receiver(port: u16) {
    let stats = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let s = stats.clone();
    let router = Router::new()
        .route(
            "/v1/traces",
            post(move |body: Bytes| {
                s.0.fetch_add(1, Ordering::Relaxed);
                s.1.fetch_add(body.len() as u64, Ordering::Relaxed);
                // An empty ExportTraceServiceResponse is zero bytes of protobuf.
                async {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                        "",
                    )
                }
            }),
        )
        .route(
            "/stats",
            get(move || async move {
                format!(
                    "{} {}\n",
                    stats.0.load(Ordering::Relaxed),
                    stats.1.load(Ordering::Relaxed)
                )
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024));
    serve(router, port).await;
}
