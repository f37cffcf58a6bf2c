//! Forwarding metrics, one series per upstream (label `upstream`: the sanitized endpoint, see
//! [`super::config::label`]; one value per configured upstream, so the set is bounded).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::queue::QueueStats;

/// Spans in the queue, not yet acknowledged by the upstream.
pub const QUEUE_SPANS: &str = "tracelight_collector_forward_queue_spans";
/// Bytes of queued, unacknowledged records.
pub const QUEUE_BYTES: &str = "tracelight_collector_forward_queue_bytes";
/// Bytes of the queue's segment files (what the disk cap limits).
pub const QUEUE_DISK_BYTES: &str = "tracelight_collector_forward_queue_disk_bytes";
/// Age of the oldest unacknowledged record.
pub const QUEUE_OLDEST_AGE: &str = "tracelight_collector_forward_queue_oldest_age_seconds";
/// Spans acknowledged by the upstream.
pub const SENT_SPANS: &str = "tracelight_collector_forward_sent_spans_total";
/// Spans of export attempts that failed retryably (counted per attempt).
pub const RETRIED_SPANS: &str = "tracelight_collector_forward_retried_spans_total";
/// Spans dropped after a permanent rejection (or reported rejected in a partial success).
pub const FAILED_SPANS: &str = "tracelight_collector_forward_failed_spans_total";
/// Spans refused at ingest because the queue was at its disk cap.
pub const REFUSED_SPANS: &str = "tracelight_collector_forward_refused_spans_total";

/// Counters of one upstream.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    /// See [`SENT_SPANS`].
    pub sent: AtomicU64,
    /// See [`RETRIED_SPANS`].
    pub retried: AtomicU64,
    /// See [`FAILED_SPANS`].
    pub failed: AtomicU64,
    /// See [`REFUSED_SPANS`].
    pub refused: AtomicU64,
}

/// Every upstream's metrics, rendered on the admin `/metrics`.
#[derive(Debug, Default)]
pub struct ForwardMetrics {
    upstreams: Vec<(String, Arc<UpstreamCounters>, Arc<QueueStats>)>,
}

impl ForwardMetrics {
    /// Registers an upstream; returns its counters.
    pub fn add(&mut self, label: &str, queue: Arc<QueueStats>) -> Arc<UpstreamCounters> {
        let counters = Arc::new(UpstreamCounters::default());
        self.upstreams
            .push((label.to_owned(), Arc::clone(&counters), queue));
        counters
    }

    /// The counters of the upstream labelled `label` (tests and logs).
    pub fn counters(&self, label: &str) -> Option<&Arc<UpstreamCounters>> {
        self.upstreams
            .iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, c, _)| c)
    }

    /// Appends the Prometheus text of every forwarding metric.
    pub fn render(&self, out: &mut String) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        type Read = fn(&UpstreamCounters, &QueueStats, u64) -> String;
        let series: [(&str, &str, &str, Read); 8] = [
            (
                QUEUE_SPANS,
                "gauge",
                "Spans queued for the upstream, not yet acknowledged.",
                |_, q, _| q.spans.load(Ordering::Relaxed).to_string(),
            ),
            (
                QUEUE_BYTES,
                "gauge",
                "Bytes of queued records not yet acknowledged.",
                |_, q, _| q.bytes.load(Ordering::Relaxed).to_string(),
            ),
            (
                QUEUE_DISK_BYTES,
                "gauge",
                "Bytes of the queue's segment files (limited by the disk cap).",
                |_, q, _| q.disk_bytes.load(Ordering::Relaxed).to_string(),
            ),
            (
                QUEUE_OLDEST_AGE,
                "gauge",
                "Age of the oldest unacknowledged record (0 when empty).",
                |_, q, now| {
                    let oldest = q.oldest_ms.load(Ordering::Relaxed);
                    let age = if oldest == 0 {
                        0
                    } else {
                        now.saturating_sub(oldest)
                    };
                    format!("{}", age as f64 / 1000.0)
                },
            ),
            (
                SENT_SPANS,
                "counter",
                "Spans acknowledged by the upstream.",
                |c, _, _| c.sent.load(Ordering::Relaxed).to_string(),
            ),
            (
                RETRIED_SPANS,
                "counter",
                "Spans of export attempts that failed retryably.",
                |c, _, _| c.retried.load(Ordering::Relaxed).to_string(),
            ),
            (
                FAILED_SPANS,
                "counter",
                "Spans dropped after a permanent rejection by the upstream.",
                |c, _, _| c.failed.load(Ordering::Relaxed).to_string(),
            ),
            (
                REFUSED_SPANS,
                "counter",
                "Spans refused at ingest because the upstream's queue was full.",
                |c, _, _| c.refused.load(Ordering::Relaxed).to_string(),
            ),
        ];
        for (name, kind, help, read) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (label, counters, queue) in &self.upstreams {
                let _ = writeln!(
                    out,
                    "{name}{{upstream=\"{label}\"}} {}",
                    read(counters, queue, now_ms)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_series_per_upstream() {
        let mut m = ForwardMetrics::default();
        let q = Arc::new(QueueStats::default());
        q.spans.store(7, Ordering::Relaxed);
        let c = m.add("b_4317", Arc::clone(&q));
        c.sent.store(3, Ordering::Relaxed);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("tracelight_collector_forward_queue_spans{upstream=\"b_4317\"} 7"));
        assert!(
            out.contains("tracelight_collector_forward_sent_spans_total{upstream=\"b_4317\"} 3")
        );
        assert!(out.contains(
            "tracelight_collector_forward_queue_oldest_age_seconds{upstream=\"b_4317\"} 0"
        ));
    }
}
