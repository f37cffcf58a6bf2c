//! OTLP/HTTP receiver: `POST /v1/traces` with protobuf or JSON bodies.
//!
//! Status codes follow `otlp-receiver.md`: 400 undecodable or unsupported encoding, 405 wrong
//! method, 413 too large, 415 unsupported content type, 503 + `Retry-After` when overloaded.
//! Error bodies are a `google.rpc.Status` in the request's format (JSON when the request's
//! format is unknown).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;

use super::limits::{BodyError, ContentEncoding, DecodePermit, decompress, drain};
use super::{Ingest, IngestError, json};
use crate::metrics::{Protocol, RefusalReason};

/// The OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// google.rpc.Code values used in error bodies.
const RPC_INVALID_ARGUMENT: i32 = 3;
const RPC_RESOURCE_EXHAUSTED: i32 = 8;
const RPC_UNAVAILABLE: i32 = 14;

/// Body format, taken from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let mime = value.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            PROTOBUF => Some(Self::Protobuf),
            JSON => Some(Self::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => PROTOBUF,
            Self::Json => JSON,
        }
    }
}

#[derive(Debug)]
struct HttpState {
    ingest: Arc<Ingest>,
    max_request_bytes: usize,
}

/// The OTLP/HTTP router.
pub fn router(ingest: Arc<Ingest>, max_request_bytes: usize) -> Router {
    Router::new()
        .route(TRACES_PATH, post(export))
        .with_state(Arc::new(HttpState {
            ingest,
            max_request_bytes,
        }))
}

async fn export(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let response = handle(&state, &headers, body).await;
    state
        .ingest
        .metrics()
        .ingest_latency(Protocol::Http, started.elapsed());
    response
}

async fn handle(state: &HttpState, headers: &HeaderMap, mut body: Body) -> Response {
    let metrics = state.ingest.metrics();
    let refuse = |format, status, rpc_code, reason, message: String| {
        metrics.request_refused(Protocol::Http, reason);
        tracing::debug!(%status, %message, "OTLP/HTTP request refused");
        status_response(format, status, rpc_code, &message)
    };
    let Some(format) = Format::from_headers(headers) else {
        let got = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return refuse(
            Format::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RPC_INVALID_ARGUMENT,
            RefusalReason::UnsupportedMediaType,
            format!("unsupported content type {got:?}; use {PROTOBUF} or {JSON}"),
        );
    };
    let body_error = |e: BodyError| {
        let (status, code, reason) = match &e {
            BodyError::TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                RPC_RESOURCE_EXHAUSTED,
                RefusalReason::TooLarge,
            ),
            BodyError::UnsupportedEncoding(_) => (
                StatusCode::BAD_REQUEST,
                RPC_INVALID_ARGUMENT,
                RefusalReason::UnsupportedEncoding,
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                RPC_INVALID_ARGUMENT,
                RefusalReason::Malformed,
            ),
        };
        refuse(format, status, code, reason, e.to_string())
    };
    let encoding = match ContentEncoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("<non-ascii>")),
    ) {
        Ok(e) => e,
        Err(e) => return body_error(e),
    };
    let limit = state.max_request_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return body_error(BodyError::TooLarge { limit });
    }
    let over_budget = || {
        metrics.request_refused(Protocol::Http, RefusalReason::Backpressure);
        unavailable(
            format,
            state.ingest.retry_after(),
            &BodyError::OverBudget.to_string(),
        )
    };
    // Held until the export is answered: bounds the memory of concurrent requests. It covers
    // the declared length before the body is read (a body without one, each chunk as it
    // comes), then the decompressed body before it is allocated.
    let declared = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let Some(mut permit) = state.ingest.decode_budget().try_acquire(declared) else {
        drain(std::pin::Pin::new(&mut body), limit).await;
        return over_budget();
    };
    let raw = match read_body(&mut body, limit, &mut permit).await {
        Ok(raw) => raw,
        Err(BodyError::OverBudget) => {
            // Read to its end, keeping nothing, so that the client gets the answer rather
            // than a connection closed under its upload.
            drop(permit);
            drain(std::pin::Pin::new(&mut body), limit).await;
            return over_budget();
        }
        Err(e) => return body_error(e),
    };
    let plain = match decompress(encoding, raw, limit, &mut permit) {
        Ok(plain) => plain,
        Err(BodyError::OverBudget) => return over_budget(),
        Err(e) => return body_error(e),
    };
    let malformed = |message: String| {
        refuse(
            format,
            StatusCode::BAD_REQUEST,
            RPC_INVALID_ARGUMENT,
            RefusalReason::Malformed,
            message,
        )
    };
    let result = match format {
        Format::Protobuf => state.ingest.export_protobuf(Protocol::Http, plain).await,
        Format::Json => match json::decode_request(&plain) {
            Ok(request) => state.ingest.export(Protocol::Http, request).await,
            Err(e) => return malformed(e.to_string()),
        },
    };
    match result {
        Ok(response) => success_response(format, &response),
        Err(e @ IngestError::Malformed(_)) => malformed(e.to_string()),
        Err(e) => {
            if matches!(e, IngestError::Store(_)) {
                tracing::warn!(error = %e, "OTLP/HTTP export failed in the store");
            }
            unavailable(format, state.ingest.retry_after(), &e.to_string())
        }
    }
}

/// Reads the whole body (at most `limit` bytes), growing `permit` to cover what has arrived
/// before keeping it.
async fn read_body(
    body: &mut Body,
    limit: usize,
    permit: &mut DecodePermit,
) -> Result<Bytes, BodyError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len = len.saturating_add(data.len());
        if len > limit {
            return Err(BodyError::TooLarge { limit });
        }
        if len > permit.bytes() && !permit.try_resize(len) {
            return Err(BodyError::OverBudget);
        }
        chunks.push(data);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

fn success_response(format: Format, response: &ExportTraceServiceResponse) -> Response {
    let body = match format {
        Format::Protobuf => response.encode_to_vec(),
        Format::Json => {
            let value = match &response.partial_success {
                Some(p) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": p.rejected_spans.to_string(),
                        "errorMessage": p.error_message,
                    }
                }),
                None => serde_json::json!({}),
            };
            value.to_string().into_bytes()
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// A `google.rpc.Status` body in `format`.
/// 503 with `Retry-After`.
fn unavailable(format: Format, retry_after: std::time::Duration, message: &str) -> Response {
    let mut response = status_response(
        format,
        StatusCode::SERVICE_UNAVAILABLE,
        RPC_UNAVAILABLE,
        message,
    );
    let retry = retry_after.as_secs().max(1);
    if let Ok(value) = HeaderValue::from_str(&retry.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn status_response(format: Format, status: StatusCode, code: i32, message: &str) -> Response {
    let body = match format {
        Format::Protobuf => tonic_types::Status {
            code,
            message: message.to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Format::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    };
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}
