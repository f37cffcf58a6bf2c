//! Metrics derived from the spans the collector receives: span metrics (RED per service and
//! operation), the service graph, and the per-minute history behind Jaeger's Monitor tab.
//!
//! The pipeline hands every batch to [`Derived::observe_view`] on the receiving thread (to
//! [`Derived::observe`] on a worker for the memory store) before the store write; the
//! admin `/metrics` endpoint renders the aggregates ([`Derived::render`]) and the query API's
//! `/api/metrics/*` reads the history ([`Derived::spm_windows`]). Each aggregate sits behind
//! its own lock, taken once per batch. Names: [`names`]; contract:
//! `shared/reference/metric-names.md` §B–§D.

mod exposition;
pub mod history;
pub mod names;
mod series;
mod servicegraph;
pub mod spanmetrics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::model::{BatchView, SpanBatch, SpanKind};
use history::{History, Window};
use names::{DERIVED_SERIES, EXPIRED_SERIES, LABEL_METRIC, OVERFLOW_SPANS, SKIPPED_SPANS};
use series::LabelHasher;
use servicegraph::{GraphLimits, ServiceGraph};
use spanmetrics::SpanMetrics;

/// Default series cap per derived metric.
pub const DEFAULT_MAX_SERIES: usize = 5_000;
/// Default expiry of idle series, seconds.
pub const DEFAULT_SERIES_EXPIRY_SECONDS: u64 = 300;
/// Default wait of a service-graph half for its other half, seconds.
pub const DEFAULT_GRAPH_WAIT_SECONDS: u64 = 10;
/// Default number of service-graph halves waiting at once.
pub const DEFAULT_GRAPH_MAX_PENDING: usize = 10_000;
/// Seconds between expiry sweeps.
const SWEEP_EVERY_SECONDS: u64 = 1;

/// `[spanmetrics]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// Whether span metrics (and the Monitor-tab API) are computed.
    pub enabled: bool,
    /// Extra labels: attribute names looked up in span, then resource attributes.
    pub dimensions: Vec<String>,
    /// Series cap per metric; new label sets past it go to the overflow series.
    pub max_series: usize,
    /// Series not updated for this many seconds are removed.
    pub series_expiry_seconds: u64,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dimensions: Vec::new(),
            max_series: DEFAULT_MAX_SERIES,
            series_expiry_seconds: DEFAULT_SERIES_EXPIRY_SECONDS,
        }
    }
}

/// `[servicegraph]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceGraphConfig {
    /// Whether the service graph is computed.
    pub enabled: bool,
    /// Seconds a client or server span waits for its other half.
    pub wait_seconds: u64,
    /// Spans waiting for their other half at most; more are dropped and counted.
    pub max_pending: usize,
}

impl Default for ServiceGraphConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            wait_seconds: DEFAULT_GRAPH_WAIT_SECONDS,
            max_pending: DEFAULT_GRAPH_MAX_PENDING,
        }
    }
}

/// The derived aggregates of a running collector. Shared through an `Arc`.
#[derive(Debug)]
pub struct Derived {
    hasher: LabelHasher,
    epoch: Instant,
    expiry: u64,
    spans: Option<Mutex<SpanMetrics>>,
    history: Option<Mutex<History>>,
    graph: Option<Mutex<ServiceGraph>>,
    last_sweep: AtomicU64,
}

impl Derived {
    /// Aggregates as configured; `None` when both are disabled.
    pub fn new(spans: &SpanMetricsConfig, graph: &ServiceGraphConfig) -> Option<Self> {
        (spans.enabled || graph.enabled).then(|| Self {
            hasher: LabelHasher::default(),
            epoch: Instant::now(),
            expiry: spans.series_expiry_seconds,
            spans: spans
                .enabled
                .then(|| Mutex::new(SpanMetrics::new(&spans.dimensions, spans.max_series))),
            history: spans
                .enabled
                .then(|| Mutex::new(History::new(spans.max_series))),
            graph: graph.enabled.then(|| {
                Mutex::new(ServiceGraph::new(GraphLimits {
                    wait: graph.wait_seconds,
                    max_pending: graph.max_pending,
                    max_series: spans.max_series,
                }))
            }),
            last_sweep: AtomicU64::new(0),
        })
    }

    /// Whether the Monitor-tab history is kept.
    pub fn has_history(&self) -> bool {
        self.history.is_some()
    }

    /// Takes a received batch into account, now.
    pub fn observe(&self, batch: &SpanBatch) {
        self.observe_view(&BatchView::from_spans(&batch.spans));
    }

    /// Takes a received batch into account, now.
    pub fn observe_view(&self, batch: &BatchView<'_>) {
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.observe_view_at(batch, self.epoch.elapsed().as_secs(), unix_s);
    }

    /// [`observe`](Self::observe) at a given time: `mono_s` monotonic seconds (series expiry,
    /// pairing deadlines) and `unix_s` wall-clock seconds (the history's minutes).
    pub fn observe_at(&self, batch: &SpanBatch, mono_s: u64, unix_s: u64) {
        self.observe_view_at(&BatchView::from_spans(&batch.spans), mono_s, unix_s);
    }

    /// [`observe_view`](Self::observe_view) at a given time (see [`observe_at`](Self::observe_at)).
    pub fn observe_view_at(&self, batch: &BatchView<'_>, mono_s: u64, unix_s: u64) {
        // Each span's operation hash, shared by span metrics and the history.
        let operations: Vec<u64> = if self.spans.is_some() || self.history.is_some() {
            batch
                .spans()
                .map(|s| {
                    spanmetrics::service_of(&s)
                        .map_or(0, |service| self.hasher.operation(service, s.name, s.kind))
                })
                .collect()
        } else {
            Vec::new()
        };
        if let Some(spans) = &self.spans {
            let mut spans = spans.lock();
            for (span, &operation) in batch.spans().zip(&operations) {
                spans.observe(&self.hasher, operation, &span, mono_s);
            }
        }
        if let Some(history) = &self.history {
            let mut history = history.lock();
            for (span, &operation) in batch.spans().zip(&operations) {
                history.observe(operation, &span, unix_s);
            }
        }
        if let Some(graph) = &self.graph {
            let mut graph = graph.lock();
            for span in batch.spans() {
                graph.observe(&self.hasher, &span, mono_s);
            }
        }
        let last = self.last_sweep.load(Ordering::Relaxed);
        if mono_s >= last + SWEEP_EVERY_SECONDS
            && self
                .last_sweep
                .compare_exchange(last, mono_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep(mono_s, unix_s);
        }
    }

    /// Expires idle series and overdue service-graph halves.
    pub fn sweep(&self, mono_s: u64, unix_s: u64) {
        if let Some(spans) = &self.spans {
            spans.lock().expire(mono_s, self.expiry);
        }
        if let Some(history) = &self.history {
            history.lock().expire(unix_s);
        }
        if let Some(graph) = &self.graph {
            graph.lock().expire(&self.hasher, mono_s, self.expiry);
        }
    }

    /// Renders every derived family and their self-metrics.
    pub fn render(&self, out: &mut String) {
        self.sweep(
            self.epoch.elapsed().as_secs(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        self.render_now(out);
    }

    /// Renders without sweeping first (golden tests drive time themselves).
    pub fn render_now(&self, out: &mut String) {
        let mut series = Vec::new();
        let mut skipped = None;
        if let Some(spans) = &self.spans {
            let spans = spans.lock();
            spans.render(out);
            let (len, overflowed, expired, skip) = spans.counts();
            series.push(("spanmetrics", len, overflowed, expired));
            skipped = Some(skip);
        }
        if let Some(graph) = &self.graph {
            let graph = graph.lock();
            graph.render(out);
            let (len, overflowed, expired, _) = graph.counts();
            series.push(("servicegraph", len, overflowed, expired));
        }
        for (name, kind, help, value) in [
            (
                DERIVED_SERIES,
                "gauge",
                "Series held per derived metric family (overflow series included).",
                (|s: &(&str, usize, u64, u64)| s.1 as f64) as fn(&(&str, usize, u64, u64)) -> f64,
            ),
            (
                OVERFLOW_SPANS,
                "counter",
                "Spans folded into the overflow series because the series cap was reached.",
                |s| s.2 as f64,
            ),
            (
                EXPIRED_SERIES,
                "counter",
                "Series removed because they were not updated within the expiry time.",
                |s| s.3 as f64,
            ),
        ] {
            exposition::header(out, name, kind, help);
            for s in &series {
                exposition::sample(out, name, &[(LABEL_METRIC, s.0)], value(s));
            }
        }
        if let Some(skipped) = skipped {
            exposition::header(
                out,
                SKIPPED_SPANS,
                "counter",
                "Spans left out of span metrics because their resource has no service.name.",
            );
            exposition::sample(out, SKIPPED_SPANS, &[], skipped as f64);
        }
    }

    /// Sums per (service, operation) over each window, for the SPM API; `None` when span
    /// metrics are disabled.
    pub fn spm_windows(
        &self,
        services: &[String],
        kinds: &[SpanKind],
        windows: &[(u64, u64)],
    ) -> Option<Vec<(String, String, Vec<Window>)>> {
        let history = self.history.as_ref()?;
        Some(history.lock().windows(services, kinds, windows))
    }

    /// Operations held by the history (for tests and logs).
    pub fn history_len(&self) -> usize {
        self.history.as_ref().map_or(0, |h| h.lock().len())
    }
}
