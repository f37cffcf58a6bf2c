//! Sending pre-encoded export requests over OTLP/gRPC or OTLP/HTTP.
//!
//! gRPC goes through tonic with a pass-through codec ([`PreEncodedCodec`]): the request bytes
//! are framed as they are, and only the small response is decoded. HTTP is `POST /v1/traces`
//! with `application/x-protobuf` over HTTP/1.1 keep-alive (reqwest on hyper).

use std::net::SocketAddr;

use bytes::{BufMut as _, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

use crate::stats::{ErrorKind, Outcome};

/// The OTLP/gRPC trace export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Which OTLP transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`), default port 4317.
    Grpc,
    /// OTLP/HTTP (`POST /v1/traces`, protobuf), default port 4318.
    Http,
}

impl Protocol {
    /// The collector's default address for this protocol.
    pub fn default_addr(self) -> SocketAddr {
        match self {
            Self::Grpc => SocketAddr::from(([127, 0, 0, 1], 4317)),
            Self::Http => SocketAddr::from(([127, 0, 0, 1], 4318)),
        }
    }
}

/// A tonic codec that sends already-encoded messages and decodes the export response.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreEncodedCodec;

/// Encoder half of [`PreEncodedCodec`]: copies the bytes into the frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreEncodedEncoder;

/// Decoder half of [`PreEncodedCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseDecoder;

impl Codec for PreEncodedCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PreEncodedEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

impl Encoder for PreEncodedEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// One connection to the collector. Clones share the connection (gRPC: one HTTP/2 channel;
/// HTTP: one keep-alive pool).
#[derive(Debug, Clone)]
pub enum Sender {
    /// OTLP/gRPC over one tonic channel.
    Grpc(tonic::client::Grpc<Channel>),
    /// OTLP/HTTP over one reqwest client.
    Http {
        /// The client; its pool keeps the connections alive.
        client: reqwest::Client,
        /// `http://ADDR/v1/traces`.
        url: String,
    },
}

impl Sender {
    /// Opens a connection (gRPC connects now; HTTP connects on the first request). `streams`
    /// is how many requests will be in flight on it at most.
    pub async fn connect(
        protocol: Protocol,
        addr: SocketAddr,
        streams: usize,
    ) -> anyhow::Result<Self> {
        match protocol {
            Protocol::Grpc => {
                let channel = Endpoint::from_shared(format!("http://{addr}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                Ok(Self::Grpc(tonic::client::Grpc::new(channel)))
            }
            Protocol::Http => {
                let client = reqwest::Client::builder()
                    .http1_only()
                    .no_proxy()
                    .tcp_nodelay(true)
                    .pool_max_idle_per_host(streams.max(1))
                    .build()?;
                Ok(Self::Http {
                    client,
                    url: format!("http://{addr}/v1/traces"),
                })
            }
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest` and classifies the answer.
    pub async fn send(&mut self, body: Bytes) -> Outcome {
        match self {
            Self::Grpc(grpc) => send_grpc(grpc, body).await,
            Self::Http { client, url } => send_http(client, url, body).await,
        }
    }
}

fn accepted(response: &ExportTraceServiceResponse) -> Outcome {
    let rejected = response
        .partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0));
    Outcome::Accepted { rejected }
}

async fn send_grpc(grpc: &mut tonic::client::Grpc<Channel>, body: Bytes) -> Outcome {
    if grpc.ready().await.is_err() {
        return Outcome::Failed(ErrorKind::Transport("gRPC channel not ready"));
    }
    let path = PathAndQuery::from_static(EXPORT_PATH);
    match grpc
        .unary(tonic::Request::new(body), path, PreEncodedCodec)
        .await
    {
        Ok(response) => accepted(response.get_ref()),
        // A status made on this side (connection refused or reset) carries its cause; one
        // sent by the collector does not.
        Err(status) if std::error::Error::source(&status).is_some() => {
            Outcome::Failed(ErrorKind::Transport("gRPC connection"))
        }
        Err(status) => Outcome::Failed(ErrorKind::Grpc(status.code())),
    }
}

async fn send_http(client: &reqwest::Client, url: &str, body: Bytes) -> Outcome {
    let response = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(ErrorKind::Transport(reqwest_reason(&e))),
    };
    let status = response.status();
    // Read the body even on errors, so the connection can be reused.
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(ErrorKind::Transport(reqwest_reason(&e))),
    };
    if !status.is_success() {
        return Outcome::Failed(ErrorKind::Http(status.as_u16()));
    }
    match ExportTraceServiceResponse::decode(body) {
        Ok(response) => accepted(&response),
        Err(_) => Outcome::Failed(ErrorKind::BadResponse),
    }
}

fn reqwest_reason(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "HTTP connect"
    } else if e.is_timeout() {
        "HTTP timeout"
    } else if e.is_body() || e.is_decode() {
        "HTTP body"
    } else {
        "HTTP request"
    }
}
