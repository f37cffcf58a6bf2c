//! An orchestrated saga: run steps in order; when one fails, undo the completed ones in reverse
//! order.
//!
//! Each run is a span (`saga <name>`, with `saga.outcome`), each step a child span named after
//! the step, each compensation a span `compensate <step>`; failed ones have error status. The
//! outcome is counted in `shop_saga_outcomes_total{saga,outcome}`, steps and compensations in
//! `shop_saga_steps_total` and `shop_saga_compensations_total`.
//!
//! A compensation that fails does not stop the others (every completed step still gets its
//! undo); the outcome is then [`SagaOutcome::CompensationFailed`], which needs a human, and is
//! logged at error level with the trace id.

use std::future::Future;
use std::pin::Pin;

use tracing::Instrument;
use tracing::field::Empty;

use crate::names;

/// What a step or a compensation returns.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// One local transaction of the saga and its undo. `C` is the context the steps share (ids
/// produced by earlier steps, for instance).
pub trait Step<C>: Send + Sync {
    /// The step's name: span name and `step` label.
    fn name(&self) -> &'static str;
    /// Does the step.
    fn execute<'a>(&'a self, ctx: &'a mut C) -> StepFuture<'a>;
    /// Undoes a completed step. Should be idempotent: it may be retried by an operator.
    fn compensate<'a>(&'a self, ctx: &'a mut C) -> StepFuture<'a>;
}

/// How a run ended.
#[derive(Debug)]
pub enum SagaOutcome {
    /// Every step succeeded.
    Completed,
    /// A step failed; every completed step was compensated.
    Compensated {
        /// The step that failed.
        failed_step: &'static str,
        /// Why it failed.
        error: anyhow::Error,
    },
    /// A step failed and at least one compensation failed too.
    CompensationFailed {
        /// The step that failed.
        failed_step: &'static str,
        /// Why it failed.
        error: anyhow::Error,
        /// The compensations that failed, in the order they ran.
        failed_compensations: Vec<(&'static str, anyhow::Error)>,
    },
}

impl SagaOutcome {
    /// The `outcome` label value.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Completed => names::OUTCOME_COMPLETED,
            Self::Compensated { .. } => names::OUTCOME_COMPENSATED,
            Self::CompensationFailed { .. } => names::OUTCOME_COMPENSATION_FAILED,
        }
    }
}

/// A named sequence of steps.
pub struct Saga<C> {
    name: &'static str,
    steps: Vec<Box<dyn Step<C>>>,
}

impl<C> std::fmt::Debug for Saga<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let steps: Vec<_> = self.steps.iter().map(|s| s.name()).collect();
        f.debug_struct("Saga")
            .field("name", &self.name)
            .field("steps", &steps)
            .finish()
    }
}

impl<C: Send> Saga<C> {
    /// An empty saga called `name` (the `saga` label).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            steps: Vec::new(),
        }
    }

    /// Appends a step.
    #[must_use]
    pub fn step(mut self, step: impl Step<C> + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// Runs the saga over `ctx`.
    pub async fn run(&self, ctx: &mut C) -> SagaOutcome {
        let span_name = format!("saga {}", self.name);
        let span = tracing::info_span!(
            "saga",
            otel.name = span_name.as_str(),
            saga.name = self.name,
            saga.outcome = Empty,
            otel.status_code = Empty,
        );
        let outcome = self.run_steps(ctx).instrument(span.clone()).await;
        span.record("saga.outcome", outcome.label());
        if !matches!(outcome, SagaOutcome::Completed) {
            span.record("otel.status_code", "error");
        }
        metrics::counter!(
            names::SAGA_OUTCOMES,
            names::LABEL_SAGA => self.name,
            names::LABEL_OUTCOME => outcome.label(),
        )
        .increment(1);
        outcome
    }

    async fn run_steps(&self, ctx: &mut C) -> SagaOutcome {
        for (done, step) in self.steps.iter().enumerate() {
            let span = tracing::info_span!(
                "saga step",
                otel.name = step.name(),
                saga.step = step.name(),
                otel.status_code = Empty,
                error.message = Empty,
            );
            let result = step.execute(ctx).instrument(span.clone()).await;
            self.count(names::SAGA_STEPS, step.name(), result.is_ok());
            let Err(error) = result else { continue };
            span.record("otel.status_code", "error");
            span.record("error.message", tracing::field::display(&error));
            tracing::warn!(
                saga.step = step.name(),
                error = %error,
                "saga step failed, compensating {done} completed step(s)"
            );
            let failed_compensations = self.compensate(&self.steps[..done], ctx).await;
            return if failed_compensations.is_empty() {
                SagaOutcome::Compensated {
                    failed_step: step.name(),
                    error,
                }
            } else {
                tracing::error!(
                    saga.step = step.name(),
                    "saga compensation failed: manual intervention needed"
                );
                SagaOutcome::CompensationFailed {
                    failed_step: step.name(),
                    error,
                    failed_compensations,
                }
            };
        }
        SagaOutcome::Completed
    }

    /// Compensates `completed` in reverse order; returns the failures.
    async fn compensate(
        &self,
        completed: &[Box<dyn Step<C>>],
        ctx: &mut C,
    ) -> Vec<(&'static str, anyhow::Error)> {
        let mut failures = Vec::new();
        for step in completed.iter().rev() {
            let span_name = format!("compensate {}", step.name());
            let span = tracing::info_span!(
                "saga compensation",
                otel.name = span_name.as_str(),
                saga.step = step.name(),
                otel.status_code = Empty,
            );
            let result = step.compensate(ctx).instrument(span.clone()).await;
            self.count(names::SAGA_COMPENSATIONS, step.name(), result.is_ok());
            if let Err(error) = result {
                span.record("otel.status_code", "error");
                span.in_scope(|| {
                    tracing::error!(saga.step = step.name(), error = %error, "compensation failed");
                });
                failures.push((step.name(), error));
            }
        }
        failures
    }

    fn count(&self, metric: &'static str, step: &'static str, ok: bool) {
        let result = if ok {
            names::RESULT_OK
        } else {
            names::RESULT_ERROR
        };
        metrics::counter!(
            metric,
            names::LABEL_SAGA => self.name,
            names::LABEL_STEP => step,
            names::LABEL_RESULT => result,
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends what it does to the context; fails where told to.
    struct Fake {
        name: &'static str,
        fail: bool,
        fail_compensation: bool,
    }

    fn ok(name: &'static str) -> Fake {
        Fake {
            name,
            fail: false,
            fail_compensation: false,
        }
    }

    impl Step<Vec<String>> for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn execute<'a>(&'a self, ctx: &'a mut Vec<String>) -> StepFuture<'a> {
            Box::pin(async move {
                ctx.push(format!("do {}", self.name));
                if self.fail {
                    anyhow::bail!("{} failed", self.name);
                }
                Ok(())
            })
        }
        fn compensate<'a>(&'a self, ctx: &'a mut Vec<String>) -> StepFuture<'a> {
            Box::pin(async move {
                ctx.push(format!("undo {}", self.name));
                if self.fail_compensation {
                    anyhow::bail!("undo {} failed", self.name);
                }
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn runs_every_step_in_order() {
        let saga = Saga::new("test").step(ok("a")).step(ok("b")).step(ok("c"));
        let mut log = Vec::new();
        let outcome = saga.run(&mut log).await;
        assert!(matches!(outcome, SagaOutcome::Completed));
        assert_eq!(log, ["do a", "do b", "do c"]);
    }

    #[tokio::test]
    async fn compensates_completed_steps_in_reverse_order() {
        let failing = Fake {
            fail: true,
            ..ok("c")
        };
        let saga = Saga::new("test")
            .step(ok("a"))
            .step(ok("b"))
            .step(failing)
            .step(ok("d"));
        let mut log = Vec::new();
        let outcome = saga.run(&mut log).await;
        assert_eq!(log, ["do a", "do b", "do c", "undo b", "undo a"]);
        let SagaOutcome::Compensated { failed_step, error } = outcome else {
            panic!("expected Compensated, got {outcome:?}");
        };
        assert_eq!(failed_step, "c");
        assert_eq!(error.to_string(), "c failed");
    }

    #[tokio::test]
    async fn a_failing_first_step_needs_no_compensation() {
        let saga = Saga::new("test")
            .step(Fake {
                fail: true,
                ..ok("a")
            })
            .step(ok("b"));
        let mut log = Vec::new();
        let outcome = saga.run(&mut log).await;
        assert_eq!(outcome.label(), names::OUTCOME_COMPENSATED);
        assert_eq!(log, ["do a"]);
    }

    #[tokio::test]
    async fn a_failed_compensation_does_not_stop_the_others() {
        let saga = Saga::new("test")
            .step(ok("a"))
            .step(Fake {
                fail_compensation: true,
                ..ok("b")
            })
            .step(Fake {
                fail: true,
                ..ok("c")
            });
        let mut log = Vec::new();
        let outcome = saga.run(&mut log).await;
        assert_eq!(log, ["do a", "do b", "do c", "undo b", "undo a"]);
        let SagaOutcome::CompensationFailed {
            failed_step,
            failed_compensations,
            ..
        } = outcome
        else {
            panic!("expected CompensationFailed, got {outcome:?}");
        };
        assert_eq!(failed_step, "c");
        assert_eq!(failed_compensations.len(), 1);
        assert_eq!(failed_compensations[0].0, "b");
    }
}
