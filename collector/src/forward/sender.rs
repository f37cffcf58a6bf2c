//! The delivery loop of one upstream: takes records from its queue, merges them into requests,
//! sends up to `max_in_flight` at a time, retries retryable failures with backoff, and
//! acknowledges (cursor + segment deletion) what the upstream accepted or permanently refused.
//!
//! Two rules keep the acknowledged prefix (the cursor) close behind what was sent:
//!
//! - at most `max_in_flight × max_batch_spans` spans are out above the prefix, in flight or
//!   done (the queue's window, [`Queue::take`]): that is all a crash can send again;
//! - a request waiting out its computed backoff retries as soon as another request to the same
//!   upstream is accepted: the outage is over, and the oldest records, which hold the prefix
//!   (and the window, and the disk the segments take), are the ones waiting. A delay the
//!   upstream asked for (`Retry-After`, `RetryInfo`) is always honoured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::exporter::Exporter;
use super::metrics::UpstreamCounters;
use super::queue::{Batch, Queue};
use super::retry::{Backoff, Outcome};

/// Largest request body (before compression) built by merging records; one record larger
/// than this is still sent alone.
pub const MAX_REQUEST_BYTES: u64 = 4 << 20;

/// How a batch ended.
#[derive(Debug)]
enum Delivery {
    /// The upstream accepted it (`rejected` spans refused in a partial success).
    Accepted { rejected: u64 },
    /// Permanently refused: dropped.
    Rejected(String),
    /// Its records could not be read back: dropped.
    Unreadable(String),
    /// Shutdown before it was delivered: stays queued for the next start.
    Abandoned,
}

/// One upstream's sender.
#[derive(Debug)]
pub struct Sender {
    /// The upstream's label.
    pub label: String,
    /// Its queue.
    pub queue: Arc<Queue>,
    /// Its exporter.
    pub exporter: Exporter,
    /// Its counters.
    pub counters: Arc<UpstreamCounters>,
    /// Spans per request, at most.
    pub max_batch_spans: u64,
    /// Concurrent requests.
    pub max_in_flight: usize,
    /// Retry delays (initial, max).
    pub retry: (Duration, Duration),
}

#[derive(Debug, Clone)]
struct Attempt {
    label: String,
    queue: Arc<Queue>,
    exporter: Exporter,
    counters: Arc<UpstreamCounters>,
    retry: (Duration, Duration),
    /// Set while the upstream fails, so an outage is logged once, not per attempt.
    failing: Arc<AtomicBool>,
    accepted: Arc<Accepted>,
    stop: CancellationToken,
}

/// Requests the upstream accepted, for the requests waiting to retry (see the module docs).
#[derive(Debug, Default)]
struct Accepted {
    /// How many so far.
    count: AtomicU64,
    /// Woken at each.
    notify: Notify,
}

impl Accepted {
    fn record(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }
}

impl Sender {
    /// Runs until `stop` fires and the requests in flight have ended (a request waiting to
    /// retry ends at once; one on the wire gets its answer or its timeout).
    pub async fn run(self, stop: CancellationToken) {
        let attempt = Attempt {
            label: self.label.clone(),
            queue: Arc::clone(&self.queue),
            exporter: self.exporter.clone(),
            counters: Arc::clone(&self.counters),
            retry: self.retry,
            failing: Arc::new(AtomicBool::new(false)),
            accepted: Arc::default(),
            stop: stop.clone(),
        };
        // Spans out above the acknowledged prefix, at most (see the module docs).
        let window = self
            .max_batch_spans
            .saturating_mul(self.max_in_flight as u64);
        let mut in_flight: JoinSet<(Batch, Delivery)> = JoinSet::new();
        loop {
            while !stop.is_cancelled() && in_flight.len() < self.max_in_flight {
                let Some(batch) = self
                    .queue
                    .take(self.max_batch_spans, MAX_REQUEST_BYTES, window)
                else {
                    break;
                };
                let attempt = attempt.clone();
                in_flight.spawn(async move {
                    let delivery = attempt.deliver(&batch).await;
                    (batch, delivery)
                });
            }
            let room = in_flight.len() < self.max_in_flight;
            tokio::select! {
                Some(joined) = in_flight.join_next() => match joined {
                    Ok((batch, delivery)) => self.finish(&batch, delivery).await,
                    Err(e) => tracing::error!(upstream = %self.label, error = %e, "forward task failed"),
                },
                () = self.queue.appended(), if room && !stop.is_cancelled() => {}
                () = stop.cancelled(), if !stop.is_cancelled() => {}
                else => break,
            }
        }
    }

    async fn finish(&self, batch: &Batch, delivery: Delivery) {
        let c = &self.counters;
        match delivery {
            Delivery::Abandoned => return,
            Delivery::Accepted { rejected } => {
                let rejected = rejected.min(batch.spans);
                c.sent.fetch_add(batch.spans - rejected, Ordering::Relaxed);
                c.failed.fetch_add(rejected, Ordering::Relaxed);
                if rejected > 0 {
                    tracing::warn!(upstream = %self.label, rejected, "upstream rejected spans (partial success)");
                }
            }
            Delivery::Rejected(reason) => {
                c.failed.fetch_add(batch.spans, Ordering::Relaxed);
                tracing::error!(
                    upstream = %self.label,
                    spans = batch.spans,
                    %reason,
                    "upstream rejected a batch permanently; dropped"
                );
            }
            Delivery::Unreadable(reason) => {
                c.failed.fetch_add(batch.spans, Ordering::Relaxed);
                tracing::error!(
                    upstream = %self.label,
                    spans = batch.spans,
                    %reason,
                    "cannot read queued records back; dropped"
                );
            }
        }
        let Some(acked) = self.queue.complete(batch.first_seq, batch.last_seq) else {
            return;
        };
        let queue = Arc::clone(&self.queue);
        match tokio::task::spawn_blocking(move || queue.persist(acked)).await {
            Ok(Ok(())) => {}
            // The records stay acknowledged in memory; after a restart they would be sent
            // again (duplicates, never loss).
            Ok(Err(e)) => {
                tracing::error!(upstream = %self.label, error = %e, "cannot persist the forward cursor");
            }
            Err(e) => tracing::error!(upstream = %self.label, error = %e, "cursor task failed"),
        }
    }
}

impl Attempt {
    async fn deliver(&self, batch: &Batch) -> Delivery {
        let queue = Arc::clone(&self.queue);
        let (owned, format) = (batch.clone(), self.exporter.body_format());
        let body = tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
            let prefix = format.prefix();
            let mut raw = Vec::with_capacity(prefix + usize::try_from(owned.bytes).unwrap_or(0));
            raw.resize(prefix, 0);
            queue.read_into(&owned, &mut raw)?;
            format.finish(raw)
        })
        .await;
        let body = match body {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Delivery::Unreadable(e.to_string()),
            Err(e) => return Delivery::Unreadable(e.to_string()),
        };
        let mut backoff = Backoff::new(self.retry.0, self.retry.1);
        loop {
            let accepted_before = self.accepted.count.load(Ordering::Acquire);
            match self.exporter.export(body.clone()).await {
                Outcome::Accepted { rejected } => {
                    self.accepted.record();
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(upstream = %self.label, "upstream accepts spans again");
                    }
                    return Delivery::Accepted { rejected };
                }
                Outcome::Permanent { reason } => return Delivery::Rejected(reason),
                Outcome::Retry { reason, delay } => {
                    self.counters
                        .retried
                        .fetch_add(batch.spans, Ordering::Relaxed);
                    let asked = delay.is_some();
                    let wait = backoff.delay(delay);
                    if self.failing.swap(true, Ordering::Relaxed) {
                        tracing::debug!(upstream = %self.label, %reason, ?wait, "forward retry");
                    } else {
                        tracing::warn!(
                            upstream = %self.label,
                            %reason,
                            ?wait,
                            "upstream unavailable; spans stay queued and are retried"
                        );
                    }
                    if !self.wait_to_retry(wait, asked, accepted_before).await {
                        return Delivery::Abandoned;
                    }
                }
            }
        }
    }

    /// Waits `wait` before the next attempt, or less: unless the upstream `asked` for that
    /// delay, until it accepts another request (at once if it accepted one since this attempt
    /// was sent, its count then past `accepted_before`). `false` on shutdown.
    async fn wait_to_retry(&self, wait: Duration, asked: bool, accepted_before: u64) -> bool {
        let woken = self.accepted.notify.notified();
        tokio::pin!(woken);
        // Registered before the count is read, so an acceptance in between still wakes it.
        woken.as_mut().enable();
        if !asked && self.accepted.count.load(Ordering::Acquire) != accepted_before {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = &mut woken, if !asked => true,
            () = self.stop.cancelled() => false,
        }
    }
}
