//! The bounded path between the receivers and the store.
//!
//! A receiver [`submit`](PipelineSender::submit)s a batch and waits for the store's answer
//! before acknowledging the client, so an acknowledged span is always stored (and, with a
//! durable store, on disk). At most `max_spans` spans are admitted and not yet written, and
//! each writer's intake is bounded; when either is full the submission is refused at once
//! ([`SubmitError::Full`]) and the receiver answers 503 / `UNAVAILABLE` with a retry delay
//! instead of buffering more.
//!
//! Encode once, on the receiving thread: when the store can [`prepare`](SpanStore::prepare) a
//! batch (the embedded store encodes it into its WAL record; the null store keeps nothing),
//! the submission does that, and takes the received request's bytes (or encodes them) for the
//! forward queues, on the caller's thread, where the spans were just decoded and are still in
//! cache; the derived metrics observe the batch there too, and it is freed there at once.
//! The prepared batch then goes straight to the store's commit thread
//! ([`SpanStore::submit_prepared`]) and the payload to each forward queue's, with completion
//! callbacks ([`crate::completion`]): the receiving task awaits the last of them, and no
//! thread blocks in between (a thread hop costs two context switches per request, which
//! showed at small requests).
//!
//! A store that keeps the spans themselves (memory) gets the batch on one of a few worker
//! threads, so its writes never run on the async runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::derived::Derived;
use crate::forward::queue::{AppendDone, QueueError};
use crate::forward::{ForwardError, Forwarder, encode};
use crate::group::Incoming;
use crate::metrics::Metrics;
use crate::model::{BatchView, SpanBatch};
use crate::store::{Prepared, SpanStore, StoreError, WriteDone};

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The queue is full: the caller should ask the client to retry later.
    #[error("pipeline queue is full")]
    Full,
    /// The pipeline is shutting down.
    #[error("pipeline is closed")]
    Closed,
    /// The store refused the batch.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A forward queue failed to write the batch.
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

/// What a submission writes.
#[derive(Debug)]
enum Work {
    /// The spans themselves, for a store that keeps them (written by a worker thread).
    Batch(SpanBatch),
    /// A batch prepared on the submitting thread (the spans stayed there), handed straight
    /// to the store's commit thread.
    Prepared {
        prepared: Prepared,
        spans: usize,
        /// The batch's announcement to the commit threads, dropped as it is submitted.
        incoming: Incoming,
    },
}

/// Set once at startup ([`PipelineWorker::with_derived`], [`PipelineWorker::with_forward`]),
/// read by the workers and the senders.
#[derive(Debug, Default)]
struct Hooks {
    derived: OnceLock<Arc<Derived>>,
    forward: OnceLock<Arc<Forwarder>>,
}

#[derive(Debug)]
struct Envelope {
    batch: SpanBatch,
    /// The batch as an `ExportTraceServiceRequest`, when forwarding.
    payload: Option<Bytes>,
    ack: oneshot::Sender<Result<(), SubmitError>>,
    /// Returns the batch's spans to the budget when the envelope is done with (or dropped).
    budget: SpanRelease,
}

#[derive(Debug)]
struct SpanRelease {
    budget: Arc<SpanBudget>,
    spans: usize,
    /// Counted in [`SpanBudget::handed_over`].
    handed_over: bool,
}

impl SpanRelease {
    /// Counts the batch as handed to the commit threads until it is released.
    fn hand_over(&mut self) {
        if !std::mem::replace(&mut self.handed_over, true) {
            self.budget.handed_over.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for SpanRelease {
    fn drop(&mut self) {
        self.budget.release(self.spans);
        if self.handed_over {
            self.budget.handed_over.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The receivers' handle on the pipeline. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PipelineSender {
    tx: mpsc::Sender<Envelope>,
    spans: Arc<SpanBudget>,
    store: Arc<dyn SpanStore>,
    hooks: Arc<Hooks>,
    metrics: Arc<Metrics>,
}

/// Spans admitted to the queue and not yet written.
#[derive(Debug)]
struct SpanBudget {
    queued: AtomicUsize,
    max: usize,
    /// Batches handed straight to the commit threads and not yet written (the workers'
    /// queue holds the others).
    handed_over: AtomicUsize,
}

impl SpanBudget {
    /// Admits `n` spans, or refuses without changing the count. A batch larger than the whole
    /// budget is admitted when the queue is empty, so it can never be refused forever.
    fn admit(&self, n: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + n <= self.max).then_some(q + n)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }
}

impl PipelineSender {
    /// Queues a batch and waits until the store has it. Never waits for queue space. When
    /// forwarding, the batch is encoded for the forward queues here.
    pub async fn submit(&self, batch: SpanBatch) -> Result<(), SubmitError> {
        let budget = self.admit(batch.len())?;
        let spans = batch.len();
        // The encoding work, on this thread (see the module docs).
        let payload = self.payload(None, || encode::encode_spans(&batch.spans));
        let prepared = {
            let view = BatchView::from_spans(&batch.spans);
            self.prepare(&view)
        };
        let work = match prepared {
            Some(prepared) => {
                drop(batch); // here, while hot, on the thread that allocated it
                Work::Prepared {
                    prepared,
                    spans,
                    incoming: Incoming::default(),
                }
            }
            None => Work::Batch(batch),
        };
        self.send(work, payload, budget)?.wait().await
    }

    /// Queues the spans of `batch` (a view of `request`'s bytes, or of spans converted from
    /// it) without waiting: the store's write work is done here, on the caller's thread, and
    /// nothing of the view is kept, so the caller can drop it (and its request) before
    /// awaiting the returned [`Queued`]. `request`, an encoded `ExportTraceServiceRequest`
    /// holding exactly the batch's spans, is what the forward queues store when given;
    /// otherwise the batch is re-encoded for them.
    ///
    /// `incoming`, taken with [`incoming`](Self::incoming) before the request was read, is
    /// dropped just before the batch reaches the commit threads.
    pub fn enqueue_view(
        &self,
        batch: &BatchView<'_>,
        request: Option<Bytes>,
        incoming: Incoming,
    ) -> Result<Queued, SubmitError> {
        let spans = batch.len();
        let budget = self.admit(spans)?;
        let payload = self.payload(request, || encode::encode_spans(&batch.to_spans()));
        let work = match self.prepare(batch) {
            Some(prepared) => Work::Prepared {
                prepared,
                spans,
                incoming,
            },
            None => Work::Batch(SpanBatch {
                spans: batch.to_spans(),
            }),
        };
        self.send(work, payload, budget)
    }

    /// Announces a batch to the store's and the forward queues' commit threads before
    /// reading it ([`SpanStore::incoming`], [`crate::group`]): hold it while decoding the
    /// request, then pass it to [`enqueue_view`](Self::enqueue_view).
    pub fn incoming(&self) -> Incoming {
        let store = self.store.incoming();
        match self.hooks.forward.get() {
            Some(forward) => store.and(forward.incoming()),
            None => store,
        }
    }

    /// Admits `spans` into the queue's budget, or refuses at once.
    fn admit(&self, spans: usize) -> Result<SpanRelease, SubmitError> {
        if !self.spans.admit(spans) {
            return Err(SubmitError::Full);
        }
        let budget = SpanRelease {
            budget: Arc::clone(&self.spans),
            spans,
            handed_over: false,
        };
        if self.tx.capacity() == 0 {
            return Err(if self.tx.is_closed() {
                SubmitError::Closed
            } else {
                SubmitError::Full
            });
        }
        // A forward queue at its disk cap refuses the batch before anything sees it.
        if let Some(forward) = self.hooks.forward.get()
            && !forward.admit(spans)
        {
            return Err(SubmitError::Full);
        }
        Ok(budget)
    }

    /// The forward queues' payload, when forwarding: the received request, else `encode()`.
    fn payload(&self, request: Option<Bytes>, encode: impl FnOnce() -> Vec<u8>) -> Option<Bytes> {
        match self.hooks.forward.get() {
            Some(_) => Some(request.unwrap_or_else(|| Bytes::from(encode()))),
            None => {
                drop(request); // not held while the store writes
                None
            }
        }
    }

    /// The store's write work for `batch`, done here, and the derived metrics' observation;
    /// `None` when the store keeps the spans themselves (then the worker does both).
    fn prepare(&self, batch: &BatchView<'_>) -> Option<Prepared> {
        let prepared = self.store.prepare(batch)?;
        if let Some(derived) = self.hooks.derived.get() {
            derived.observe_view(batch);
        }
        Some(prepared)
    }

    /// Queues `work`: a prepared batch straight to the store's and the forward queues'
    /// commit threads, spans for the worker threads.
    fn send(
        &self,
        work: Work,
        payload: Option<Bytes>,
        budget: SpanRelease,
    ) -> Result<Queued, SubmitError> {
        match work {
            Work::Prepared {
                prepared,
                spans,
                incoming,
            } => self.submit_prepared(prepared, spans, incoming, payload, budget),
            Work::Batch(batch) => self.send_to_worker(batch, payload, budget),
        }
    }

    fn send_to_worker(
        &self,
        batch: SpanBatch,
        payload: Option<Bytes>,
        budget: SpanRelease,
    ) -> Result<Queued, SubmitError> {
        let (ack, done) = oneshot::channel();
        let sent = self.tx.try_send(Envelope {
            batch,
            payload,
            ack,
            budget,
        });
        sent.map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Full,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })?;
        Ok(Queued(done))
    }

    /// Hands a prepared batch to the store's commit thread and its payload to every forward
    /// queue's, without a worker thread in between and without waiting: the last of those
    /// writes to become durable answers the returned [`Queued`] and returns the batch's
    /// spans to the budget. A write that cannot be queued refuses the whole batch at once
    /// (a queue that already took it forwards it anyway: a duplicate, as with any retry).
    fn submit_prepared(
        &self,
        prepared: Prepared,
        spans: usize,
        incoming: Incoming,
        payload: Option<Bytes>,
        budget: SpanRelease,
    ) -> Result<Queued, SubmitError> {
        let forward = self.hooks.forward.get();
        let payload = match (forward, payload) {
            (Some(f), Some(p)) => Some((f, p)),
            // Forwarding was set up after this batch was submitted (startup misuse):
            // refuse rather than store without forwarding; the client retries.
            (Some(_), None) => return Err(SubmitError::Closed),
            (None, _) => None,
        };
        let (ack, done) = oneshot::channel();
        // The submission is itself a part until every write is handed out, so that no write
        // completing early can answer before the others are queued; a refusal (`?`) drops
        // the parts not handed out, which counts them as done, so the budget always comes
        // back.
        let submission = Joint::start(ack, budget, Arc::clone(&self.metrics));
        // Before any commit thread can see the batch: they wait while any is announced.
        drop(incoming);
        if let Some((forward, payload)) = payload {
            let spans = u32::try_from(spans).unwrap_or(u32::MAX);
            forward
                .submit_payload(&payload, spans, || {
                    let part = submission.another();
                    AppendDone::new(move |r| {
                        part.complete(r.map_err(|e| SubmitError::Forward(e.into())));
                    })
                })
                .map_err(|e| match e {
                    ForwardError::Queue(QueueError::Busy { .. }) => SubmitError::Full,
                    e => SubmitError::Forward(e),
                })?;
        }
        let part = submission.another();
        self.store
            .submit_prepared(
                prepared,
                WriteDone::new(move |r| part.complete(r.map_err(SubmitError::Store))),
            )
            .map_err(|e| match e {
                StoreError::Busy => SubmitError::Full,
                e => SubmitError::Store(e),
            })?;
        submission.complete(Ok(()));
        Ok(Queued(done))
    }

    /// A handle that reads the queue depth without keeping the pipeline open.
    pub fn probe(&self) -> PipelineProbe {
        PipelineProbe {
            tx: self.tx.downgrade(),
            budget: Arc::clone(&self.spans),
        }
    }
}

/// The writes one prepared batch waits for (the store's, each forward queue's), answered
/// together when the last one completes.
#[derive(Debug)]
struct Joint {
    remaining: AtomicUsize,
    /// The first failure.
    error: parking_lot::Mutex<Option<SubmitError>>,
    finish: parking_lot::Mutex<Option<Finish>>,
}

#[derive(Debug)]
struct Finish {
    ack: oneshot::Sender<Result<(), SubmitError>>,
    budget: SpanRelease,
    started: Instant,
    metrics: Arc<Metrics>,
}

impl Joint {
    /// A joint of one part, the submission; add the writes with [`Part::another`].
    fn start(
        ack: oneshot::Sender<Result<(), SubmitError>>,
        mut budget: SpanRelease,
        metrics: Arc<Metrics>,
    ) -> Part {
        budget.hand_over();
        Part(Some(Arc::new(Self {
            remaining: AtomicUsize::new(1),
            error: parking_lot::Mutex::new(None),
            finish: parking_lot::Mutex::new(Some(Finish {
                ack,
                budget,
                started: Instant::now(),
                metrics,
            })),
        })))
    }

    fn complete(&self, result: Result<(), SubmitError>) {
        if let Err(e) = result {
            self.error.lock().get_or_insert(e);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(finish) = self.finish.lock().take() else {
            return;
        };
        finish.metrics.store_write_latency(finish.started.elapsed());
        let result = match self.error.lock().take() {
            Some(e) => {
                tracing::error!(error = %e, "store write failed");
                Err(e)
            }
            None => Ok(()),
        };
        drop(finish.budget);
        // The submitter may have gone (client hung up); the batch is stored anyway.
        let _ = finish.ack.send(result);
    }
}

/// One write of a [`Joint`]; completing it, or dropping it unused (a refused submission),
/// counts it as done.
#[derive(Debug)]
struct Part(Option<Arc<Joint>>);

impl Part {
    /// Another part of the same joint. Call on a part not yet completed.
    fn another(&self) -> Self {
        if let Some(joint) = &self.0 {
            joint.remaining.fetch_add(1, Ordering::AcqRel);
        }
        Self(self.0.clone())
    }

    fn complete(mut self, result: Result<(), SubmitError>) {
        if let Some(joint) = self.0.take() {
            joint.complete(result);
        }
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if let Some(joint) = self.0.take() {
            joint.complete(Err(SubmitError::Closed));
        }
    }
}

/// A batch in the queue: [`wait`](Queued::wait) for the store's answer.
#[derive(Debug)]
#[must_use = "the batch is acknowledged only once `wait` returns Ok"]
pub struct Queued(oneshot::Receiver<Result<(), SubmitError>>);

impl Queued {
    /// Waits until the batch is written (and, with a durable store, on disk).
    pub async fn wait(self) -> Result<(), SubmitError> {
        self.0.await.map_err(|_| SubmitError::Closed)?
    }
}

/// Reads the queue depth; does not count as a sender, so it never delays the drain.
#[derive(Debug, Clone)]
pub struct PipelineProbe {
    tx: mpsc::WeakSender<Envelope>,
    budget: Arc<SpanBudget>,
}

impl PipelineProbe {
    /// Batches waiting for a worker, plus batches handed straight to the commit threads and
    /// not yet written (0 once the pipeline is closed and drained).
    pub fn queued(&self) -> usize {
        let waiting = self
            .tx
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity());
        waiting + self.budget.handed_over.load(Ordering::Acquire)
    }
}

/// Worker threads writing to the store concurrently (see the module docs).
pub const WORKERS: usize = 4;

/// The consuming end; [`run`](PipelineWorker::run) it on a blocking thread.
#[derive(Debug)]
pub struct PipelineWorker {
    rx: Arc<parking_lot::Mutex<mpsc::Receiver<Envelope>>>,
    store: Arc<dyn SpanStore>,
    metrics: Arc<Metrics>,
    hooks: Arc<Hooks>,
}

/// Creates a pipeline holding at most `capacity` (≥ 1) batches and `max_spans` spans.
pub fn pipeline(
    capacity: usize,
    max_spans: usize,
    store: Arc<dyn SpanStore>,
    metrics: Arc<Metrics>,
) -> (PipelineSender, PipelineWorker) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let rx = Arc::new(parking_lot::Mutex::new(rx));
    let spans = Arc::new(SpanBudget {
        queued: AtomicUsize::new(0),
        max: max_spans.max(1),
        handed_over: AtomicUsize::new(0),
    });
    let hooks = Arc::new(Hooks::default());
    (
        PipelineSender {
            tx,
            spans,
            store: Arc::clone(&store),
            hooks: Arc::clone(&hooks),
            metrics: Arc::clone(&metrics),
        },
        PipelineWorker {
            rx,
            store,
            metrics,
            hooks,
        },
    )
}

impl PipelineWorker {
    /// Also feeds every batch to the derived metrics, before it is written (on the submitting
    /// thread for a prepared batch). Call before the first submit; only the first call with
    /// `Some` counts.
    #[must_use]
    pub fn with_derived(self, derived: Option<Arc<Derived>>) -> Self {
        if let Some(d) = derived {
            let _ = self.hooks.derived.set(d);
        }
        self
    }

    /// Also appends every batch to the forward queues; the ack then waits for the store and
    /// the queues (see [`Forwarder::write_payload_through`]). Call before the first submit;
    /// only the first call with `Some` counts.
    #[must_use]
    pub fn with_forward(self, forward: Option<Arc<Forwarder>>) -> Self {
        if let Some(f) = forward {
            let _ = self.hooks.forward.set(f);
        }
        self
    }

    /// Writes batches with [`WORKERS`] threads (this one included) until every sender is gone
    /// and the queue is empty (the drain on shutdown). Blocks the calling thread.
    pub fn run(self) {
        let helpers: Vec<_> = (1..WORKERS)
            .filter_map(|i| {
                let worker = Self {
                    rx: Arc::clone(&self.rx),
                    store: Arc::clone(&self.store),
                    metrics: Arc::clone(&self.metrics),
                    hooks: Arc::clone(&self.hooks),
                };
                std::thread::Builder::new()
                    .name(format!("pipeline-{i}"))
                    .spawn(move || worker.drain())
                    .ok()
            })
            .collect();
        self.drain();
        for helper in helpers {
            // A panicking store write has already been reported by the panic hook.
            let _ = helper.join();
        }
    }

    fn drain(self) {
        let mut batches = 0u64;
        loop {
            // The lock is held only while waiting for the next batch, not while writing it.
            let next = self.rx.lock().blocking_recv();
            let Some(Envelope {
                batch,
                payload,
                ack,
                budget,
            }) = next
            else {
                break;
            };
            let forward = self.hooks.forward.get();
            let started = Instant::now();
            let result = self.write(batch, forward, payload);
            drop(budget);
            self.metrics.store_write_latency(started.elapsed());
            if let Err(e) = &result {
                tracing::error!(error = %e, "store write failed");
            }
            // The sender may have gone (client hung up); the batch is stored anyway.
            let _ = ack.send(result);
            batches += 1;
        }
        tracing::debug!(batches, "pipeline drained");
    }

    fn write(
        &self,
        batch: SpanBatch,
        forward: Option<&Arc<Forwarder>>,
        payload: Option<Bytes>,
    ) -> Result<(), SubmitError> {
        if let Some(derived) = self.hooks.derived.get() {
            derived.observe(&batch);
        }
        let spans = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        match (forward, payload) {
            (Some(f), Some(p)) => {
                f.write_payload_through(&p, spans, || self.store.write_batch(batch))
            }
            (Some(f), None) => f.write_through(batch, &*self.store),
            (None, _) => self.store.write_batch(batch).map_err(SubmitError::Store),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// A joint of the submission and two writes, with a budget of 10 spans admitted.
    fn joint() -> (
        Part,
        Arc<SpanBudget>,
        oneshot::Receiver<Result<(), SubmitError>>,
    ) {
        let budget = Arc::new(SpanBudget {
            queued: AtomicUsize::new(0),
            max: 100,
            handed_over: AtomicUsize::new(0),
        });
        assert!(budget.admit(10));
        let release = SpanRelease {
            budget: Arc::clone(&budget),
            spans: 10,
            handed_over: false,
        };
        let (ack, done) = oneshot::channel();
        let submission = Joint::start(ack, release, Arc::new(Metrics::default()));
        (submission, budget, done)
    }

    #[test]
    fn the_last_write_answers_and_returns_the_budget() {
        let (submission, budget, mut done) = joint();
        let store = submission.another();
        let queue = submission.another();
        submission.complete(Ok(()));
        store.complete(Ok(()));
        assert!(done.try_recv().is_err(), "one write still pending");
        assert_eq!(budget.queued.load(Ordering::Acquire), 10);
        assert_eq!(budget.handed_over.load(Ordering::Acquire), 1);
        queue.complete(Ok(()));
        assert!(done.try_recv().unwrap().is_ok());
        assert_eq!(budget.queued.load(Ordering::Acquire), 0);
        assert_eq!(budget.handed_over.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_write_completing_before_the_submission_ends_does_not_answer() {
        let (submission, _budget, mut done) = joint();
        submission.another().complete(Ok(()));
        assert!(done.try_recv().is_err());
        submission.complete(Ok(()));
        assert!(done.try_recv().unwrap().is_ok());
    }

    #[test]
    fn the_first_failure_is_the_answer() {
        let (submission, _budget, mut done) = joint();
        let store = submission.another();
        let queue = submission.another();
        submission.complete(Ok(()));
        queue.complete(Err(SubmitError::Full));
        store.complete(Err(SubmitError::Closed));
        assert!(matches!(done.try_recv().unwrap(), Err(SubmitError::Full)));
    }

    #[test]
    fn a_dropped_part_counts_as_a_failed_write_and_the_budget_comes_back() {
        let (submission, budget, mut done) = joint();
        let store = submission.another();
        // A refused submission drops the parts it did not hand out, and itself.
        drop(store);
        drop(submission);
        assert!(matches!(done.try_recv().unwrap(), Err(SubmitError::Closed)));
        assert_eq!(budget.queued.load(Ordering::Acquire), 0);
    }
}
