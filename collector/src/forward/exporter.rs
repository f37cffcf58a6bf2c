//! Sends one encoded `ExportTraceServiceRequest` to an upstream over OTLP/gRPC or
//! OTLP/HTTP (protobuf) and classifies the answer ([`super::retry::Outcome`]).
//!
//! The body comes ready to send from [`super::body`] (compressed, and for gRPC framed): the
//! HTTP client posts it, the gRPC client sends it in place of the message tonic would encode
//! (and compress, at a fixed level 6) itself, through `Preframed`; tonic still builds the
//! request's headers and decodes the answer. Both connect through one hyper-rustls
//! connector, so `https://` endpoints get TLS (rustls, ring) and `http://` ones plain TCP
//! (h2c for gRPC).

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use futures_util::FutureExt as _;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt as _;

use super::body::BodyFormat;
use super::config::{Compression, UpstreamProtocol};
use super::retry::{Outcome, classify_grpc, classify_http};

const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Largest response body read from an HTTP upstream.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExporterError {
    /// The endpoint is not a valid URI.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A configured header is not a valid HTTP header or gRPC metadata.
    #[error("invalid header {name:?}")]
    Header {
        /// Header name.
        name: String,
    },
}

/// The connector shared by both transports.
pub type Connector = HttpsConnector<HttpConnector>;

/// What the exporter needs to know about its upstream.
#[derive(Debug, Clone)]
pub struct ExporterSettings {
    /// Endpoint URL (`http(s)://host:port` for gRPC, `…/v1/traces` for HTTP).
    pub endpoint: String,
    /// Transport.
    pub protocol: UpstreamProtocol,
    /// Extra headers (gRPC: metadata).
    pub headers: Vec<(String, String)>,
    /// Request compression.
    pub compression: Compression,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

/// An OTLP exporter for one upstream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Exporter {
    transport: Transport,
    headers: HeaderMap,
    compression: Compression,
    timeout: Duration,
}

#[derive(Debug, Clone)]
enum Transport {
    Http {
        client: Box<Client<Connector, Full<Bytes>>>,
        uri: Uri,
    },
    Grpc {
        channel: Preframed<tonic::transport::Channel>,
    },
}

impl Exporter {
    /// Builds the client; connects lazily. Must run inside a tokio runtime.
    pub fn new(settings: &ExporterSettings, connector: Connector) -> Result<Self, ExporterError> {
        let bad = |reason: String| ExporterError::Endpoint {
            endpoint: settings.endpoint.clone(),
            reason,
        };
        let uri: Uri = settings
            .endpoint
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let header = || ExporterError::Header { name: name.clone() };
            let n = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| header())?;
            let v = HeaderValue::from_str(value.trim()).map_err(|_| header())?;
            headers.append(n, v);
        }
        let transport = match settings.protocol {
            UpstreamProtocol::Http => Transport::Http {
                client: Box::new(Client::builder(TokioExecutor::new()).build(connector)),
                uri,
            },
            UpstreamProtocol::Grpc => {
                // The connector does TLS for https URIs (tonic's own TLS is not compiled in).
                let endpoint = tonic::transport::Endpoint::from(uri)
                    .connect_timeout(settings.timeout)
                    .tcp_nodelay(true);
                Transport::Grpc {
                    channel: Preframed(endpoint.connect_with_connector_lazy(connector)),
                }
            }
        };
        Ok(Self {
            transport,
            headers,
            compression: settings.compression,
            timeout: settings.timeout,
        })
    }

    /// How [`export`](Self::export) wants its body built.
    pub fn body_format(&self) -> BodyFormat {
        BodyFormat {
            compression: self.compression,
            grpc: matches!(self.transport, Transport::Grpc { .. }),
        }
    }

    /// One attempt. `body` is the encoded request as [`body_format`](Self::body_format) says
    /// (compressed or not; for gRPC, one framed message).
    pub async fn export(&self, body: Bytes) -> Outcome {
        let attempt = async {
            match &self.transport {
                Transport::Http { client, uri } => self.export_http(client, uri, body).await,
                Transport::Grpc { channel } => self.export_grpc(channel.clone(), body).await,
            }
        };
        // tonic panics on some malformed answers (a `grpc-status-details-bin` that is not
        // base64): an upstream's bad answer is a failed attempt, never the end of the sender.
        let attempt = std::panic::AssertUnwindSafe(attempt).catch_unwind();
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Retry {
                reason: "malformed answer from the upstream (the client library panicked)".into(),
                delay: None,
            },
            Err(_) => Outcome::Retry {
                reason: format!("no answer within {:?}", self.timeout),
                delay: None,
            },
        }
    }

    async fn export_http(
        &self,
        client: &Client<Connector, Full<Bytes>>,
        uri: &Uri,
        body: Bytes,
    ) -> Outcome {
        let mut request = Request::post(uri.clone());
        if let Some(h) = request.headers_mut() {
            h.extend(self.headers.clone());
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            if let Some(encoding) = self.compression.encoding() {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
            }
        }
        let request = match request.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("cannot build request: {e}"),
                };
            }
        };
        let response = match client.request(request).await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("HTTP request failed: {e}"),
                    delay: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        match classify_http(status, retry_after.as_deref()) {
            None => Outcome::Accepted {
                rejected: ExportTraceServiceResponse::decode(body)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
            },
            Some(Outcome::Permanent { reason }) => Outcome::Permanent {
                reason: format!("{reason}: {}", error_message(&body)),
            },
            Some(other) => other,
        }
    }

    async fn export_grpc(
        &self,
        channel: Preframed<tonic::transport::Channel>,
        body: Bytes,
    ) -> Outcome {
        let mut grpc =
            tonic::client::Grpc::new(channel).accept_compressed(CompressionEncoding::Gzip);
        if let Err(e) = grpc.ready().await {
            return Outcome::Retry {
                reason: format!("gRPC connection failed: {e}"),
                delay: None,
            };
        }
        // tonic encodes an empty message; `Preframed` sends `body` instead.
        let mut request = tonic::Request::new(Bytes::new());
        request.extensions_mut().insert(FramedBody {
            body,
            encoding: self.compression.encoding(),
        });
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(self.headers.clone());
        request.set_timeout(self.timeout);
        let path = PathAndQuery::from_static(GRPC_EXPORT_PATH);
        match grpc.unary(request, path, RawCodec).await {
            Ok(response) => Outcome::Accepted {
                rejected: response
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
            },
            // A status made by the client from a connection failure (the connection broke
            // mid-request: `Unknown: transport error`) carries its cause; the server's own
            // statuses do not. A network failure is retryable whatever the code.
            Err(status) if std::error::Error::source(&status).is_some() => Outcome::Retry {
                reason: format!("gRPC transport: {status}"),
                delay: None,
            },
            Err(status) => {
                let retry_info = status.get_details_retry_info().map(|info| info.retry_delay);
                classify_grpc(status.code(), status.message(), retry_info)
            }
        }
    }
}

/// The message of an error body: a protobuf `google.rpc.Status` or text, shortened.
fn error_message(body: &[u8]) -> String {
    let text = tonic_types::pb::Status::decode(body)
        .ok()
        .filter(|s| !s.message.is_empty())
        .map_or_else(|| String::from_utf8_lossy(body).into_owned(), |s| s.message);
    text.chars().take(200).collect()
}

/// A gRPC request body framed (and compressed) by [`super::body`], carried in the request's
/// extensions to [`Preframed`].
#[derive(Debug, Clone)]
struct FramedBody {
    body: Bytes,
    /// Its `grpc-encoding`, `None` uncompressed.
    encoding: Option<&'static str>,
}

/// Below tonic's client: replaces the body of a request carrying a [`FramedBody`] with it, and
/// says its `grpc-encoding` when it is compressed. tonic's own message compression is off,
/// so its level does not apply; everything else (headers, metadata, timeout, the answer's
/// status and message) stays tonic's.
#[derive(Debug, Clone)]
struct Preframed<S>(S);

impl<S> tower::Service<Request<tonic::body::Body>> for Preframed<S>
where
    S: tower::Service<Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<tonic::body::Body>) -> Self::Future {
        if let Some(FramedBody { body, encoding }) = request.extensions_mut().remove::<FramedBody>()
        {
            if let Some(encoding) = encoding {
                request
                    .headers_mut()
                    .insert("grpc-encoding", HeaderValue::from_static(encoding));
            }
            *request.body_mut() = tonic::body::Body::new(Full::new(body));
        }
        self.0.call(request)
    }
}

/// Encodes the (empty) placeholder message, decodes the protobuf response.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("bad response: {e}")))
    }
}
