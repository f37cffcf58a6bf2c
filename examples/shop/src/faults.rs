//! Faults injected on purpose, so the demo has failures and slowness to observe.
//!
//! Each request first rolls for a delay (`slow_rate`, `slow_delay`), then for an error
//! (`failure_rate`). Both are counted in `shop_injected_faults_total{fault}` and logged on the
//! request's span.

use std::time::Duration;

use crate::names;

/// Fault-injection settings of one service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Share of requests that fail (0–1).
    pub failure_rate: f64,
    /// Share of requests that are slow (0–1).
    pub slow_rate: f64,
    /// How slow a slow request is.
    pub slow_delay: Duration,
}

/// The request was chosen to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("injected failure")]
pub struct InjectedFailure;

impl Faults {
    /// No faults.
    pub const NONE: Self = Self {
        failure_rate: 0.0,
        slow_rate: 0.0,
        slow_delay: Duration::ZERO,
    };

    /// Sleeps, then fails, as configured.
    pub async fn inject(&self) -> Result<(), InjectedFailure> {
        self.maybe_delay().await;
        self.maybe_fail()
    }

    /// Sleeps for `slow_delay` in `slow_rate` of the calls.
    pub async fn maybe_delay(&self) {
        if roll(self.slow_rate) {
            count("slow");
            let delay_ms = u64::try_from(self.slow_delay.as_millis()).unwrap_or(u64::MAX);
            tracing::info!(delay_ms, "injected delay");
            tokio::time::sleep(self.slow_delay).await;
        }
    }

    /// Fails in `failure_rate` of the calls.
    pub fn maybe_fail(&self) -> Result<(), InjectedFailure> {
        if roll(self.failure_rate) {
            count("error");
            tracing::warn!("injected failure");
            return Err(InjectedFailure);
        }
        Ok(())
    }
}

fn roll(rate: f64) -> bool {
    rate > 0.0 && (rate >= 1.0 || rand::random::<f64>() < rate)
}

fn count(fault: &'static str) {
    metrics::counter!(names::INJECTED_FAULTS, names::LABEL_FAULT => fault).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rates_of_zero_and_one_are_exact() {
        assert_eq!(Faults::NONE.inject().await, Ok(()));
        let always = Faults {
            failure_rate: 1.0,
            ..Faults::NONE
        };
        assert_eq!(always.inject().await, Err(InjectedFailure));
    }
}
