//! A loopback OTLP trace receiver that records everything it is sent.
//!
//! [`OtlpReceiver::start`] binds two servers on `127.0.0.1` with ephemeral ports:
//!
//! - a tonic gRPC `TraceService` (accepts gzip-compressed messages), see
//!   [`OtlpReceiver::grpc_endpoint`];
//! - an HTTP server with `POST /v1/traces` accepting `application/x-protobuf` and
//!   `application/json` (OTLP/JSON), optionally with `Content-Encoding: gzip`, see
//!   [`OtlpReceiver::http_traces_url`].
//!
//! Every request is recorded as a [`RecordedRequest`]; [`OtlpReceiver::spans`] flattens the
//! accepted ones into [`RecordedSpan`]s. [`OtlpReceiver::set_behavior`] injects failures
//! (`UNAVAILABLE` / HTTP 503), permanent rejections, throttling with a retry delay, or latency
//! for exporter-failure tests.
//!
//! [`OtlpReceiver::start_tls`] serves both over TLS instead, with a self-signed certificate for
//! `127.0.0.1` ([`OtlpReceiver::tls_ca_pem`] is what a client must trust).
//!
//! The model is the in-process mock server of opentelemetry-rust's
//! `opentelemetry-otlp/tests/smoke.rs`: no docker, no fixed ports.
//!
//! If the exporter under test blocks a thread while exporting (for example a blocking reqwest
//! client), run the test on a multi-thread runtime
//! (`#[tokio::test(flavor = "multi_thread")]`) so the receiver can still make progress.

use std::fmt;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use parking_lot::Mutex;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::CompressionEncoding;

mod tls;

use tls::TlsIdentity;

/// Largest HTTP body accepted before decompression.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest body accepted after gzip decompression (a cap, so a bad fixture can't eat memory).
const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;
/// Largest gRPC message accepted.
const MAX_GRPC_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// How long [`OtlpReceiver::shutdown`] waits for in-flight requests before aborting the servers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
const CONTENT_TYPE_JSON: &str = "application/json";

/// The transport and encoding a request arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a binary protobuf body (`application/x-protobuf`).
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body (`application/json`).
    HttpJson,
}

/// How the receiver answers export requests. Set it with [`OtlpReceiver::set_behavior`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    /// Accept every request (the default).
    #[default]
    Accept,
    /// Reject every request as retryable: gRPC `UNAVAILABLE`, HTTP `503 Service Unavailable`.
    Unavailable,
    /// Sleep for the given duration, then accept the request.
    Delay(Duration),
    /// Reject every request as permanent (never to be retried): gRPC `INVALID_ARGUMENT`,
    /// HTTP `400 Bad Request`.
    Reject,
    /// Throttle every request, asking the client to wait: gRPC `UNAVAILABLE` with a
    /// `RetryInfo` delay, HTTP `429 Too Many Requests` with `Retry-After` (whole seconds).
    Throttle(Duration),
}

/// One export request as the receiver saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Transport and encoding of the request.
    pub protocol: Protocol,
    /// Request headers; for gRPC, the request metadata converted to headers.
    pub headers: HeaderMap,
    /// The decoded request.
    pub request: ExportTraceServiceRequest,
    /// Whether the receiver accepted the request (`false` when it answered with
    /// [`Behavior::Unavailable`]). Rejected requests are recorded so tests can count retries,
    /// but their spans are left out of [`OtlpReceiver::spans`].
    pub accepted: bool,
}

/// One span from an accepted request, with its resource and instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSpan {
    /// Attributes of the span's resource.
    pub resource: Vec<KeyValue>,
    /// Name of the instrumentation scope (empty if the scope was absent).
    pub scope_name: String,
    /// The span itself.
    pub span: Span,
}

/// A simplified attribute value, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string value.
    Str(String),
    /// An integer value.
    Int(i64),
    /// A boolean value.
    Bool(bool),
    /// A floating-point value.
    Double(f64),
    /// Anything else: arrays, maps, bytes, or an empty value.
    Other,
}

/// A running loopback OTLP receiver. Dropping it stops both servers.
pub struct OtlpReceiver {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// The certificate (PEM) when serving TLS.
    tls_cert_pem: Option<String>,
}

/// State shared by the receiver handle and both servers.
#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    behavior: Mutex<Behavior>,
    notify: Notify,
}

// === impl OtlpReceiver ===

impl OtlpReceiver {
    /// Starts the gRPC and HTTP servers on `127.0.0.1` with ephemeral ports.
    ///
    /// Must be called within a tokio runtime; the servers run as tasks on it.
    ///
    /// # Panics
    ///
    /// Panics if a loopback port can't be bound.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Like [`start`](Self::start), both servers over TLS (HTTP/1.1 and HTTP/2 by ALPN) with a
    /// self-signed certificate for `127.0.0.1`; the endpoints are `https://127.0.0.1:PORT`.
    ///
    /// # Panics
    ///
    /// Panics if a loopback port can't be bound or the certificate can't be generated.
    pub async fn start_tls() -> Self {
        Self::start_with(Some(TlsIdentity::generate())).await
    }

    async fn start_with(tls: Option<TlsIdentity>) -> Self {
        let shared = Arc::new(Shared::default());

        let grpc_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP gRPC listener on 127.0.0.1:0");
        let http_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP HTTP listener on 127.0.0.1:0");
        let grpc_addr = grpc_listener
            .local_addr()
            .expect("local address of the gRPC listener");
        let http_addr = http_listener
            .local_addr()
            .expect("local address of the HTTP listener");

        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        let (http_stop, http_stopped) = oneshot::channel::<()>();

        let grpc_service = TraceServiceServer::new(GrpcTraceService {
            shared: Arc::clone(&shared),
        })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let router = Router::new()
            .route("/v1/traces", post(export_http))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::clone(&shared));
        if let Some(identity) = tls {
            let grpc_router = tonic::service::Routes::new(grpc_service).into_axum_router();
            return Self {
                shared,
                grpc_addr,
                http_addr,
                shutdown: vec![grpc_stop, http_stop],
                tasks: vec![
                    tokio::spawn(tls::serve(
                        grpc_listener,
                        grpc_router,
                        identity.acceptor.clone(),
                        grpc_stopped,
                    )),
                    tokio::spawn(tls::serve(
                        http_listener,
                        router,
                        identity.acceptor,
                        http_stopped,
                    )),
                ],
                tls_cert_pem: Some(identity.cert_pem),
            };
        }
        let grpc_task = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(grpc_service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(grpc_listener), async {
                    // Either an explicit stop or a dropped sender ends the server.
                    let _ = grpc_stopped.await;
                })
                .await;
            if let Err(err) = result {
                eprintln!("tracelight-testkit: OTLP gRPC receiver failed: {err}");
            }
        });

        let http_task = tokio::spawn(async move {
            let result = axum::serve(http_listener, router)
                .with_graceful_shutdown(async {
                    let _ = http_stopped.await;
                })
                .await;
            if let Err(err) = result {
                eprintln!("tracelight-testkit: OTLP HTTP receiver failed: {err}");
            }
        });

        Self {
            shared,
            grpc_addr,
            http_addr,
            shutdown: vec![grpc_stop, http_stop],
            tasks: vec![grpc_task, http_task],
            tls_cert_pem: None,
        }
    }

    /// The gRPC endpoint, e.g. `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.grpc_addr)
    }

    fn scheme(&self) -> &'static str {
        if self.tls_cert_pem.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The PEM certificate a client must trust, when started with
    /// [`start_tls`](Self::start_tls).
    pub fn tls_ca_pem(&self) -> Option<&str> {
        self.tls_cert_pem.as_deref()
    }

    /// The HTTP base URL without a path, e.g. `http://127.0.0.1:PORT`.
    ///
    /// This is what `OTEL_EXPORTER_OTLP_ENDPOINT` expects for OTLP/HTTP: exporters append
    /// `/v1/traces` themselves.
    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.http_addr)
    }

    /// The full OTLP/HTTP traces URL: [`http_endpoint`](Self::http_endpoint) + `/v1/traces`.
    pub fn http_traces_url(&self) -> String {
        format!("{}/v1/traces", self.http_endpoint())
    }

    /// Changes how subsequent requests are answered.
    pub fn set_behavior(&self, behavior: Behavior) {
        *self.shared.behavior.lock() = behavior;
    }

    /// Every request received so far, accepted or not, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().clone()
    }

    /// Forgets every recorded request.
    pub fn clear(&self) {
        self.shared.requests.lock().clear();
    }

    /// The spans of every accepted request, flattened, in arrival order.
    pub fn spans(&self) -> Vec<RecordedSpan> {
        flatten_spans(&self.shared.requests.lock())
    }

    /// Waits until at least `n` spans were received or `timeout` elapses, then returns all
    /// spans received so far. Never panics on timeout: assert on the length.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<RecordedSpan> {
        self.wait_until(timeout, |requests| {
            let spans = flatten_spans(requests);
            (spans.len() >= n).then_some(spans)
        })
        .await
        .unwrap_or_else(|| self.spans())
    }

    /// Waits until a span called `name` was received, or `timeout` elapses.
    pub async fn wait_for_span_named(&self, name: &str, timeout: Duration) -> Option<RecordedSpan> {
        self.wait_until(timeout, |requests| {
            flatten_spans(requests)
                .into_iter()
                .find(|span| span.span.name == name)
        })
        .await
    }

    /// Stops both servers, waiting up to a few seconds for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        for stop in self.shutdown.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Polls `check` against the recorded requests each time a request arrives, until it
    /// returns `Some` or `timeout` elapses.
    async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[RecordedRequest]) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before checking, so a request arriving in between is not missed.
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            if let Some(found) = check(&self.shared.requests.lock()) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check(&self.shared.requests.lock());
            }
        }
    }
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("behavior", &*self.shared.behavior.lock())
            .field("requests", &self.shared.requests.lock().len())
            .finish_non_exhaustive()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for stop in self.shutdown.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// Returns the URL of a loopback port that nothing listens on, e.g. `http://127.0.0.1:PORT`,
/// for "the collector is down" tests.
///
/// It binds `127.0.0.1:0`, reads the port and closes the listener. There is a small race:
/// another process or test may bind the same port before the exporter connects. Ephemeral
/// ports are handed out round-robin by most kernels, so this is rare, but a test built on it
/// should only assert that exporting fails or is retried, never on the exact error.
///
/// # Panics
///
/// Panics if a loopback port can't be bound.
pub async fn closed_loopback_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("local address of the listener");
    drop(listener);
    format!("http://{addr}")
}

// === impl Shared ===

impl Shared {
    /// Records a request and reports whether it should be accepted, along with any delay.
    fn record(
        &self,
        protocol: Protocol,
        headers: HeaderMap,
        request: ExportTraceServiceRequest,
    ) -> Behavior {
        let behavior = *self.behavior.lock();
        self.requests.lock().push(RecordedRequest {
            protocol,
            headers,
            request,
            accepted: matches!(behavior, Behavior::Accept | Behavior::Delay(_)),
        });
        self.notify.notify_waiters();
        behavior
    }
}

fn flatten_spans(requests: &[RecordedRequest]) -> Vec<RecordedSpan> {
    let mut spans = Vec::new();
    for recorded in requests.iter().filter(|r| r.accepted) {
        for resource_spans in &recorded.request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|r| r.attributes.clone())
                .unwrap_or_default();
            for scope_spans in &resource_spans.scope_spans {
                let scope_name = scope_spans
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                spans.extend(scope_spans.spans.iter().map(|span| RecordedSpan {
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    span: span.clone(),
                }));
            }
        }
    }
    spans
}

/// The span called `name` among `spans`.
///
/// # Panics
///
/// Panics listing the names present when there is none.
pub fn find_span<'a>(spans: &'a [RecordedSpan], name: &str) -> &'a RecordedSpan {
    spans.iter().find(|s| s.name() == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} in {:?}",
            spans.iter().map(RecordedSpan::name).collect::<Vec<_>>()
        )
    })
}

// === impl RecordedSpan ===

impl RecordedSpan {
    /// The span name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The span kind; unknown values map to [`SpanKind::Unspecified`].
    pub fn kind(&self) -> SpanKind {
        self.span.kind()
    }

    /// The trace id as lowercase hex (32 characters for a valid id).
    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.span.trace_id)
    }

    /// The span id as lowercase hex (16 characters for a valid id).
    pub fn span_id_hex(&self) -> String {
        to_hex(&self.span.span_id)
    }

    /// The parent span id as lowercase hex, or `None` for a root span.
    pub fn parent_span_id_hex(&self) -> Option<String> {
        (!self.span.parent_span_id.is_empty()).then(|| to_hex(&self.span.parent_span_id))
    }

    /// The span attribute called `key`, if present.
    pub fn attr(&self, key: &str) -> Option<AttrValue> {
        find_attr(&self.span.attributes, key)
    }

    /// The resource attribute called `key`, if present.
    pub fn resource_attr(&self, key: &str) -> Option<AttrValue> {
        find_attr(&self.resource, key)
    }
}

fn find_attr(attributes: &[KeyValue], key: &str) -> Option<AttrValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| AttrValue::from_any(kv.value.as_ref()))
}

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String can't fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

// === impl AttrValue ===

impl AttrValue {
    fn from_any(value: Option<&AnyValue>) -> Self {
        match value.and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => Self::Str(s.clone()),
            Some(Value::IntValue(i)) => Self::Int(*i),
            Some(Value::BoolValue(b)) => Self::Bool(*b),
            Some(Value::DoubleValue(d)) => Self::Double(*d),
            Some(
                Value::ArrayValue(_)
                | Value::KvlistValue(_)
                | Value::BytesValue(_)
                | Value::StringValueStrindex(_),
            )
            | None => Self::Other,
        }
    }

    /// The string, if this is [`AttrValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is [`AttrValue::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if this is [`AttrValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The float, if this is [`AttrValue::Double`].
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Double(d) => Some(*d),
            _ => None,
        }
    }
}

// === gRPC ===

/// The tonic `TraceService` behind the gRPC endpoint.
#[derive(Debug)]
struct GrpcTraceService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (metadata, _extensions, message) = request.into_parts();
        match self
            .shared
            .record(Protocol::Grpc, metadata.into_headers(), message)
        {
            Behavior::Accept => {}
            Behavior::Unavailable => {
                return Err(tonic::Status::unavailable(
                    "tracelight-testkit receiver: behavior is Unavailable",
                ));
            }
            Behavior::Delay(delay) => tokio::time::sleep(delay).await,
            Behavior::Reject => {
                return Err(tonic::Status::invalid_argument(
                    "tracelight-testkit receiver: behavior is Reject",
                ));
            }
            Behavior::Throttle(delay) => {
                use tonic_types::{ErrorDetails, StatusExt as _};
                return Err(tonic::Status::with_error_details(
                    tonic::Code::Unavailable,
                    "tracelight-testkit receiver: behavior is Throttle",
                    ErrorDetails::with_retry_info(Some(delay)),
                ));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

// === HTTP ===

/// Why an HTTP request body could not be decoded.
#[derive(Debug)]
struct HttpRejection {
    status: StatusCode,
    message: String,
}

impl HttpRejection {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpRejection {
    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

/// `POST /v1/traces`.
async fn export_http(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpRejection> {
    let protocol = protocol_from_content_type(&headers)?;
    let body = decode_content_encoding(&headers, body)?;
    let is_json = protocol == Protocol::HttpJson;
    let request = if is_json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body)
            .map_err(|err| HttpRejection::bad_request(format!("invalid OTLP/JSON body: {err}")))?
    } else {
        ExportTraceServiceRequest::decode(body).map_err(|err| {
            HttpRejection::bad_request(format!("invalid OTLP protobuf body: {err}"))
        })?
    };

    match shared.record(protocol, headers, request) {
        Behavior::Accept => {}
        Behavior::Unavailable => {
            return Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                "tracelight-testkit receiver: behavior is Unavailable",
            )
                .into_response());
        }
        Behavior::Delay(delay) => tokio::time::sleep(delay).await,
        Behavior::Reject => {
            return Ok((
                StatusCode::BAD_REQUEST,
                "tracelight-testkit receiver: behavior is Reject",
            )
                .into_response());
        }
        Behavior::Throttle(delay) => {
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, delay.as_secs().to_string())],
                "tracelight-testkit receiver: behavior is Throttle",
            )
                .into_response());
        }
    }

    let response = ExportTraceServiceResponse {
        partial_success: None,
    };
    let (content_type, body) = if is_json {
        let body = serde_json::to_vec(&response).map_err(|err| HttpRejection {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("encoding the response failed: {err}"),
        })?;
        (CONTENT_TYPE_JSON, body)
    } else {
        (CONTENT_TYPE_PROTOBUF, response.encode_to_vec())
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response())
}

/// Maps the `Content-Type` to [`Protocol::HttpProtobuf`] or [`Protocol::HttpJson`].
fn protocol_from_content_type(headers: &HeaderMap) -> Result<Protocol, HttpRejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        CONTENT_TYPE_PROTOBUF => Ok(Protocol::HttpProtobuf),
        CONTENT_TYPE_JSON => Ok(Protocol::HttpJson),
        _ => Err(HttpRejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "unsupported content type {content_type:?}: expected {CONTENT_TYPE_PROTOBUF} or {CONTENT_TYPE_JSON}"
            ),
        }),
    }
}

fn decode_content_encoding(headers: &HeaderMap, body: Bytes) -> Result<Bytes, HttpRejection> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => {
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .take(MAX_DECOMPRESSED_BYTES + 1)
                .read_to_end(&mut decoded)
                .map_err(|err| HttpRejection::bad_request(format!("invalid gzip body: {err}")))?;
            if decoded.len() as u64 > MAX_DECOMPRESSED_BYTES {
                return Err(HttpRejection {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("decompressed body exceeds {MAX_DECOMPRESSED_BYTES} bytes"),
                });
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(HttpRejection {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("unsupported content encoding {other:?}: expected gzip or none"),
        }),
    }
}
