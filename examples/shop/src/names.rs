//! Metric names, label keys and label values the shop defines: all of them, here, once.
//!
//! Dashboards are written against these. Every series also carries tracelight's
//! `service_name` label, and every service exposes tracelight's HTTP RED metrics
//! (`http_server_request_duration_seconds`, `http_server_active_requests`,
//! `http_client_request_duration_seconds`, see `tracelight::metrics::names`) on the same
//! `/metrics`.
//!
//! | Metric | Type | Labels | Service |
//! |---|---|---|---|
//! | `shop_saga_outcomes_total` | counter | `saga`, `outcome` | orders |
//! | `shop_saga_steps_total` | counter | `saga`, `step`, `result` | orders |
//! | `shop_saga_compensations_total` | counter | `saga`, `step`, `result` | orders |
//! | `shop_circuit_breaker_state` | gauge (1 for the current state, 0 for the others) | `breaker`, `state` | orders |
//! | `shop_circuit_breaker_transitions_total` | counter | `breaker`, `from`, `to` | orders |
//! | `shop_circuit_breaker_rejected_total` | counter | `breaker` | orders |
//! | `shop_retry_attempts_total` | counter | `target`, `result` | orders |
//! | `shop_dashboard_responses_total` | counter | `result` | gateway |
//! | `shop_dashboard_part_failures_total` | counter | `part`, `reason` | gateway |
//! | `shop_payments_charges_total` | counter | `result` | payments |
//! | `shop_injected_faults_total` | counter | `fault` | payments, products, shipping |
//! | `shop_ready` | gauge (1 ready, 0 draining) | – | all |

/// Saga runs by final outcome ([`LABEL_SAGA`], [`LABEL_OUTCOME`]).
pub const SAGA_OUTCOMES: &str = "shop_saga_outcomes_total";
/// Saga steps executed ([`LABEL_SAGA`], [`LABEL_STEP`], [`LABEL_RESULT`]).
pub const SAGA_STEPS: &str = "shop_saga_steps_total";
/// Compensations run ([`LABEL_SAGA`], [`LABEL_STEP`], [`LABEL_RESULT`]).
pub const SAGA_COMPENSATIONS: &str = "shop_saga_compensations_total";
/// Circuit breaker state, one-hot over [`LABEL_STATE`] ([`LABEL_BREAKER`], [`LABEL_STATE`]).
pub const BREAKER_STATE: &str = "shop_circuit_breaker_state";
/// Circuit breaker state changes ([`LABEL_BREAKER`], [`LABEL_FROM`], [`LABEL_TO`]).
pub const BREAKER_TRANSITIONS: &str = "shop_circuit_breaker_transitions_total";
/// Calls refused without trying because the breaker was open ([`LABEL_BREAKER`]).
pub const BREAKER_REJECTED: &str = "shop_circuit_breaker_rejected_total";
/// Attempts of retried calls ([`LABEL_TARGET`], [`LABEL_RESULT`]).
pub const RETRY_ATTEMPTS: &str = "shop_retry_attempts_total";
/// `/dashboard/{user_id}` answers ([`LABEL_RESULT`]: complete, degraded, failed).
pub const DASHBOARD_RESPONSES: &str = "shop_dashboard_responses_total";
/// Dashboard parts left out ([`LABEL_PART`], [`LABEL_REASON`]).
pub const DASHBOARD_PART_FAILURES: &str = "shop_dashboard_part_failures_total";
/// Charges handled by payments ([`LABEL_RESULT`]: approved, duplicate, failed).
pub const PAYMENTS_CHARGES: &str = "shop_payments_charges_total";
/// Faults injected on purpose ([`LABEL_FAULT`]: error, slow).
pub const INJECTED_FAULTS: &str = "shop_injected_faults_total";
/// 1 while the service accepts traffic, 0 while draining.
pub const READY: &str = "shop_ready";

/// Every metric name above, for tests and dashboards checks.
pub const ALL: [&str; 12] = [
    SAGA_OUTCOMES,
    SAGA_STEPS,
    SAGA_COMPENSATIONS,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
    BREAKER_REJECTED,
    RETRY_ATTEMPTS,
    DASHBOARD_RESPONSES,
    DASHBOARD_PART_FAILURES,
    PAYMENTS_CHARGES,
    INJECTED_FAULTS,
    READY,
];

/// The saga's name (`place_order`).
pub const LABEL_SAGA: &str = "saga";
/// A saga's outcome: [`OUTCOME_COMPLETED`], [`OUTCOME_COMPENSATED`],
/// [`OUTCOME_COMPENSATION_FAILED`].
pub const LABEL_OUTCOME: &str = "outcome";
/// A saga step: `create_order`, `charge_payment`, `ship_order`.
pub const LABEL_STEP: &str = "step";
/// [`RESULT_OK`] / [`RESULT_ERROR`], or a metric-specific value listed on the metric.
pub const LABEL_RESULT: &str = "result";
/// The breaker's name (`payments`).
pub const LABEL_BREAKER: &str = "breaker";
/// A breaker state: `closed`, `open`, `half_open`.
pub const LABEL_STATE: &str = "state";
/// The state a breaker left.
pub const LABEL_FROM: &str = "from";
/// The state a breaker entered.
pub const LABEL_TO: &str = "to";
/// The service a retried call goes to.
pub const LABEL_TARGET: &str = "target";
/// A dashboard part: `user`, `orders`, `recommendations`.
pub const LABEL_PART: &str = "part";
/// Why a dashboard part failed: `timeout`, `unavailable`, `status`, `invalid`.
pub const LABEL_REASON: &str = "reason";
/// An injected fault: `error`, `slow`.
pub const LABEL_FAULT: &str = "fault";

/// The saga finished every step.
pub const OUTCOME_COMPLETED: &str = "completed";
/// A step failed and every completed step was compensated.
pub const OUTCOME_COMPENSATED: &str = "compensated";
/// A step failed and a compensation failed too: needs a human.
pub const OUTCOME_COMPENSATION_FAILED: &str = "compensation_failed";
/// Success.
pub const RESULT_OK: &str = "ok";
/// Failure.
pub const RESULT_ERROR: &str = "error";

/// Registers descriptions (Prometheus `# HELP`) for the shop's metrics.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(SAGA_OUTCOMES, "Order sagas by final outcome");
    describe_counter!(SAGA_STEPS, "Saga steps executed, by step and result");
    describe_counter!(
        SAGA_COMPENSATIONS,
        "Saga compensations run, by step and result"
    );
    describe_gauge!(
        BREAKER_STATE,
        "1 for the circuit breaker's current state, 0 otherwise"
    );
    describe_counter!(BREAKER_TRANSITIONS, "Circuit breaker state changes");
    describe_counter!(
        BREAKER_REJECTED,
        "Calls refused because the breaker was open"
    );
    describe_counter!(
        RETRY_ATTEMPTS,
        "Attempts of retried calls, by target and result"
    );
    describe_counter!(
        DASHBOARD_RESPONSES,
        "Dashboard answers: complete, degraded or failed"
    );
    describe_counter!(
        DASHBOARD_PART_FAILURES,
        "Dashboard parts left out, by part and reason"
    );
    describe_counter!(PAYMENTS_CHARGES, "Charges handled by payments, by result");
    describe_counter!(INJECTED_FAULTS, "Faults injected on purpose, by kind");
    describe_gauge!(READY, "1 while accepting traffic, 0 while draining");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        for name in ALL {
            assert!(name.starts_with("shop_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        let mut unique = ALL.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ALL.len());
    }
}
