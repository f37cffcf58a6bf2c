//! Forwarding to upstream OTLP endpoints through persistent, fsynced queues.
//!
//! ```text
//! receiving task ── the request's protobuf bytes ──────────┬─► queue A: commit thread (group commit, fdatasync)
//!      │   (re-encoded from the valid spans only when some   └─► queue B: …
//!      │    were rejected, or for a JSON request)
//!      └─► the prepared chunk ─► store.submit_prepared (the store's commit thread, concurrently)
//!      ack the client once the store and every queue have the batch (completion callbacks;
//!      a memory store gets the batch on a pipeline worker, which writes both and waits)
//!
//! queue ──► sender (per upstream): take records, merge into one request (≤ max_batch_spans),
//!           ≤ max_in_flight requests, retry with backoff ──► upstream (gRPC or HTTP/protobuf)
//!           accepted / permanently rejected ──► cursor (fdatasync) ──► delete covered segments
//! ```
//!
//! A span is acknowledged to its sender only after it is durable in every upstream's queue
//! (and in the local store, unless `--storage none`), and leaves the queue only after the
//! upstream acknowledged it, so neither a restart, a `kill -9` nor a long outage loses it. After
//! a crash, requests that were in flight (sent but whose acknowledgement was not yet recorded)
//! are sent again: duplicates are bounded by `max_in_flight × max_batch_spans` spans per
//! upstream. When a queue reaches its disk cap, ingest is refused with 503 / `UNAVAILABLE` (the
//! pipeline's back-pressure answer) until the upstream catches up. See `docs/forwarding.md`.

pub mod body;
pub mod config;
mod cursor;
pub mod encode;
pub mod exporter;
pub mod metrics;
pub mod queue;
pub mod retry;
mod segment;
pub mod sender;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::config::{ForwardingConfig, Upstream};
use self::exporter::{Exporter, ExporterError, ExporterSettings};
use self::metrics::{ForwardMetrics, UpstreamCounters};
use self::queue::{AppendDone, PendingAppend, Queue, QueueConfig, QueueError};
use self::sender::Sender;
use self::tls::TlsError;
use crate::group::{self, Announced, Incoming};
use crate::model::SpanBatch;
use crate::pipeline::SubmitError;
use crate::store::{SpanStore, StoreError};

/// Directory of the queues, under the data directory.
pub const QUEUE_DIR: &str = "forward";
/// Largest segment file of a queue (also at most 1/8 of the disk cap). Each is written full of
/// zeros ahead of its use (see `collector/src/prealloc.rs`), so this is also the size of that
/// write.
pub const MAX_SEGMENT_BYTES: u64 = 8 << 20;
/// How long the senders may take to finish their requests in flight at shutdown.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A forwarding failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// A queue failed (open, write or fsync).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// An exporter could not be built.
    #[error(transparent)]
    Exporter(#[from] ExporterError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

#[derive(Debug)]
struct UpstreamHandle {
    upstream: Upstream,
    queue: Arc<Queue>,
    counters: Arc<UpstreamCounters>,
}

/// The queues of every upstream; shared by the pipeline workers and the senders.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<UpstreamHandle>,
    metrics: Arc<ForwardMetrics>,
    settings: ForwardingConfig,
    /// Shared by every queue's commit thread ([`crate::group`]).
    announced: Announced,
}

/// Appends in progress to every queue.
#[derive(Debug)]
pub struct Appended(Vec<PendingAppend>);

impl Appended {
    /// Blocks until the batch is durable in every queue.
    pub fn wait(self) -> Result<(), ForwardError> {
        let mut first = None;
        for pending in self.0 {
            if let Err(e) = pending.wait() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// The queue directory of an upstream.
pub fn queue_dir(data_dir: &Path, upstream: &Upstream) -> PathBuf {
    data_dir.join(QUEUE_DIR).join(&upstream.label)
}

impl Forwarder {
    /// Opens (recovers) every upstream's queue under `data_dir`. Blocking I/O.
    pub fn open(
        data_dir: &Path,
        settings: &ForwardingConfig,
        upstreams: Vec<Upstream>,
    ) -> Result<Self, ForwardError> {
        let mut metrics = ForwardMetrics::default();
        let mut handles = Vec::with_capacity(upstreams.len());
        let announced = Announced::default();
        for upstream in upstreams {
            let config = QueueConfig {
                dir: queue_dir(data_dir, &upstream),
                max_bytes: settings.max_queue_bytes,
                segment_bytes: MAX_SEGMENT_BYTES.min(settings.max_queue_bytes / 8).max(1),
                announced: announced.clone(),
                commit_linger: group::DEFAULT_LINGER,
            };
            let queue = Arc::new(Queue::open(&upstream.label, &config)?);
            let counters = metrics.add(&upstream.label, Arc::clone(queue.stats()));
            handles.push(UpstreamHandle {
                upstream,
                queue,
                counters,
            });
        }
        Ok(Self {
            upstreams: handles,
            metrics: Arc::new(metrics),
            settings: settings.clone(),
            announced,
        })
    }

    /// The forwarding metrics.
    pub fn metrics(&self) -> &Arc<ForwardMetrics> {
        &self.metrics
    }

    /// Whether every queue is below its disk cap; if not, counts `spans` as refused by the
    /// full queues.
    pub fn admit(&self, spans: usize) -> bool {
        let mut room = true;
        for u in &self.upstreams {
            if !u.queue.has_room() {
                room = false;
                u.counters
                    .refused
                    .fetch_add(spans as u64, Ordering::Relaxed);
            }
        }
        room
    }

    /// Encodes the batch once and hands it to every queue's commit thread.
    pub fn append(&self, batch: &SpanBatch) -> Result<Appended, ForwardError> {
        let spans = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        self.append_payload(&Bytes::from(encode::encode_spans(&batch.spans)), spans)
    }

    /// Hands an encoded `ExportTraceServiceRequest` of `spans` spans to every queue's commit
    /// thread (the received request's bytes, or [`encode::encode_spans`]).
    pub fn append_payload(&self, payload: &Bytes, spans: u32) -> Result<Appended, ForwardError> {
        let pending = self
            .upstreams
            .iter()
            .map(|u| u.queue.append(payload.clone(), spans))
            .collect::<Result<_, _>>()?;
        Ok(Appended(pending))
    }

    /// Hands an encoded `ExportTraceServiceRequest` of `spans` spans to every queue's commit
    /// thread without waiting; `done()` makes each queue's completion callback. Stops at the
    /// first queue that cannot take it now ([`Queue::submit`]), whose callback is dropped.
    pub fn submit_payload(
        &self,
        payload: &Bytes,
        spans: u32,
        mut done: impl FnMut() -> AppendDone,
    ) -> Result<(), ForwardError> {
        for u in &self.upstreams {
            u.queue.submit(payload.clone(), spans, done())?;
        }
        Ok(())
    }

    /// Announces a payload that the caller is about to
    /// [`submit_payload`](Self::submit_payload) to every queue's commit thread; drop it
    /// before submitting ([`crate::group`]).
    pub fn incoming(&self) -> Incoming {
        self.announced.announce()
    }

    /// How many queues [`submit_payload`](Self::submit_payload) writes to.
    pub fn queues(&self) -> usize {
        self.upstreams.len()
    }

    /// The pipeline's durable write with forwarding (after [`admit`](Self::admit)): appends
    /// to the queues and writes to the store concurrently, and returns once both are durable.
    pub fn write_through(
        &self,
        batch: SpanBatch,
        store: &dyn SpanStore,
    ) -> Result<(), SubmitError> {
        let appended = self.append(&batch).map_err(SubmitError::Forward)?;
        let stored = store.write_batch(batch);
        let queued = appended.wait();
        stored?;
        queued.map_err(SubmitError::Forward)
    }

    /// Like [`write_through`](Self::write_through) with the payload already encoded and the
    /// store write given as `store_write` (a prepared batch).
    pub fn write_payload_through(
        &self,
        payload: &Bytes,
        spans: u32,
        store_write: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), SubmitError> {
        let appended = self
            .append_payload(payload, spans)
            .map_err(SubmitError::Forward)?;
        let stored = store_write();
        let queued = appended.wait();
        stored?;
        queued.map_err(SubmitError::Forward)
    }

    /// Starts one sender per upstream (inside a tokio runtime); they run until `stop`.
    pub fn start(&self, stop: &CancellationToken) -> Result<JoinSet<()>, ForwardError> {
        let mut tasks = JoinSet::new();
        for u in &self.upstreams {
            let connector = tls::connector(u.upstream.protocol, u.upstream.ca_file.as_deref())?;
            let exporter = Exporter::new(
                &ExporterSettings {
                    endpoint: u.upstream.endpoint.clone(),
                    protocol: u.upstream.protocol,
                    headers: u.upstream.headers.clone(),
                    compression: u.upstream.compression,
                    timeout: self.settings.timeout(),
                },
                connector,
            )?;
            tracing::info!(
                upstream = %u.upstream.label,
                endpoint = %u.upstream.endpoint,
                protocol = %u.upstream.protocol,
                queued_spans = u.queue.stats().spans.load(Ordering::Relaxed),
                "forwarding"
            );
            let sender = Sender {
                label: u.upstream.label.clone(),
                queue: Arc::clone(&u.queue),
                exporter,
                counters: Arc::clone(&u.counters),
                max_batch_spans: self.settings.max_batch_spans,
                max_in_flight: self.settings.max_in_flight,
                retry: self.settings.retry_intervals(),
            };
            tasks.spawn(sender.run(stop.clone()));
        }
        Ok(tasks)
    }

    /// Stops the queues' commit threads (after the pipeline has drained).
    pub fn close(&self) {
        for u in &self.upstreams {
            u.queue.close();
        }
    }
}

/// The running forwarder: queues plus senders, stopped by [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct ForwardRuntime {
    forwarder: Arc<Forwarder>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl ForwardRuntime {
    /// Opens the queues (on a blocking thread) and starts the senders.
    pub async fn start(
        data_dir: PathBuf,
        settings: ForwardingConfig,
        upstreams: Vec<Upstream>,
    ) -> Result<Self, ForwardError> {
        let opened =
            tokio::task::spawn_blocking(move || Forwarder::open(&data_dir, &settings, upstreams))
                .await
                .map_err(|e| {
                    ForwardError::Queue(QueueError::Io {
                        queue: "*".to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    })
                })??;
        let forwarder = Arc::new(opened);
        let stop = CancellationToken::new();
        let tasks = forwarder.start(&stop)?;
        Ok(Self {
            forwarder,
            stop,
            tasks,
        })
    }

    /// The forwarder, for the pipeline.
    pub fn forwarder(&self) -> &Arc<Forwarder> {
        &self.forwarder
    }

    /// Stops the senders (requests in flight get up to [`STOP_TIMEOUT`]; whatever is not
    /// acknowledged stays queued for the next start) and closes the queues. Call after the
    /// pipeline has drained.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let drained = tokio::time::timeout(STOP_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "forward senders did not stop in time; unacknowledged spans stay queued"
            );
            self.tasks.abort_all();
        }
        let forwarder = Arc::clone(&self.forwarder);
        let _ = tokio::task::spawn_blocking(move || forwarder.close()).await;
    }
}
