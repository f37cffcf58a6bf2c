//! How orders calls payments: through a circuit breaker, with retries, exponential backoff and
//! jitter, and an idempotency key so that retrying a charge never charges twice.
//!
//! Per attempt: ask the breaker (an open breaker fails the call at once, without a retry), call
//! with a timeout, tell the breaker how it went. Transient failures (timeouts, connection
//! errors, 5xx, 429) are retried; they also count against the breaker. A 4xx answer means
//! payments is healthy and said no: it counts as a success for the breaker and is not retried.

use std::time::Instant;

use axum::http::Method;
use serde_json::{Value, json};

use crate::breaker::{CircuitBreaker, Rejected};
use crate::payments::IDEMPOTENCY_KEY;
use crate::retry::{RetryPolicy, retry};
use crate::upstream::{Upstream, UpstreamError};

/// A failed payments call.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// The breaker is open: payments was not called.
    #[error(transparent)]
    BreakerOpen(#[from] Rejected),
    /// The call (the last attempt) failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl PaymentsError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Upstream(e) if e.is_transient())
    }
}

/// The payments service behind a breaker and a retry policy.
#[derive(Debug)]
pub struct PaymentsClient {
    upstream: Upstream,
    breaker: CircuitBreaker,
    retry: RetryPolicy,
}

impl PaymentsClient {
    /// Calls `upstream` through `breaker` with `retry`.
    pub fn new(upstream: Upstream, breaker: CircuitBreaker, retry: RetryPolicy) -> Self {
        Self {
            upstream,
            breaker,
            retry,
        }
    }

    /// The breaker (for its state).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Charges `amount_cents` for `order_id`; returns the payment id.
    pub async fn charge(&self, order_id: u64, amount_cents: u64) -> Result<u64, PaymentsError> {
        let key = format!("order-{order_id}");
        let body = json!({ "order_id": order_id, "amount_cents": amount_cents });
        let payment = self
            .guarded(Method::POST, "/payments", Some(&body), &key, true)
            .await?;
        payment["id"].as_u64().ok_or_else(|| {
            PaymentsError::Upstream(UpstreamError::Invalid {
                service: self.upstream.service(),
                message: "payment without an id".to_owned(),
            })
        })
    }

    /// Refunds a payment. Refunds are retried but bypass the breaker: a compensation must be
    /// attempted even while new charges are being refused.
    pub async fn refund(&self, payment_id: u64) -> Result<(), PaymentsError> {
        let path = format!("/payments/{payment_id}/refund");
        let key = format!("refund-{payment_id}");
        self.guarded(Method::POST, &path, None, &key, false)
            .await
            .map(drop)
    }

    async fn guarded(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: &str,
        use_breaker: bool,
    ) -> Result<Value, PaymentsError> {
        let headers = [(IDEMPOTENCY_KEY, key)];
        retry(
            &self.retry,
            self.upstream.service(),
            PaymentsError::is_retryable,
            |_attempt| {
                let method = method.clone();
                async move {
                    if use_breaker {
                        self.breaker.try_acquire(Instant::now())?;
                    }
                    let result = self.upstream.call(method, path, body, &headers).await;
                    if use_breaker {
                        match &result {
                            Err(e) if e.is_transient() => self.breaker.on_failure(Instant::now()),
                            _ => self.breaker.on_success(Instant::now()),
                        };
                    }
                    Ok(result?)
                }
            },
        )
        .await
    }
}
