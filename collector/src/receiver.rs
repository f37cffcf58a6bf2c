//! OTLP trace receivers: gRPC ([`grpc`]) and HTTP ([`http`]), sharing one [`Ingest`] path.
//!
//! Protobuf requests (both transports) go to [`Ingest::export_protobuf`]: the request's bytes
//! are read into a borrowed [`BatchView`](crate::model::BatchView) (invalid spans become a
//! partial success), which the pipeline encodes for the store on this thread; then the
//! receiver waits for the store and counts everything. JSON requests are decoded into the
//! generated `ExportTraceServiceRequest` and go through [`Ingest::export`] (converted to the
//! internal model first).

pub mod grpc;
pub mod http;
pub mod json;
pub mod limits;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::forward::ForwardError;
use crate::metrics::{Metrics, Protocol, RefusalReason};
use crate::model::{SpanRejection, WireError, convert_request, parse_request};
use crate::pipeline::{PipelineSender, Queued, SubmitError};
use crate::store::StoreError;

/// Why a request was not stored. Every variant but [`Malformed`](Self::Malformed) is
/// retryable by the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The pipeline queue is full.
    #[error("the collector is overloaded, retry later")]
    Backpressure,
    /// The collector is shutting down.
    #[error("the collector is shutting down")]
    ShuttingDown,
    /// The store failed.
    #[error("storage failure: {0}")]
    Store(#[source] StoreError),
    /// A forward queue failed.
    #[error("forward queue failure: {0}")]
    Forward(#[source] ForwardError),
    /// The request is not a valid protobuf `ExportTraceServiceRequest` (not retryable: 400 /
    /// `INVALID_ARGUMENT`).
    #[error("invalid protobuf: {0}")]
    Malformed(#[source] WireError),
}

/// The transport-independent ingest path.
#[derive(Debug)]
pub struct Ingest {
    pipeline: PipelineSender,
    metrics: Arc<Metrics>,
    retry_after: Duration,
    decode_budget: Arc<limits::DecodeBudget>,
}

impl Ingest {
    /// Creates the ingest path; `retry_after` is the delay suggested to throttled clients.
    pub fn new(pipeline: PipelineSender, metrics: Arc<Metrics>, retry_after: Duration) -> Self {
        Self {
            pipeline,
            metrics,
            retry_after,
            decode_budget: limits::DecodeBudget::new(limits::DECODE_BUDGET_BYTES),
        }
    }

    /// Replaces the decode budget with one of `bytes` (default
    /// [`DECODE_BUDGET_BYTES`](limits::DECODE_BUDGET_BYTES)).
    #[must_use]
    pub fn with_decode_budget(mut self, bytes: usize) -> Self {
        self.decode_budget = limits::DecodeBudget::new(bytes);
        self
    }

    /// The in-flight byte budget of request decodes, shared by both receivers.
    pub fn decode_budget(&self) -> &Arc<limits::DecodeBudget> {
        &self.decode_budget
    }

    /// The delay suggested to clients on backpressure.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The shared metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Converts, stores and answers one decoded export request (the JSON receiver's path;
    /// forwarded batches are re-encoded from the converted spans).
    pub async fn export(
        &self,
        protocol: Protocol,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let converted = convert_request(request);
        let valid = converted.batch.len() as u64;
        self.received(protocol, valid, converted.rejected);
        if valid > 0
            && let Err(e) = self.pipeline.submit(converted.batch).await
        {
            return Err(self.refused(protocol, valid, e));
        }
        Ok(self.accepted(
            protocol,
            valid,
            converted.rejected,
            converted.first_rejection,
        ))
    }

    /// Reads, stores and answers one protobuf-encoded export request (decompressed); large
    /// requests are read on a blocking thread (see [`limits::BLOCKING_DECODE_BYTES`]).
    pub async fn export_protobuf(
        self: &Arc<Self>,
        protocol: Protocol,
        request: Bytes,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let staged = if request.len() < limits::BLOCKING_DECODE_BYTES {
            self.stage(protocol, request)
        } else {
            let this = Arc::clone(self);
            tokio::task::spawn_blocking(move || this.stage(protocol, request))
                .await
                .map_err(|_| IngestError::ShuttingDown)?
        }?;
        if let Some(queued) = staged.queued
            && let Err(e) = queued.wait().await
        {
            return Err(self.refused(protocol, staged.valid, e));
        }
        Ok(self.accepted(
            protocol,
            staged.valid,
            staged.rejected,
            staged.first_rejection,
        ))
    }

    /// Reads `request` and queues its valid spans (the synchronous half of
    /// [`export_protobuf`](Self::export_protobuf)).
    fn stage(&self, protocol: Protocol, request: Bytes) -> Result<Staged, IngestError> {
        // Announced before decoding, so that the group commits can wait for it.
        let incoming = self.pipeline.incoming();
        // Counted by the receiver, which answers it (400 / INVALID_ARGUMENT).
        let parsed = parse_request(&request).map_err(IngestError::Malformed)?;
        let valid = parsed.batch.len() as u64;
        self.received(protocol, valid, parsed.rejected);
        let queued = if valid > 0 {
            // Forwarded as received when every span is valid (no re-encoding).
            let forward = (parsed.rejected == 0).then(|| request.clone());
            let queued = self
                .pipeline
                .enqueue_view(&parsed.batch, forward, incoming)
                .map_err(|e| self.refused(protocol, valid, e))?;
            Some(queued)
        } else {
            None
        };
        Ok(Staged {
            valid,
            rejected: parsed.rejected,
            first_rejection: parsed.first_rejection,
            queued,
        })
    }

    fn received(&self, protocol: Protocol, valid: u64, rejected: u64) {
        self.metrics.spans_received(protocol, valid + rejected);
        if rejected > 0 {
            self.metrics
                .spans_refused(protocol, RefusalReason::InvalidSpan, rejected);
        }
    }

    /// Counts a refused submission of `valid` spans and says why to the client.
    fn refused(&self, protocol: Protocol, valid: u64, e: SubmitError) -> IngestError {
        let (reason, error) = match e {
            SubmitError::Full => (RefusalReason::Backpressure, IngestError::Backpressure),
            SubmitError::Closed => (RefusalReason::ShuttingDown, IngestError::ShuttingDown),
            SubmitError::Store(e) => (RefusalReason::StoreFailure, IngestError::Store(e)),
            SubmitError::Forward(e) => (RefusalReason::StoreFailure, IngestError::Forward(e)),
        };
        self.metrics.spans_refused(protocol, reason, valid);
        self.metrics.request_refused(protocol, reason);
        tracing::debug!(protocol = protocol.as_str(), spans = valid, %error, "export refused");
        error
    }

    /// Counts accepted spans and builds the answer (a partial success when some were invalid).
    fn accepted(
        &self,
        protocol: Protocol,
        valid: u64,
        rejected: u64,
        first_rejection: Option<SpanRejection>,
    ) -> ExportTraceServiceResponse {
        if valid > 0 {
            self.metrics.spans_accepted(protocol, valid);
        }
        let partial_success = first_rejection.map(|first| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: format!("{rejected} span(s) rejected; first: {first}"),
        });
        ExportTraceServiceResponse { partial_success }
    }
}

/// A request read and queued, not yet acknowledged.
#[derive(Debug)]
struct Staged {
    valid: u64,
    rejected: u64,
    first_rejection: Option<SpanRejection>,
    queued: Option<Queued>,
}
