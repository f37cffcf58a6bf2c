//! Retry with exponential backoff and jitter.
//!
//! The delay before retry *n* (n = 0 before the second attempt) is `base × 2ⁿ`, capped at
//! `max_delay`, then shortened by a random share of up to `jitter` of itself, so that clients
//! which failed together do not retry together. Each retry is an event on the current span
//! (`retrying after backoff`, with the attempt, the delay and the error) and each attempt is
//! counted in `shop_retry_attempts_total{target,result}`.
//!
//! Only what is safe to repeat should be retried: the orders service sends an
//! `Idempotency-Key` with every charge so that payments charges once however many attempts
//! reach it.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::names;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry, before jitter.
    pub base_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Share of each delay that is randomised, 0 (none) to 1 ("full jitter").
    pub jitter: f64,
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based), for `random` drawn uniformly from
    /// `[0, 1)`.
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        let exponential = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let keep = 1.0 - self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        exponential.mul_f64(keep)
    }
}

/// Runs `op` until it succeeds, fails with an error `retryable` rejects, or `max_attempts` is
/// reached; returns the last result. `op` receives the attempt number, from 1.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    target: &'static str,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(value) => {
                count(target, names::RESULT_OK);
                return Ok(value);
            }
            Err(error) => {
                count(target, names::RESULT_ERROR);
                if attempt >= policy.max_attempts || !retryable(&error) {
                    return Err(error);
                }
                let delay = policy.delay(attempt - 1, rand::random::<f64>());
                tracing::info!(
                    retry.target = target,
                    retry.attempt = attempt,
                    retry.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %error,
                    "retrying after backoff"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

fn count(target: &'static str, result: &'static str) {
    metrics::counter!(
        names::RETRY_ATTEMPTS,
        names::LABEL_TARGET => target,
        names::LABEL_RESULT => result,
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(350),
        jitter: 0.5,
    };

    #[test]
    fn delays_double_up_to_the_cap() {
        let no_jitter = RetryPolicy {
            jitter: 0.0,
            ..POLICY
        };
        let delays: Vec<u128> = (0..5)
            .map(|n| no_jitter.delay(n, 0.9).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 350, 350, 350]);
        // Huge retry numbers saturate instead of overflowing.
        assert_eq!(no_jitter.delay(u32::MAX, 0.0), POLICY.max_delay);
    }

    #[test]
    fn jitter_shortens_by_at_most_its_share() {
        assert_eq!(POLICY.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(POLICY.delay(1, 0.5), Duration::from_millis(150));
        let shortest = POLICY.delay(1, 0.999_999);
        assert!(shortest > Duration::from_millis(100) && shortest < Duration::from_millis(101));
        let full = RetryPolicy {
            jitter: 1.0,
            ..POLICY
        };
        assert!(full.delay(1, 0.999_999) < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_errors_until_success() {
        let calls = Cell::new(0);
        let result: Result<&str, String> = retry(
            &POLICY,
            "test",
            |_| true,
            |attempt| {
                calls.set(attempt);
                async move {
                    if attempt < 3 {
                        Err(format!("fail {attempt}"))
                    } else {
                        Ok("done")
                    }
                }
            },
        )
        .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let result: Result<(), String> = retry(
            &POLICY,
            "test",
            |_| true,
            |attempt| async move { Err(format!("fail {attempt}")) },
        )
        .await;
        assert_eq!(result, Err("fail 4".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_what_is_not_retryable() {
        let calls = Cell::new(0);
        let result: Result<(), &str> = retry(
            &POLICY,
            "test",
            |e: &&str| *e != "fatal",
            |attempt| {
                calls.set(attempt);
                async { Err("fatal") }
            },
        )
        .await;
        assert_eq!(result, Err("fatal"));
        assert_eq!(calls.get(), 1);
    }
}
