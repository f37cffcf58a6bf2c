//! The `TraceService` server with a codec that keeps the request's protobuf bytes.
//!
//! Same routing, compression and size limits as the generated `TraceServiceServer`, but the
//! codec yields the message's bytes (one copy of the decompressed message, shared by reference
//! count): the handler checks the decode budget, decodes them (on a blocking thread when large),
//! and the forward queues then store them as received instead of re-encoding the converted
//! batch.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::Status;
use tonic::codec::{
    BufferSettings, Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings,
    EncodeBuf, Encoder,
};

use super::GrpcReceiver;

/// First size of a request's decode buffer (tonic grows it to the message's length).
const DECODE_BUFFER_BYTES: usize = 64 << 10;
/// tonic's default (it applies to encoding streams, which this service does not have).
const ENCODE_YIELD_BYTES: usize = 32 << 10;

/// The gRPC method path served.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A request's protobuf encoding, as received (after decompression), not yet decoded.
#[derive(Debug)]
pub struct RawExport {
    /// The encoded `ExportTraceServiceRequest`.
    pub encoded: Bytes,
}

/// Response encoder and [`RawExport`] decoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// Encodes responses with prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseEncoder;

/// Decodes requests, keeping their bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = RawExport;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("failed to encode the response: {e}")))
    }
}

impl Decoder for RawDecoder {
    type Item = RawExport;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let encoded = src.copy_to_bytes(src.remaining());
        Ok(Some(RawExport { encoded }))
    }

    /// A request's first buffer holds a 100-span export (~53 KB) whole: tonic's default (8 KiB)
    /// is grown, and what it holds copied, for every such request.
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(DECODE_BUFFER_BYTES, ENCODE_YIELD_BYTES)
    }
}

/// The `TraceService` gRPC server (see the module docs).
#[derive(Debug, Clone)]
pub struct RawTraceServer {
    receiver: Arc<GrpcReceiver>,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_decoding_message_size: usize,
}

impl RawTraceServer {
    /// Serves `receiver`, accepting gzip and zstd, refusing messages over `max_request_bytes`.
    ///
    /// Responses are never compressed, whatever the client accepts (gRPC lets the server answer
    /// in `identity`): an export's response is empty or a few bytes, so compression only makes
    /// it larger, and it costs a compressor per response. With a client that advertises gzip,
    /// as the Go, Java and Python exporters do, each response set up a zlib-rs deflate state
    /// (its tables cleared with `memset`): ~2.5 % of the collector's CPU at 100-span requests
    /// (`collector/docs/storage.md`, session 9).
    pub fn new(receiver: GrpcReceiver, max_request_bytes: usize) -> Self {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        accept.enable(CompressionEncoding::Zstd);
        Self {
            receiver: Arc::new(receiver),
            accept,
            send: EnabledCompressionEncodings::default(),
            max_decoding_message_size: max_request_bytes,
        }
    }
}

impl tonic::server::NamedService for RawTraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// The unary method bound to the receiver.
struct ExportMethod(Arc<GrpcReceiver>);

impl tonic::server::UnaryService<RawExport> for ExportMethod {
    type Response = ExportTraceServiceResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<tonic::Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<RawExport>) -> Self::Future {
        let receiver = Arc::clone(&self.0);
        Box::pin(async move { receiver.export_raw(request.into_inner()).await })
    }
}

impl<B> tower::Service<http::Request<B>> for RawTraceServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!("unknown method {}", req.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let method = ExportMethod(Arc::clone(&self.receiver));
        let mut grpc = tonic::server::Grpc::new(RawCodec)
            .apply_compression_config(self.accept, self.send)
            .apply_max_message_size_config(Some(self.max_decoding_message_size), None);
        Box::pin(async move { Ok(grpc.unary(method, req).await) })
    }
}
