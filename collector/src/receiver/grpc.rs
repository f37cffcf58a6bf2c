//! OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! gzip and zstd message compression are accepted. The size limit covers both the message as
//! sent and the decompressed message. An oversized message is reported as tonic does, as
//! `OUT_OF_RANGE`, which OTLP clients would retry (and so is one from the generated service);
//! [`ResourceExhaustedLayer`] rewrites it to `RESOURCE_EXHAUSTED` without RetryInfo (not
//! retryable), as the OTLP spec requires, and an undecodable message (tonic: `INTERNAL`) into
//! `INVALID_ARGUMENT`; both are counted.
//!
//! The served `TraceService` is [`raw::RawTraceServer`]: the generated server's behaviour, but
//! it keeps the request's bytes (forwarded as received) and reads them without tonic's generic
//! unary path. [`server::serve`] accepts the connections and serves them with hyper, a
//! connection's only stream in flight running in the connection's own task.

pub mod raw;
pub mod server;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderValue;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic_types::{ErrorDetails, StatusExt as _};

use super::limits::{BodyError, DecodeBudget};
use super::{Ingest, IngestError};
use crate::metrics::{Metrics, Protocol, RefusalReason};

/// The gRPC `TraceService` implementation.
#[derive(Debug)]
pub struct GrpcReceiver {
    ingest: Arc<Ingest>,
}

impl GrpcReceiver {
    /// Wraps the shared ingest path.
    pub fn new(ingest: Arc<Ingest>) -> Self {
        Self { ingest }
    }
}

/// The tonic service with compression and the size limit configured (keeps the request bytes).
pub fn service(ingest: Arc<Ingest>, max_request_bytes: usize) -> raw::RawTraceServer {
    raw::RawTraceServer::new(GrpcReceiver::new(ingest), max_request_bytes)
}

/// The generated tonic service (re-encodes forwarded batches); same configuration (requests in
/// gzip or zstd accepted, responses not compressed).
pub fn generated_service(
    ingest: Arc<Ingest>,
    max_request_bytes: usize,
) -> TraceServiceServer<GrpcReceiver> {
    TraceServiceServer::new(GrpcReceiver::new(ingest))
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(max_request_bytes)
}

impl GrpcReceiver {
    /// The decode budget that requests' bytes are admitted to.
    fn decode_budget(&self) -> &Arc<DecodeBudget> {
        self.ingest.decode_budget()
    }

    /// Counts a request refused for want of decode budget and answers it: `UNAVAILABLE` with
    /// a retry delay.
    fn over_budget(&self) -> tonic::Status {
        self.ingest
            .metrics()
            .request_refused(Protocol::Grpc, RefusalReason::Backpressure);
        tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            BodyError::OverBudget.to_string(),
            ErrorDetails::with_retry_info(Some(self.ingest.retry_after())),
        )
    }

    /// Handles one export from its bytes ([`raw::RawExport`], admitted to the decode budget):
    /// decode, export. The permit is held until the export is answered.
    async fn export_raw(
        &self,
        raw: raw::RawExport,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let metrics = self.ingest.metrics();
        let _permit = raw.permit;
        let started = Instant::now();
        let result = self
            .ingest
            .export_protobuf(Protocol::Grpc, raw.encoded)
            .await;
        if let Err(e @ IngestError::Malformed(_)) = &result {
            metrics.request_refused(Protocol::Grpc, RefusalReason::Malformed);
            return Err(tonic::Status::invalid_argument(e.to_string()));
        }
        metrics.ingest_latency(Protocol::Grpc, started.elapsed());
        result
            .map(tonic::Response::new)
            .map_err(|e| unavailable(&e, self.ingest.retry_after()))
    }

    async fn export_decoded(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let started = Instant::now();
        let result = self.ingest.export(Protocol::Grpc, request).await;
        self.ingest
            .metrics()
            .ingest_latency(Protocol::Grpc, started.elapsed());
        match result {
            Ok(response) => Ok(tonic::Response::new(response)),
            Err(e) => Err(unavailable(&e, self.ingest.retry_after())),
        }
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.export_decoded(request.into_inner()).await
    }
}

/// `UNAVAILABLE` with a `RetryInfo` detail: the client should retry after `delay`.
fn unavailable(error: &IngestError, delay: Duration) -> tonic::Status {
    if matches!(error, IngestError::Store(_)) {
        tracing::warn!(%error, "OTLP/gRPC export failed in the store");
    }
    tonic::Status::with_error_details(
        tonic::Code::Unavailable,
        error.to_string(),
        ErrorDetails::with_retry_info(Some(delay)),
    )
}

/// Tower layer rewriting tonic's oversized-frame `OUT_OF_RANGE` into `RESOURCE_EXHAUSTED`.
#[derive(Debug, Clone)]
pub struct ResourceExhaustedLayer {
    metrics: Arc<Metrics>,
}

impl ResourceExhaustedLayer {
    /// Counts the rewritten refusals in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for ResourceExhaustedLayer {
    type Service = ResourceExhausted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResourceExhausted {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// Service produced by [`ResourceExhaustedLayer`].
#[derive(Debug, Clone)]
pub struct ResourceExhausted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// gRPC status numbers as they appear in the `grpc-status` header.
const GRPC_OUT_OF_RANGE: &str = "11";
const GRPC_RESOURCE_EXHAUSTED: &str = "8";
const GRPC_INTERNAL: &str = "13";
const GRPC_INVALID_ARGUMENT: &str = "3";

impl<S, Req, B> tower::Service<Req> for ResourceExhausted<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let future = self.inner.call(request);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let status = headers.get("grpc-status").and_then(|v| v.to_str().ok());
            let message = headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let rewrite = match status {
                Some(GRPC_OUT_OF_RANGE) if message.contains("too%20large") => {
                    Some((GRPC_RESOURCE_EXHAUSTED, RefusalReason::TooLarge))
                }
                Some(GRPC_RESOURCE_EXHAUSTED) => {
                    Some((GRPC_RESOURCE_EXHAUSTED, RefusalReason::TooLarge))
                }
                Some(GRPC_INTERNAL) if message.contains("failed%20to%20decode") => {
                    Some((GRPC_INVALID_ARGUMENT, RefusalReason::Malformed))
                }
                _ => None,
            };
            if let Some((code, reason)) = rewrite {
                headers.insert("grpc-status", HeaderValue::from_static(code));
                metrics.request_refused(Protocol::Grpc, reason);
            }
            Ok(response)
        })
    }
}
