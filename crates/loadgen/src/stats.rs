//! Per-request outcomes, counters and the latency histogram.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The collector answered with a non-2xx HTTP status.
    Http(u16),
    /// The collector answered with a non-OK gRPC status (`tonic::Code` as its name).
    Grpc(tonic::Code),
    /// The request did not get an answer (connect, reset, timeout…), with a short reason.
    Transport(&'static str),
    /// An OK answer whose body is not an `ExportTraceServiceResponse`.
    BadResponse,
}

impl ErrorKind {
    /// Whether the collector asked the client to slow down (HTTP 429/503, gRPC UNAVAILABLE).
    pub fn is_backpressure(&self) -> bool {
        matches!(
            self,
            Self::Http(429 | 503) | Self::Grpc(tonic::Code::Unavailable)
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(status) => write!(f, "HTTP {status}"),
            Self::Grpc(code) => write!(f, "gRPC {}", grpc_code_name(*code)),
            Self::Transport(reason) => write!(f, "transport: {reason}"),
            Self::BadResponse => f.write_str("bad response body"),
        }
    }
}

/// The canonical upper-case name of a gRPC code (`UNAVAILABLE`).
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The result of one export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged; `rejected` spans were refused through a partial success.
    Accepted {
        /// `partial_success.rejected_spans`.
        rejected: u64,
    },
    /// Not acknowledged.
    Failed(ErrorKind),
}

/// Counters and latencies of one worker, or of the whole run once merged.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Acknowledged requests.
    pub requests_ok: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// Spans acknowledged and not rejected.
    pub accepted_spans: u64,
    /// Spans refused through a partial success.
    pub rejected_spans: u64,
    /// Spans in failed requests.
    pub failed_spans: u64,
    /// Failed requests by kind (`"HTTP 503"`, `"gRPC UNAVAILABLE"`, …).
    pub errors: BTreeMap<String, u64>,
    /// Failed requests that were backpressure (HTTP 429/503, gRPC UNAVAILABLE).
    pub backpressure: u64,
    /// Latency of acknowledged requests, in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Largest latency the histogram tracks (longer ones are clamped): 60 s.
const MAX_LATENCY_US: u64 = 60_000_000;

impl Default for Stats {
    fn default() -> Self {
        Self {
            requests_ok: 0,
            requests_failed: 0,
            accepted_spans: 0,
            rejected_spans: 0,
            failed_spans: 0,
            errors: BTreeMap::new(),
            backpressure: 0,
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
        }
    }
}

impl Stats {
    /// Counts one request of `spans` spans that took `latency`.
    pub fn record(&mut self, outcome: &Outcome, spans: u64, latency: Duration) {
        match outcome {
            Outcome::Accepted { rejected } => {
                let rejected = (*rejected).min(spans);
                self.requests_ok += 1;
                self.accepted_spans += spans - rejected;
                self.rejected_spans += rejected;
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us
                    .saturating_record(us.clamp(1, MAX_LATENCY_US));
            }
            Outcome::Failed(kind) => {
                self.requests_failed += 1;
                self.failed_spans += spans;
                if kind.is_backpressure() {
                    self.backpressure += 1;
                }
                *self.errors.entry(kind.to_string()).or_default() += 1;
            }
        }
    }

    /// Adds `other`'s counts and latencies to these.
    pub fn merge(&mut self, other: &Self) {
        self.requests_ok += other.requests_ok;
        self.requests_failed += other.requests_failed;
        self.accepted_spans += other.accepted_spans;
        self.rejected_spans += other.rejected_spans;
        self.failed_spans += other.failed_spans;
        self.backpressure += other.backpressure;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    /// Percentiles of the acknowledged requests' latency.
    pub fn latency(&self) -> LatencySummary {
        LatencySummary::of(&self.latency_us)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of recorded requests.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds (all zeroes when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.002
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut stats = Stats::default();
        // 1 ms, 2 ms, …, 1000 ms.
        for ms in 1..=1000u64 {
            stats.record(
                &Outcome::Accepted { rejected: 0 },
                1,
                Duration::from_millis(ms),
            );
        }
        let l = stats.latency();
        assert_eq!(l.count, 1000);
        assert!(close(l.p50_ms, 500.0), "p50 {}", l.p50_ms);
        assert!(close(l.p90_ms, 900.0), "p90 {}", l.p90_ms);
        assert!(close(l.p99_ms, 990.0), "p99 {}", l.p99_ms);
        assert!(close(l.max_ms, 1000.0), "max {}", l.max_ms);
        assert!(close(l.mean_ms, 500.5), "mean {}", l.mean_ms);
    }

    #[test]
    fn p99_sees_the_slow_tail() {
        let mut stats = Stats::default();
        for _ in 0..980 {
            stats.record(
                &Outcome::Accepted { rejected: 0 },
                1,
                Duration::from_micros(800),
            );
        }
        for _ in 0..20 {
            stats.record(
                &Outcome::Accepted { rejected: 0 },
                1,
                Duration::from_millis(50),
            );
        }
        let l = stats.latency();
        assert!(close(l.p50_ms, 0.8), "p50 {}", l.p50_ms);
        assert!(close(l.p99_ms, 50.0), "p99 {}", l.p99_ms);
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for ms in 1..=500u64 {
            a.record(
                &Outcome::Accepted { rejected: 2 },
                100,
                Duration::from_millis(ms),
            );
        }
        for ms in 501..=1000u64 {
            b.record(
                &Outcome::Accepted { rejected: 0 },
                100,
                Duration::from_millis(ms),
            );
        }
        b.record(
            &Outcome::Failed(ErrorKind::Grpc(tonic::Code::Unavailable)),
            100,
            Duration::ZERO,
        );
        b.record(&Outcome::Failed(ErrorKind::Http(400)), 100, Duration::ZERO);
        a.merge(&b);
        assert_eq!(a.requests_ok, 1000);
        assert_eq!(a.requests_failed, 2);
        assert_eq!(a.accepted_spans, 500 * 98 + 500 * 100);
        assert_eq!(a.rejected_spans, 1000);
        assert_eq!(a.failed_spans, 200);
        assert_eq!(a.backpressure, 1);
        assert_eq!(a.errors.get("gRPC UNAVAILABLE"), Some(&1));
        assert_eq!(a.errors.get("HTTP 400"), Some(&1));
        assert!(close(a.latency().p50_ms, 500.0));
        assert!(close(a.latency().p99_ms, 990.0));
    }

    #[test]
    fn backpressure_kinds() {
        assert!(ErrorKind::Http(429).is_backpressure());
        assert!(ErrorKind::Http(503).is_backpressure());
        assert!(ErrorKind::Grpc(tonic::Code::Unavailable).is_backpressure());
        assert!(!ErrorKind::Http(500).is_backpressure());
        assert!(!ErrorKind::Grpc(tonic::Code::ResourceExhausted).is_backpressure());
        assert!(!ErrorKind::Transport("connect").is_backpressure());
    }

    #[test]
    fn empty_summary_is_zero() {
        let l = Stats::default().latency();
        assert_eq!(l.count, 0);
        assert_eq!(l.p99_ms, 0.0);
    }
}
