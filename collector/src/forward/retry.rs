//! What to do with an upstream's answer (retry or give up), and how long to wait.
//!
//! Classification follows the OTLP specification (`shared/reference/otlp-receiver.md` §7.1):
//! HTTP 429, 502, 503 and 504 are retryable, every other error status is permanent; gRPC
//! `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE` and `DATA_LOSS`
//! are retryable, `RESOURCE_EXHAUSTED` only with a `RetryInfo`, the rest permanent. Network
//! errors and timeouts are retryable. A server-given delay (`Retry-After`, `RetryInfo`)
//! replaces the computed backoff.

use std::time::Duration;

use rand::Rng as _;

/// Longest server-given delay honoured (a larger one is capped).
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(600);
/// Default first retry delay (the OpenTelemetry Collector's).
pub const DEFAULT_INITIAL_INTERVAL: Duration = Duration::from_secs(5);
/// Default longest computed retry delay.
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(30);
/// Growth of the delay per failed attempt.
pub const MULTIPLIER: f64 = 1.5;
/// The delay is drawn uniformly from `delay × [1 − J, 1 + J]`.
pub const JITTER: f64 = 0.5;

/// The outcome of one export attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `rejected` spans were refused by the upstream (partial success, not retried).
    Accepted {
        /// Spans the upstream reported as rejected.
        rejected: u64,
    },
    /// Try again later, after `delay` if the upstream said so.
    Retry {
        /// Why.
        reason: String,
        /// The upstream's requested delay.
        delay: Option<Duration>,
    },
    /// Never retry this batch.
    Permanent {
        /// Why.
        reason: String,
    },
}

/// Classifies an HTTP status; `retry_after` is the raw `Retry-After` header.
pub fn classify_http(status: u16, retry_after: Option<&str>) -> Option<Outcome> {
    match status {
        200..=299 => None,
        429 | 502 | 503 | 504 => Some(Outcome::Retry {
            reason: format!("HTTP {status}"),
            delay: retry_after.and_then(parse_retry_after),
        }),
        _ => Some(Outcome::Permanent {
            reason: format!("HTTP {status}"),
        }),
    }
}

/// Classifies a gRPC error status; `retry_info` is its `RetryInfo` delay, if any.
pub fn classify_grpc(
    code: tonic::Code,
    message: &str,
    retry_info: Option<Option<Duration>>,
) -> Outcome {
    use tonic::Code;
    let reason = format!("gRPC {code:?}: {message}");
    let delay = retry_info.flatten();
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retry { reason, delay },
        Code::ResourceExhausted if retry_info.is_some() => Outcome::Retry { reason, delay },
        _ => Outcome::Permanent { reason },
    }
}

/// Parses `Retry-After`: delay seconds or an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_SERVER_DELAY));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(
        wait.to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_SERVER_DELAY),
    )
}

/// Exponential backoff with jitter for one batch.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `initial`, grows by [`MULTIPLIER`] up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            next: initial,
            max: max.max(initial),
        }
    }

    /// The delay before the next attempt: the server's, if it gave one, else the computed
    /// delay with jitter (which then grows).
    pub fn delay(&mut self, server: Option<Duration>) -> Duration {
        if let Some(d) = server {
            return d.min(MAX_SERVER_DELAY);
        }
        let base = self.next;
        self.next = base.mul_f64(MULTIPLIER).min(self.max);
        let factor = rand::rng().random_range((1.0 - JITTER)..=(1.0 + JITTER));
        base.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use super::*;

    #[test]
    fn http_classes() {
        assert_eq!(classify_http(200, None), None);
        for s in [429, 502, 503, 504] {
            assert!(matches!(
                classify_http(s, None),
                Some(Outcome::Retry { .. })
            ));
        }
        for s in [400, 401, 403, 404, 413, 415, 500] {
            assert!(matches!(
                classify_http(s, None),
                Some(Outcome::Permanent { .. })
            ));
        }
        assert_eq!(
            classify_http(429, Some("3")),
            Some(Outcome::Retry {
                reason: "HTTP 429".to_owned(),
                delay: Some(Duration::from_secs(3))
            })
        );
    }

    #[test]
    fn grpc_classes() {
        use tonic::Code;
        assert!(matches!(
            classify_grpc(Code::Unavailable, "", None),
            Outcome::Retry { delay: None, .. }
        ));
        assert!(matches!(
            classify_grpc(Code::InvalidArgument, "", None),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            classify_grpc(Code::ResourceExhausted, "", None),
            Outcome::Permanent { .. }
        ));
        let d = Some(Duration::from_millis(1500));
        assert_eq!(
            classify_grpc(Code::ResourceExhausted, "slow", Some(d)),
            Outcome::Retry {
                reason: "gRPC ResourceExhausted: slow".to_owned(),
                delay: d
            }
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999"), Some(MAX_SERVER_DELAY));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_the_server() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(3));
        let d1 = b.delay(None);
        assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_millis(1500));
        assert_eq!(
            b.delay(Some(Duration::from_secs(9))),
            Duration::from_secs(9)
        );
        let d2 = b.delay(None);
        assert!(d2 >= Duration::from_millis(750) && d2 <= Duration::from_millis(2250));
        for _ in 0..10 {
            assert!(b.delay(None) <= Duration::from_millis(4500));
        }
    }
}
