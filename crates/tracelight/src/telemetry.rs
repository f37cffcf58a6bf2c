//! [`Telemetry`]: the handle `init` returns. It hands out the middleware, the client and the
//! `/metrics` route, and flushes on shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::Config;
use crate::metrics::MetricsHandle;
use crate::middleware::{LayerBuilder, TracelightLayer};
use crate::propagation::Propagators;
use crate::trace::SpanSink;

/// Logs, traces and metrics of one service. Keep it alive for the life of the process and call
/// [`Telemetry::shutdown`] at the end; dropping it also flushes, within the same deadline.
#[must_use = "dropping Telemetry flushes and shuts telemetry down"]
pub struct Telemetry {
    config: Config,
    provider: SdkTracerProvider,
    /// The tracer of the server middleware (the same one `tracing` spans are exported with).
    tracer: SdkTracer,
    metrics: MetricsHandle,
    propagators: Propagators,
    dispatch: tracing::Dispatch,
    /// Where the middleware ends its server spans; holds the flag, shared with the layers,
    /// that tells them to stop recording spans of their own once telemetry is shut down.
    sink: Arc<SpanSink>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    pub(crate) fn new(
        config: Config,
        provider: SdkTracerProvider,
        tracer: SdkTracer,
        metrics: MetricsHandle,
        propagators: Propagators,
        dispatch: tracing::Dispatch,
        sink: Arc<SpanSink>,
    ) -> Self {
        Self {
            config,
            provider,
            tracer,
            metrics,
            propagators,
            dispatch,
            sink,
        }
    }

    /// The server middleware with default options: spans, RED metrics, W3C propagation.
    pub fn layer(&self) -> TracelightLayer {
        self.layer_builder().build()
    }

    /// The server middleware, with options (excluded paths, untrusted inbound context, …).
    pub fn layer_builder(&self) -> LayerBuilder {
        LayerBuilder::new(
            self.propagators.clone(),
            self.metrics.clone(),
            self.tracer.clone(),
            self.config.sampler,
            Arc::clone(&self.sink),
        )
    }

    /// `GET /metrics` (Prometheus text exposition) and `GET /health` (`{"status":"up"}`), to
    /// merge into the service's router.
    #[cfg(feature = "axum")]
    pub fn routes<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        use axum::routing::get;
        let metrics = self.metrics.clone();
        axum::Router::new()
            .route(
                "/metrics",
                get(move || {
                    let body = metrics.render();
                    async move {
                        (
                            [(
                                http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            body,
                        )
                    }
                }),
            )
            .route(
                "/health",
                get(|| async {
                    (
                        [(http::header::CONTENT_TYPE, "application/json")],
                        r#"{"status":"up"}"#,
                    )
                }),
            )
    }

    /// The `reqwest` middleware for outgoing calls.
    #[cfg(feature = "reqwest")]
    pub fn client_middleware(&self) -> crate::client::ClientMiddleware {
        crate::client::ClientMiddleware::new(self.propagators.clone(), self.metrics.clone())
    }

    /// A `reqwest` client with [`Telemetry::client_middleware`] installed.
    #[cfg(feature = "reqwest")]
    pub fn http_client(&self) -> reqwest_middleware::ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(self.client_middleware())
            .build()
    }

    /// The configured propagators, for injecting context into other transports.
    pub fn propagators(&self) -> &Propagators {
        &self.propagators
    }

    /// The Prometheus recorder.
    pub fn metrics(&self) -> &MetricsHandle {
        &self.metrics
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The OpenTelemetry tracer provider.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The `tracing` dispatcher (installed globally by [`init`](crate::init); use it with
    /// [`tracing::dispatcher::with_default`] after [`Builder::build`](crate::Builder::build)).
    pub fn dispatch(&self) -> &tracing::Dispatch {
        &self.dispatch
    }

    /// Exports buffered spans and stops exporting, within the shutdown deadline (default 5 s),
    /// even when the collector is unreachable. Runs the blocking flush off the async runtime.
    pub async fn shutdown(self) {
        let provider = self.provider.clone();
        let timeout = self.config.shutdown_timeout;
        if self.sink.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.stop_upkeep();
        let flush = tokio::task::spawn_blocking(move || shutdown_provider(&provider, timeout));
        // The provider honours the deadline itself; this outer bound covers a wedged exporter.
        let _ = tokio::time::timeout(timeout + Duration::from_millis(250), flush).await;
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if !self.sink.shut_down.swap(true, Ordering::AcqRel) {
            self.metrics.stop_upkeep();
            shutdown_provider(&self.provider, self.config.shutdown_timeout);
        }
    }
}

fn shutdown_provider(provider: &SdkTracerProvider, timeout: Duration) {
    if let Err(error) = provider.shutdown_with_timeout(timeout) {
        tracing::warn!(target: "tracelight", %error, "telemetry shutdown incomplete");
    }
}
