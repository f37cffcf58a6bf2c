//! The `TraceService/Export` method served from the request's bytes.
//!
//! Same routing, compression and size limits as the generated `TraceServiceServer`, and the
//! same statuses for bad input as tonic's unary path, but without its generic machinery:
//!
//! - the message is taken from the body's DATA frames without a copy when one frame holds it (a
//!   100-span export is one frame: the server's `SETTINGS_MAX_FRAME_SIZE` is 1 MiB);
//! - the export starts as soon as the message is complete, not after the end of the stream
//!   (clients send that in a frame of its own); the answer still waits for it, after the
//!   export.
//!
//! The handler checks the decode budget, decodes the bytes (on a blocking thread when large),
//! and the forward queues then store them as received instead of re-encoding the converted
//! batch.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::HeaderValue;
use http_body_util::BodyExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::Status;

use super::GrpcReceiver;
use crate::receiver::limits::{
    self, BodyError, ContentEncoding, DecodeBudget, DecodePermit, drain,
};

/// The gRPC method path served.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC message's prefix: the compressed flag (1 byte) and the length (4 bytes, big endian).
const PREFIX_LEN: usize = 5;

/// The request encodings accepted, as announced in `grpc-accept-encoding`.
const ACCEPT_ENCODING: &str = "gzip,zstd";

/// A request's protobuf encoding, as received (after decompression), not yet decoded.
#[derive(Debug)]
pub struct RawExport {
    /// The encoded `ExportTraceServiceRequest`.
    pub encoded: Bytes,
    /// Its bytes in the decode budget, taken when the message's prefix arrived; held until
    /// the export is answered.
    pub permit: DecodePermit,
}

/// Why a request's message could not be read.
#[derive(Debug)]
enum ReadError {
    /// Bad or missing input: answered with this status.
    Status(Status),
    /// The decode budget has no room for the message.
    OverBudget,
}

impl From<Status> for ReadError {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

/// The `TraceService` gRPC server (see the module docs).
#[derive(Debug, Clone)]
pub struct RawTraceServer {
    receiver: Arc<GrpcReceiver>,
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
        Self {
            receiver: Arc::new(receiver),
            max_decoding_message_size: max_request_bytes,
        }
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
        let receiver = Arc::clone(&self.receiver);
        let max = self.max_decoding_message_size;
        Box::pin(async move { Ok(export(&receiver, req, max).await) })
    }
}

/// Reads the request's message, exports it, and answers.
async fn export<B>(
    receiver: &GrpcReceiver,
    req: http::Request<B>,
    max: usize,
) -> http::Response<tonic::body::Body>
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    let encoding = match request_encoding(req.headers()) {
        Ok(encoding) => encoding,
        Err(status) => return status.into_http(),
    };
    let mut body = std::pin::pin!(req.into_body());
    let read = match read_message(body.as_mut(), max, receiver.decode_budget()).await {
        Ok((compressed, message, mut permit)) if compressed => {
            decompress(encoding, message, max, &mut permit).map(|encoded| (encoded, permit))
        }
        Ok((_, encoded, permit)) => Ok((encoded, permit)),
        Err(e) => Err(e),
    };
    let (encoded, permit) = match read {
        Ok(read) => read,
        Err(ReadError::Status(status)) => return status.into_http(),
        Err(ReadError::OverBudget) => {
            // The rest of the message is read and dropped, so that the answer is not an early
            // one (see below); nothing of it is kept.
            drain(body, max).await;
            return receiver.over_budget().into_http();
        }
    };
    let result = receiver.export_raw(RawExport { encoded, permit }).await;
    // The stream's end has almost always arrived during the export. Waiting for it keeps the
    // answer from being an early response, which HTTP/2 ends with a RST_STREAM that some
    // clients report as an error.
    drain(body, max).await;
    match result {
        Ok(response) => ok_response(response.get_ref()),
        Err(status) => status.into_http(),
    }
}

/// The request's `grpc-encoding`: none, `identity`, gzip or zstd; anything else is
/// `UNIMPLEMENTED` with the accepted encodings (as tonic answers).
fn request_encoding(headers: &http::HeaderMap) -> Result<Option<ContentEncoding>, Status> {
    let Some(value) = headers.get("grpc-encoding") else {
        return Ok(None);
    };
    match value.as_bytes() {
        b"identity" => Ok(None),
        b"gzip" => Ok(Some(ContentEncoding::Gzip)),
        b"zstd" => Ok(Some(ContentEncoding::Zstd)),
        other => {
            let mut status = Status::unimplemented(format!(
                "Content is compressed with `{}` which isn't supported",
                String::from_utf8_lossy(other)
            ));
            status.metadata_mut().insert(
                "grpc-accept-encoding",
                tonic::metadata::MetadataValue::from_static(ACCEPT_ENCODING),
            );
            Err(status)
        }
    }
}

/// Reads the body until it holds one whole message (the end of the stream is not waited for)
/// and returns its compressed flag, its bytes and their permit. The prefix is checked as soon
/// as it arrives: a message over `max` is refused before its bytes are buffered, and so is one
/// for which the decode `budget` has no room.
async fn read_message<B>(
    mut body: Pin<&mut B>,
    max: usize,
    budget: &Arc<DecodeBudget>,
) -> Result<(bool, Bytes, DecodePermit), ReadError>
where
    B: tonic::codegen::Body,
    B::Error: Into<tonic::codegen::StdError>,
{
    // Everything received so far: the first frame as is, then a copy once a second one comes.
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut needed: Option<(bool, usize, DecodePermit)> = None;
    loop {
        let received = joined.as_ref().map_or(&first[..], |j| &j[..]);
        if needed.is_none() && received.len() >= PREFIX_LEN {
            let (compressed, len) = prefix(received, max)?;
            let permit = budget
                .try_acquire(PREFIX_LEN + len)
                .ok_or(ReadError::OverBudget)?;
            needed = Some((compressed, len, permit));
        }
        if let Some((compressed, len, permit)) =
            needed.take_if(|(_, len, _)| received.len() >= PREFIX_LEN + *len)
        {
            let message = match joined {
                Some(j) => j.freeze().slice(PREFIX_LEN..PREFIX_LEN + len),
                None => first.slice(PREFIX_LEN..PREFIX_LEN + len),
            };
            return Ok((compressed, message, permit));
        }
        let frame = match body.as_mut().frame().await {
            None if received.is_empty() => {
                return Err(Status::internal("Missing request message.").into());
            }
            None => return Err(Status::internal("Unexpected EOF decoding stream.").into()),
            Some(Err(e)) => return Err(Status::from_error(e.into()).into()),
            Some(Ok(frame)) => frame,
        };
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers: nothing of the message
        };
        let data = data.copy_to_bytes(data.remaining());
        match &mut joined {
            Some(j) => j.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let capacity = needed.as_ref().map_or(0, |(_, len, _)| PREFIX_LEN + len);
                let mut j = BytesMut::with_capacity(capacity.max(first.len() + data.len()));
                j.extend_from_slice(&first);
                j.extend_from_slice(&data);
                joined = Some(j);
            }
        }
    }
}

/// The compressed flag and length of a message prefix, with tonic's statuses for a bad flag
/// and for a message over `max` (`OUT_OF_RANGE`, which [`super::ResourceExhaustedLayer`]
/// answers as `RESOURCE_EXHAUSTED`).
fn prefix(received: &[u8], max: usize) -> Result<(bool, usize), Status> {
    let compressed = match received[0] {
        0 => false,
        1 => true,
        f => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1), while sending request"
            )));
        }
    };
    let len = u32::from_be_bytes([received[1], received[2], received[3], received[4]]) as usize;
    if len > max {
        return Err(Status::out_of_range(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {max} bytes"
        )));
    }
    Ok((compressed, len))
}

/// Decompresses a message whose compressed flag is set, to at most `max` bytes, with the
/// receivers' capped decompression ([`limits::decompress`]) and tonic's statuses.
fn decompress(
    encoding: Option<ContentEncoding>,
    message: Bytes,
    max: usize,
    permit: &mut DecodePermit,
) -> Result<Bytes, ReadError> {
    let Some(encoding) = encoding else {
        // https://grpc.github.io/grpc/core/md_doc_compression.html: INTERNAL.
        return Err(Status::internal(
            "protocol error: received message with compressed-flag but no grpc-encoding was specified",
        )
        .into());
    };
    limits::decompress(encoding, message, max, permit).map_err(|e| match e {
        BodyError::TooLarge { .. } => Status::resource_exhausted(format!(
            "Error decompressing: size limit, of {max} bytes, exceeded while decompressing message"
        ))
        .into(),
        BodyError::OverBudget => ReadError::OverBudget,
        e => Status::internal(format!("Error decompressing: {e}, while sending request")).into(),
    })
}

/// A `200` with the encoded response as one uncompressed message, then `grpc-status: 0`.
fn ok_response(response: &ExportTraceServiceResponse) -> http::Response<tonic::body::Body> {
    let len = response.encoded_len();
    let mut message = BytesMut::with_capacity(PREFIX_LEN + len);
    message.put_u8(0);
    message.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    response.encode_raw(&mut message);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, Infallible>(hyper::body::Frame::data(message.freeze())),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let mut out = http::Response::new(tonic::body::Body::new(body));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::io::Write as _;

    use futures_util::StreamExt as _;
    use hyper::body::Frame;

    use super::*;

    type Frames = Vec<Result<Frame<Bytes>, Infallible>>;

    fn data(bytes: &[u8]) -> Result<Frame<Bytes>, Infallible> {
        Ok(Frame::data(Bytes::copy_from_slice(bytes)))
    }

    fn prefixed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    /// Reads from a body that yields `frames` and then, if `end` is false, never ends, with
    /// `budget` for the message's bytes.
    async fn read_with(
        frames: Frames,
        end: bool,
        max: usize,
        budget: &Arc<DecodeBudget>,
    ) -> Result<(bool, Bytes, DecodePermit), ReadError> {
        let stream = futures_util::stream::iter(frames);
        if end {
            let body = http_body_util::StreamBody::new(stream);
            read_message(std::pin::pin!(body), max, budget).await
        } else {
            let stream = stream.chain(futures_util::stream::pending());
            let body = http_body_util::StreamBody::new(stream);
            read_message(std::pin::pin!(body), max, budget).await
        }
    }

    /// [`read_with`] an ample budget, for the tests of everything but the budget.
    async fn read(frames: Frames, end: bool, max: usize) -> Result<(bool, Bytes), Status> {
        match read_with(frames, end, max, &DecodeBudget::new(1 << 30)).await {
            Ok((compressed, message, _)) => Ok((compressed, message)),
            Err(ReadError::Status(status)) => Err(status),
            Err(ReadError::OverBudget) => panic!("over an ample budget"),
        }
    }

    /// Decompresses with a permit of an ample budget.
    fn decompress_ample(
        encoding: Option<ContentEncoding>,
        message: Bytes,
        max: usize,
    ) -> Result<Bytes, Status> {
        let mut permit = DecodeBudget::new(1 << 30)
            .try_acquire(message.len())
            .unwrap();
        decompress(encoding, message, max, &mut permit).map_err(|e| match e {
            ReadError::Status(status) => status,
            ReadError::OverBudget => panic!("over an ample budget"),
        })
    }

    #[tokio::test]
    async fn the_message_takes_its_length_from_the_budget_as_soon_as_its_prefix_arrives() {
        let budget = DecodeBudget::new(1024);
        let message = [1u8; 100];
        let (_, got, permit) = read_with(vec![data(&prefixed(0, &message))], false, 4096, &budget)
            .await
            .unwrap();
        assert_eq!(got.len(), 100);
        assert_eq!(budget.in_flight(), PREFIX_LEN + 100);
        // With that permit held, a message announcing more than the rest of the budget is
        // refused from its prefix alone: the body stays open and nothing more arrives.
        let announced = prefixed(0, &[0; 1000])[..PREFIX_LEN].to_vec();
        let refused = read_with(vec![data(&announced)], false, 4096, &budget).await;
        assert!(matches!(refused, Err(ReadError::OverBudget)), "{refused:?}");
        assert_eq!(budget.in_flight(), PREFIX_LEN + 100, "nothing taken");
        drop(permit);
        // Alone, a message larger than the whole budget is admitted (as the budget admits one).
        let whole = prefixed(0, &[0; 2000]);
        let (_, got, _) = read_with(vec![data(&whole)], false, 4096, &budget)
            .await
            .unwrap();
        assert_eq!(got.len(), 2000);
    }

    #[tokio::test]
    async fn the_message_is_read_without_waiting_for_the_end_of_the_stream() {
        let message = b"an export request".as_slice();
        // One frame: the message is a slice of it. The body never ends: reading must not wait.
        let got = read(vec![data(&prefixed(0, message))], false, 1024).await;
        assert_eq!(got.unwrap(), (false, Bytes::from_static(message)));
    }

    #[tokio::test]
    async fn draining_stops_at_the_end_or_after_too_much_data() {
        // Ends: trailers included.
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x", HeaderValue::from_static("y"));
        let frames: Frames = vec![data(b"rest"), Ok(Frame::trailers(trailers))];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        drain(std::pin::pin!(body), 1024).await;
        // Never ends, but sends more than `max`: given up on (this test would hang otherwise).
        let stream = futures_util::stream::iter(vec![data(&[0; 600]), data(&[0; 600])])
            .chain(futures_util::stream::pending());
        drain(
            std::pin::pin!(http_body_util::StreamBody::new(stream)),
            1024,
        )
        .await;
    }

    #[tokio::test]
    async fn a_message_split_over_frames_is_joined() {
        let whole = prefixed(0, b"0123456789abcdef");
        // Split inside the prefix and inside the message, with trailing bytes of a next message.
        let mut last = whole[9..].to_vec();
        last.extend_from_slice(&[0, 0, 0]);
        let frames = vec![data(&whole[..3]), data(&whole[3..9]), data(&last)];
        let got = read(frames, false, 1024).await.unwrap();
        assert_eq!(got, (false, Bytes::from_static(b"0123456789abcdef")));
    }

    #[tokio::test]
    async fn short_and_empty_bodies_are_internal_errors() {
        let status = read(vec![], true, 1024).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "Missing request message.");
        let cut = prefixed(0, b"0123456789");
        for end in [3, cut.len() - 1] {
            let status = read(vec![data(&cut[..end])], true, 1024).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Internal);
            assert_eq!(status.message(), "Unexpected EOF decoding stream.");
        }
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_the_message_arrives() {
        // Only the prefix has arrived, and the body stays open: the refusal must not wait.
        let prefix = prefixed(0, &[0; 2048])[..PREFIX_LEN].to_vec();
        let status = read(vec![data(&prefix)], false, 1024).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert!(status.message().contains("too large"), "{status:?}");
    }

    #[tokio::test]
    async fn an_invalid_compressed_flag_is_an_internal_error() {
        let status = read(vec![data(&prefixed(2, b"x"))], true, 1024)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(status.message().contains("invalid compression flag: 2"));
    }

    #[test]
    fn compressed_messages_are_decompressed_within_the_limit() {
        let message = b"spans spans spans spans spans spans".repeat(10);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&message).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::bulk::compress(&message, 1).unwrap();
        for (encoding, bytes) in [
            (ContentEncoding::Gzip, gz.clone()),
            (ContentEncoding::Zstd, zst),
        ] {
            let bytes = Bytes::from(bytes);
            let got = decompress_ample(Some(encoding), bytes.clone(), message.len()).unwrap();
            assert_eq!(got, message);
            let status = decompress_ample(Some(encoding), bytes, message.len() - 1).unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::ResourceExhausted,
                "{encoding:?}"
            );
            let status =
                decompress_ample(Some(encoding), Bytes::from_static(b"not compressed"), 1024)
                    .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Internal, "{encoding:?}");
        }
        let status = decompress_ample(None, Bytes::from(gz), 1024).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(status.message().contains("no grpc-encoding"));
    }

    #[test]
    fn request_encodings_are_identity_gzip_and_zstd_only() {
        let headers = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-encoding", HeaderValue::from_static(v));
            h
        };
        assert_eq!(request_encoding(&http::HeaderMap::new()).unwrap(), None);
        assert_eq!(request_encoding(&headers("identity")).unwrap(), None);
        assert_eq!(
            request_encoding(&headers("gzip")).unwrap(),
            Some(ContentEncoding::Gzip)
        );
        assert_eq!(
            request_encoding(&headers("zstd")).unwrap(),
            Some(ContentEncoding::Zstd)
        );
        let status = request_encoding(&headers("snappy")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status.metadata().get("grpc-accept-encoding").unwrap(),
            ACCEPT_ENCODING
        );
    }
}
