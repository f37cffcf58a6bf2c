//! RED metrics: the Prometheus recorder, its `/metrics` rendering and cached series handles.
//!
//! Names and labels live in [`names`]. Hot paths never build a metric [`metrics::Key`] per
//! request: the middleware keeps the handle of each (route, method, status) series it has seen
//! and records straight into it.

pub mod names;

pub(crate) mod http;

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const METADATA: Metadata<'static> =
    Metadata::new("tracelight", metrics::Level::INFO, Some(module_path!()));

/// How often idle histogram samples are folded into buckets when nobody scrapes `/metrics`, so
/// that memory stays bounded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The Prometheus recorder shared by the middleware, the client integration and (once
/// [`init`](crate::init) installed it) the global `metrics` macros.
#[derive(Clone)]
pub struct MetricsHandle {
    recorder: Arc<PrometheusRecorder>,
    prometheus: PrometheusHandle,
    upkeep: Arc<Upkeep>,
}

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandle").finish_non_exhaustive()
    }
}

impl MetricsHandle {
    /// A recorder whose every series carries `service_name="<service>"`, with semantic-convention
    /// buckets for the HTTP duration histograms.
    pub(crate) fn new(service: &str) -> Self {
        let mut builder =
            PrometheusBuilder::new().add_global_label(names::LABEL_SERVICE_NAME, service);
        for name in names::HISTOGRAMS {
            builder = builder
                .set_buckets_for_metric(
                    Matcher::Full(name.to_owned()),
                    &names::HTTP_DURATION_BUCKETS,
                )
                .expect("set_buckets_for_metric fails only on an empty bucket list");
        }
        let recorder = Arc::new(builder.build_recorder());
        let prometheus = recorder.handle();
        describe(&recorder);
        let upkeep = Arc::new(Upkeep::start(prometheus.clone()));
        Self {
            recorder,
            prometheus,
            upkeep,
        }
    }

    /// Renders the Prometheus text exposition (what `GET /metrics` returns).
    pub fn render(&self) -> String {
        self.prometheus.render()
    }

    /// The underlying `metrics-exporter-prometheus` handle.
    pub fn prometheus(&self) -> &PrometheusHandle {
        &self.prometheus
    }

    /// A recorder to install with [`metrics::set_global_recorder`], sharing this handle's series.
    pub(crate) fn global_recorder(&self) -> SharedRecorder {
        SharedRecorder(self.recorder.clone())
    }

    pub(crate) fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    pub(crate) fn gauge(&self, name: &'static str, labels: Vec<Label>) -> metrics::Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    pub(crate) fn histogram(&self, name: &'static str, labels: Vec<Label>) -> metrics::Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    pub(crate) fn stop_upkeep(&self) {
        self.upkeep.stop();
    }
}

fn describe(r: &PrometheusRecorder) {
    let name = KeyName::from_const_str;
    let text = SharedString::const_str;
    r.describe_histogram(
        name(names::HTTP_SERVER_REQUEST_DURATION),
        Some(Unit::Seconds),
        text("Duration of HTTP server requests."),
    );
    r.describe_gauge(
        name(names::HTTP_SERVER_ACTIVE_REQUESTS),
        None,
        text("Number of active HTTP server requests."),
    );
    r.describe_histogram(
        name(names::HTTP_CLIENT_REQUEST_DURATION),
        Some(Unit::Seconds),
        text("Duration of HTTP client requests."),
    );
    r.describe_counter(
        name(names::SPANS_EXPORTED),
        None,
        text("Spans delivered to the OTLP endpoint."),
    );
    r.describe_counter(
        name(names::SPANS_EXPORT_FAILED),
        None,
        text("Spans lost because an OTLP export failed."),
    );
}

/// Counters about tracelight itself.
#[derive(Debug, Clone)]
pub(crate) struct SelfMetrics {
    pub(crate) spans_exported: Counter,
    pub(crate) spans_export_failed: Counter,
}

impl SelfMetrics {
    pub(crate) fn new(m: &MetricsHandle) -> Self {
        Self {
            spans_exported: m.counter(names::SPANS_EXPORTED, Vec::new()),
            spans_export_failed: m.counter(names::SPANS_EXPORT_FAILED, Vec::new()),
        }
    }
}

/// Forwards the global `metrics` macros to the shared Prometheus recorder.
#[derive(Debug)]
pub(crate) struct SharedRecorder(Arc<PrometheusRecorder>);

impl Recorder for SharedRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> metrics::Gauge {
        self.0.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> metrics::Histogram {
        self.0.register_histogram(key, metadata)
    }
}

/// A background thread running the recorder's upkeep until stopped (or the handle is dropped).
#[derive(Debug)]
struct Upkeep {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Upkeep {
    fn start(handle: PrometheusHandle) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("tracelight-metrics-upkeep".to_owned())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(UPKEEP_INTERVAL)
                {
                    handle.run_upkeep();
                }
            });
        Self {
            stop: spawned.ok().map(|_| tx),
        }
    }

    fn stop(&self) {
        if let Some(tx) = &self.stop {
            let _ = tx.send(());
        }
    }
}
