//! OTLP trace receivers: gRPC ([`grpc`]) and HTTP ([`http`]), sharing one [`Ingest`] path.
//!
//! Both transports decode into the generated `ExportTraceServiceRequest`, then call
//! [`Ingest::export`]: convert to the internal model (invalid spans become a partial success),
//! submit to the pipeline and wait for the store, count everything.

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
use crate::model::convert_request;
use crate::pipeline::{PipelineSender, SubmitError};
use crate::store::StoreError;

/// Why a decoded request was not stored. Every variant is retryable by the client.
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

    /// Converts, stores and answers one export request.
    pub async fn export(
        &self,
        protocol: Protocol,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        self.export_encoded(protocol, request, None).await
    }

    /// Like [`export`](Self::export); `encoded` is the protobuf the request was decoded from,
    /// forwarded as is when every span is valid (no re-encoding).
    pub async fn export_encoded(
        &self,
        protocol: Protocol,
        request: ExportTraceServiceRequest,
        encoded: Option<Bytes>,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let converted = convert_request(request);
        let valid = converted.batch.len() as u64;
        self.metrics
            .spans_received(protocol, valid + converted.rejected);
        if converted.rejected > 0 {
            self.metrics
                .spans_refused(protocol, RefusalReason::InvalidSpan, converted.rejected);
        }
        if valid > 0 {
            let encoded = encoded.filter(|_| converted.rejected == 0);
            if let Err(e) = self.pipeline.submit_request(converted.batch, encoded).await {
                let (reason, error) = match e {
                    SubmitError::Full => (RefusalReason::Backpressure, IngestError::Backpressure),
                    SubmitError::Closed => (RefusalReason::ShuttingDown, IngestError::ShuttingDown),
                    SubmitError::Store(e) => (RefusalReason::StoreFailure, IngestError::Store(e)),
                    SubmitError::Forward(e) => {
                        (RefusalReason::StoreFailure, IngestError::Forward(e))
                    }
                };
                self.metrics.spans_refused(protocol, reason, valid);
                self.metrics.request_refused(protocol, reason);
                tracing::debug!(protocol = protocol.as_str(), spans = valid, %error, "export refused");
                return Err(error);
            }
            self.metrics.spans_accepted(protocol, valid);
        }
        let partial_success = converted
            .first_rejection
            .map(|first| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(converted.rejected).unwrap_or(i64::MAX),
                error_message: format!("{} span(s) rejected; first: {first}", converted.rejected),
            });
        Ok(ExportTraceServiceResponse { partial_success })
    }
}
