//! Results, as text for people and JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::client::Protocol;
use crate::pool::RequestPool;
use crate::procfs::Memory;
use crate::run::LoadConfig;
use crate::stats::{LatencySummary, Stats};

/// The collector's resource use over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorUsage {
    /// Its process id.
    pub pid: u32,
    /// User + system CPU time used during the window.
    pub cpu_seconds: f64,
    /// `cpu_seconds` per second of window: cores kept busy on average.
    pub cpu_cores: f64,
    /// Accepted spans per CPU-second (absent when no CPU time was measured).
    pub spans_per_cpu_second: Option<f64>,
    /// Resident memory at the end of the window, KiB.
    pub rss_end_kib: u64,
    /// Largest resident memory sampled during the window, KiB.
    pub rss_peak_kib: u64,
    /// Peak resident memory since the collector started (`VmHWM`), KiB.
    pub hwm_kib: u64,
}

impl CollectorUsage {
    /// Derives the rates from raw readings.
    pub fn new(
        pid: u32,
        cpu: Duration,
        window_seconds: f64,
        accepted_spans: u64,
        end: Memory,
        rss_peak_kib: u64,
    ) -> Self {
        let cpu_seconds = cpu.as_secs_f64();
        Self {
            pid,
            cpu_seconds,
            cpu_cores: if window_seconds > 0.0 {
                cpu_seconds / window_seconds
            } else {
                0.0
            },
            spans_per_cpu_second: (cpu_seconds > 0.0).then(|| accepted_spans as f64 / cpu_seconds),
            rss_end_kib: end.rss_kib,
            rss_peak_kib,
            hwm_kib: end.hwm_kib,
        }
    }
}

/// Everything a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Always `"load"`.
    pub mode: &'static str,
    /// Transport.
    pub protocol: Protocol,
    /// Collector address.
    pub addr: String,
    /// Spans per request.
    pub batch: usize,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection.
    pub inflight: usize,
    /// The rate cap, if any, in spans per second.
    pub rate_cap: Option<f64>,
    /// Encoded size of a request.
    pub bytes_per_request: usize,
    /// Encoded size per span, resource and envelope included.
    pub bytes_per_span: f64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Acknowledged requests.
    pub requests_ok: u64,
    /// Failed requests.
    pub requests_failed: u64,
    /// Spans acknowledged and not rejected.
    pub accepted_spans: u64,
    /// `accepted_spans / seconds`.
    pub accepted_spans_per_sec: f64,
    /// Spans refused through partial success (`rejected_spans`).
    pub rejected_spans: u64,
    /// Spans in failed requests.
    pub failed_spans: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Failed requests that were backpressure (HTTP 429/503, gRPC UNAVAILABLE).
    pub backpressure_errors: u64,
    /// Latency of acknowledged requests.
    pub latency: LatencySummary,
    /// The collector's CPU and memory (with `--pid`).
    pub collector: Option<CollectorUsage>,
    /// CPU time this load generator used during the window.
    pub loadgen_cpu_seconds: Option<f64>,
}

impl LoadReport {
    /// Assembles the report of a run.
    pub fn new(
        config: &LoadConfig,
        pool: &RequestPool,
        seconds: f64,
        stats: &Stats,
        collector: Option<CollectorUsage>,
        loadgen_cpu_seconds: Option<f64>,
    ) -> Self {
        let batch = pool.spans_per_request();
        Self {
            mode: "load",
            protocol: config.protocol,
            addr: config.addr.to_string(),
            batch,
            connections: config.connections,
            inflight: config.inflight,
            rate_cap: config.rate,
            bytes_per_request: pool.bytes_per_request(),
            bytes_per_span: pool.bytes_per_request() as f64 / batch.max(1) as f64,
            seconds,
            requests_ok: stats.requests_ok,
            requests_failed: stats.requests_failed,
            accepted_spans: stats.accepted_spans,
            accepted_spans_per_sec: if seconds > 0.0 {
                stats.accepted_spans as f64 / seconds
            } else {
                0.0
            },
            rejected_spans: stats.rejected_spans,
            failed_spans: stats.failed_spans,
            errors: stats.errors.clone(),
            backpressure_errors: stats.backpressure,
            latency: stats.latency(),
            collector,
            loadgen_cpu_seconds,
        }
    }

    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:?} → {}: {} spans/request ({} B, {:.0} B/span), {} connection(s) × {} in flight, \
             {:.1} s measured{}",
            self.protocol,
            self.addr,
            self.batch,
            self.bytes_per_request,
            self.bytes_per_span,
            self.connections,
            self.inflight,
            self.seconds,
            self.rate_cap
                .map(|r| format!(", capped at {r:.0} spans/s"))
                .unwrap_or_default(),
        );
        let _ = writeln!(
            out,
            "accepted      {:>12.0} spans/s  ({} spans in {} requests)",
            self.accepted_spans_per_sec, self.accepted_spans, self.requests_ok
        );
        let _ = writeln!(
            out,
            "rejected      {:>12} spans (partial success)",
            self.rejected_spans
        );
        let _ = writeln!(
            out,
            "failed        {:>12} requests ({} spans), {} backpressure",
            self.requests_failed, self.failed_spans, self.backpressure_errors
        );
        for (kind, n) in &self.errors {
            let _ = writeln!(out, "  {kind:<24} {n}");
        }
        let l = &self.latency;
        let _ = writeln!(
            out,
            "latency (ms)  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms
        );
        if let Some(c) = &self.collector {
            let per_cpu = c
                .spans_per_cpu_second
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                out,
                "collector     pid {}: {:.2} CPU-s ({:.2} cores), {per_cpu} spans per CPU-second",
                c.pid, c.cpu_seconds, c.cpu_cores
            );
            let _ = writeln!(
                out,
                "              RSS end {:.1} MiB, peak sampled {:.1} MiB, VmHWM {:.1} MiB",
                c.rss_end_kib as f64 / 1024.0,
                c.rss_peak_kib as f64 / 1024.0,
                c.hwm_kib as f64 / 1024.0
            );
        }
        if let Some(cpu) = self.loadgen_cpu_seconds {
            let _ = writeln!(out, "loadgen       {cpu:.2} CPU-s");
        }
        out
    }
}

/// Result of `--decode-baseline`.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeReport {
    /// Always `"decode-baseline"`.
    pub mode: &'static str,
    /// Spans per decoded request.
    pub batch: usize,
    /// Encoded size of the request.
    pub bytes_per_request: usize,
    /// Requests decoded.
    pub iterations: u64,
    /// Wall-clock time of the loop.
    pub seconds: f64,
    /// CPU time of this process during the loop (it runs on one thread).
    pub cpu_seconds: Option<f64>,
    /// Spans decoded per wall-clock second.
    pub spans_per_sec: f64,
    /// Spans decoded per CPU-second (falls back to wall-clock when CPU time is unknown).
    pub spans_per_cpu_second: f64,
    /// Wall-clock time per span.
    pub ns_per_span: f64,
}

impl DecodeReport {
    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        format!(
            "decode-only (prost, 1 thread): {} spans/request ({} B), {} requests in {:.2} s\n\
             {:.0} spans/s, {:.0} spans per CPU-second, {:.2} µs per span\n",
            self.batch,
            self.bytes_per_request,
            self.iterations,
            self.seconds,
            self.spans_per_sec,
            self.spans_per_cpu_second,
            self.ns_per_span / 1000.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_per_cpu_second() {
        let memory = Memory {
            rss_kib: 40_000,
            hwm_kib: 50_000,
        };
        let u = CollectorUsage::new(1, Duration::from_secs(5), 10.0, 1_000_000, memory, 45_000);
        assert_eq!(u.cpu_cores, 0.5);
        assert_eq!(u.spans_per_cpu_second, Some(200_000.0));
        assert_eq!(u.rss_peak_kib, 45_000);
        assert_eq!(u.hwm_kib, 50_000);
        let idle = CollectorUsage::new(1, Duration::ZERO, 10.0, 0, memory, 0);
        assert_eq!(idle.spans_per_cpu_second, None);
    }
}
