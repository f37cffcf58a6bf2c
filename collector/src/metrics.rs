//! The collector's own metrics, rendered in the Prometheus text format on the admin port.
//!
//! Every metric name is defined once here. Labels have fixed, small value sets: `protocol`
//! (`grpc`, `http`), `reason` (see [`RefusalReason`]) and `route` (the query API's route
//! templates, or `unmatched`), so no client input can create new series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::store::StoreStats;

/// Spans decoded from export requests, valid or not.
pub const SPANS_RECEIVED: &str = "tracelight_collector_spans_received_total";
/// Spans written to the store and acknowledged.
pub const SPANS_ACCEPTED: &str = "tracelight_collector_spans_accepted_total";
/// Spans not stored, by reason.
pub const SPANS_REFUSED: &str = "tracelight_collector_spans_refused_total";
/// Export requests answered with an error, by reason.
pub const REQUESTS_REFUSED: &str = "tracelight_collector_requests_refused_total";
/// Spans held by the store.
pub const STORE_SPANS: &str = "tracelight_collector_store_spans";
/// Traces held by the store.
pub const STORE_TRACES: &str = "tracelight_collector_store_traces";
/// Approximate bytes held by the store.
pub const STORE_BYTES: &str = "tracelight_collector_store_bytes";
/// Durable writes of the store's write-ahead log (group commits; each covers every batch
/// queued meanwhile).
pub const STORE_WAL_COMMITS: &str = "tracelight_collector_store_wal_commits_total";
/// Batches waiting in the pipeline queue.
pub const PIPELINE_QUEUED_BATCHES: &str = "tracelight_collector_pipeline_queued_batches";
/// Export request latency, from body received to response.
pub const INGEST_DURATION: &str = "tracelight_collector_ingest_request_duration_seconds";
/// Store write latency per batch.
pub const STORE_WRITE_DURATION: &str = "tracelight_collector_store_write_duration_seconds";
/// Query API request latency by route template.
pub const QUERY_DURATION: &str = "tracelight_collector_query_request_duration_seconds";

/// Label: the ingest transport ([`Protocol`]).
pub const LABEL_PROTOCOL: &str = "protocol";
/// Label: why spans or requests were refused ([`RefusalReason`]).
pub const LABEL_REASON: &str = "reason";
/// Label: the query API's route template, or `unmatched`.
pub const LABEL_ROUTE: &str = "route";

/// Histogram bucket bounds in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The ingest transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP (protobuf or JSON).
    Http,
}

impl Protocol {
    const ALL: [Self; 2] = [Self::Grpc, Self::Http];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why spans or requests were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// A span with invalid ids inside an otherwise good request (partial success).
    InvalidSpan,
    /// The body could not be decoded.
    Malformed,
    /// The body exceeded the size limit (before or after decompression).
    TooLarge,
    /// Unsupported `Content-Type`.
    UnsupportedMediaType,
    /// Unsupported `Content-Encoding`.
    UnsupportedEncoding,
    /// The pipeline queue was full.
    Backpressure,
    /// The collector is shutting down.
    ShuttingDown,
    /// The store failed to write.
    StoreFailure,
}

impl RefusalReason {
    const ALL: [Self; 8] = [
        Self::InvalidSpan,
        Self::Malformed,
        Self::TooLarge,
        Self::UnsupportedMediaType,
        Self::UnsupportedEncoding,
        Self::Backpressure,
        Self::ShuttingDown,
        Self::StoreFailure,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpan => "invalid_span",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::Backpressure => "backpressure",
            Self::ShuttingDown => "shutting_down",
            Self::StoreFailure => "store_failure",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const PROTOCOLS: usize = Protocol::ALL.len();
const REASONS: usize = RefusalReason::ALL.len();

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Counters and histograms of the running collector. Shared through an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    received: [AtomicU64; PROTOCOLS],
    accepted: [AtomicU64; PROTOCOLS],
    spans_refused: [[AtomicU64; REASONS]; PROTOCOLS],
    requests_refused: [[AtomicU64; REASONS]; PROTOCOLS],
    ingest: [Histogram; PROTOCOLS],
    store_write: Histogram,
    query: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Per-upstream forwarding metrics (`forward::metrics`), rendered after these.
    forward: std::sync::OnceLock<std::sync::Arc<crate::forward::metrics::ForwardMetrics>>,
}

impl Metrics {
    /// Counts spans decoded from a request.
    pub fn spans_received(&self, protocol: Protocol, n: u64) {
        self.received[protocol.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts spans stored and acknowledged.
    pub fn spans_accepted(&self, protocol: Protocol, n: u64) {
        self.accepted[protocol.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts refused spans.
    pub fn spans_refused(&self, protocol: Protocol, reason: RefusalReason, n: u64) {
        self.spans_refused[protocol.index()][reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a refused request.
    pub fn request_refused(&self, protocol: Protocol, reason: RefusalReason) {
        self.requests_refused[protocol.index()][reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the latency of one export request.
    pub fn ingest_latency(&self, protocol: Protocol, elapsed: Duration) {
        self.ingest[protocol.index()].record(elapsed);
    }

    /// Records the latency of one store write.
    pub fn store_write_latency(&self, elapsed: Duration) {
        self.store_write.record(elapsed);
    }

    /// Records the latency of one query request; `route` is a route template.
    pub fn query_latency(&self, route: &'static str, elapsed: Duration) {
        self.query.lock().entry(route).or_default().record(elapsed);
    }

    /// Adds the forwarding metrics to [`render`](Self::render) (once; later calls are ignored).
    pub fn set_forward(&self, forward: std::sync::Arc<crate::forward::metrics::ForwardMetrics>) {
        let _ = self.forward.set(forward);
    }

    /// Reads one refused-requests counter (for tests and logs).
    pub fn requests_refused_count(&self, protocol: Protocol, reason: RefusalReason) -> u64 {
        self.requests_refused[protocol.index()][reason.index()].load(Ordering::Relaxed)
    }

    /// Renders everything in the Prometheus text exposition format.
    pub fn render(&self, store: StoreStats, queued_batches: usize) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        header(
            &mut out,
            SPANS_RECEIVED,
            "counter",
            "Spans decoded from export requests.",
        );
        for p in Protocol::ALL {
            let v = self.received[p.index()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{SPANS_RECEIVED}{{{LABEL_PROTOCOL}=\"{}\"}} {v}",
                p.as_str()
            );
        }
        header(
            &mut out,
            SPANS_ACCEPTED,
            "counter",
            "Spans stored and acknowledged.",
        );
        for p in Protocol::ALL {
            let v = self.accepted[p.index()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{SPANS_ACCEPTED}{{{LABEL_PROTOCOL}=\"{}\"}} {v}",
                p.as_str()
            );
        }
        for (name, table, help) in [
            (
                SPANS_REFUSED,
                &self.spans_refused,
                "Spans not stored, by reason.",
            ),
            (
                REQUESTS_REFUSED,
                &self.requests_refused,
                "Export requests answered with an error, by reason.",
            ),
        ] {
            header(&mut out, name, "counter", help);
            for p in Protocol::ALL {
                for r in RefusalReason::ALL {
                    let v = table[p.index()][r.index()].load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}{{{LABEL_PROTOCOL}=\"{}\",{LABEL_REASON}=\"{}\"}} {v}",
                        p.as_str(),
                        r.as_str()
                    );
                }
            }
        }
        for (name, help, value) in [
            (STORE_SPANS, "Spans held by the store.", store.spans),
            (STORE_TRACES, "Traces held by the store.", store.traces),
            (
                STORE_BYTES,
                "Approximate bytes held by the store.",
                store.bytes,
            ),
            (
                PIPELINE_QUEUED_BATCHES,
                "Batches waiting in the pipeline queue.",
                queued_batches as u64,
            ),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            STORE_WAL_COMMITS,
            "counter",
            "Durable writes of the store's write-ahead log; one covers every batch queued meanwhile (group commit).",
        );
        let _ = writeln!(out, "{STORE_WAL_COMMITS} {}", store.wal_commits);
        header(
            &mut out,
            INGEST_DURATION,
            "histogram",
            "Export request latency.",
        );
        for p in Protocol::ALL {
            let labels = format!("{LABEL_PROTOCOL}=\"{}\"", p.as_str());
            self.ingest[p.index()].render(&mut out, INGEST_DURATION, &labels);
        }
        header(
            &mut out,
            STORE_WRITE_DURATION,
            "histogram",
            "Store write latency per batch.",
        );
        self.store_write.render(&mut out, STORE_WRITE_DURATION, "");
        header(
            &mut out,
            QUERY_DURATION,
            "histogram",
            "Query API request latency.",
        );
        for (route, histogram) in self.query.lock().iter() {
            histogram.render(
                &mut out,
                QUERY_DURATION,
                &format!("{LABEL_ROUTE}=\"{route}\""),
            );
        }
        if let Some(forward) = self.forward.get() {
            forward.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.spans_received(Protocol::Grpc, 3);
        m.spans_refused(Protocol::Http, RefusalReason::InvalidSpan, 2);
        m.ingest_latency(Protocol::Grpc, Duration::from_millis(3));
        m.query_latency("/api/services", Duration::from_millis(1));
        let text = m.render(
            StoreStats {
                spans: 5,
                traces: 2,
                bytes: 100,
                wal_commits: 7,
            },
            1,
        );
        assert!(text.contains("tracelight_collector_spans_received_total{protocol=\"grpc\"} 3"));
        assert!(text.contains(
            "tracelight_collector_spans_refused_total{protocol=\"http\",reason=\"invalid_span\"} 2"
        ));
        assert!(text.contains("tracelight_collector_store_spans 5"));
        assert!(text.contains("# TYPE tracelight_collector_store_wal_commits_total counter"));
        assert!(text.contains("tracelight_collector_store_wal_commits_total 7"));
        assert!(text.contains(
            "tracelight_collector_ingest_request_duration_seconds_bucket{protocol=\"grpc\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "tracelight_collector_ingest_request_duration_seconds_bucket{protocol=\"grpc\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "tracelight_collector_query_request_duration_seconds_count{route=\"/api/services\"} 1"
        ));
    }
}
