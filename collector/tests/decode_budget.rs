//! The decode budget bounds the bytes of all requests in flight from the moment their length is
//! known, over real loopback sockets: an upload that has announced most of the budget, and sent
//! only its first part, gets a second large request refused with a retry delay (HTTP 503 +
//! `Retry-After`, gRPC `UNAVAILABLE` + `RetryInfo`) before its own bytes are buffered.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

#[path = "support/harness.rs"]
mod harness;

use std::convert::Infallible;

use bytes::Bytes;
use harness::{TRACE_1, TRACE_2, TestCollector, eventually, large_request, metric_value};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic_types::StatusExt as _;
use tracelight_collector::receiver::limits::DECODE_BUDGET_BYTES;

type Chunks =
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// A request body sent chunk by chunk through the returned sender; it ends when the sender is
/// dropped.
fn channel_body() -> (mpsc::Sender<Bytes>, Chunks) {
    let (send, receive) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(receive, |mut receive| async move {
        let chunk = receive.recv().await?;
        Some((Ok(Frame::data(chunk)), receive))
    });
    (send, StreamBody::new(Box::pin(stream)))
}

/// The held upload: ~5/8 of the budget, encoded as a request the collector accepts once whole.
fn held_request() -> Vec<u8> {
    large_request(TRACE_1, DECODE_BUDGET_BYTES / 8 * 5)
}

/// The second request: half the budget, which fits only while the held upload is not counted.
fn second_request() -> Vec<u8> {
    large_request(TRACE_2, DECODE_BUDGET_BYTES / 2)
}

/// POSTs a protobuf `body` to the collector's OTLP/HTTP endpoint.
async fn post(c: &TestCollector, body: Vec<u8>) -> reqwest::Response {
    c.http
        .post(c.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Sends `rest` of the held upload, ends it, and returns its answer (which must be a 200).
async fn finish<B>(
    chunks: mpsc::Sender<Bytes>,
    rest: &[u8],
    response: tokio::task::JoinHandle<hyper::Result<http::Response<B>>>,
) -> http::Response<B> {
    chunks.send(Bytes::copy_from_slice(rest)).await.unwrap();
    drop(chunks);
    let response = response.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    response
}

async fn refused_backpressure(c: &TestCollector, protocol: &str) -> f64 {
    let (_, metrics) = c.admin("/metrics").await;
    metric_value(
        &metrics,
        &format!(
            "tracelight_collector_requests_refused_total{{protocol=\"{protocol}\",reason=\"backpressure\"}}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upload_counts_from_its_content_length_before_its_body_arrives() {
    let c = TestCollector::start(|_| {}).await;
    let held = held_request();
    // The held upload declares its whole length and sends its first MiB only.
    let stream = TcpStream::connect(
        c.otlp_http_url()
            .trim_start_matches("http://")
            .trim_end_matches("/v1/traces"),
    )
    .await
    .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let (chunks, body) = channel_body();
    let request = http::Request::post(c.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .header("content-length", held.len())
        .body(body)
        .unwrap();
    let response = tokio::spawn(sender.send_request(request));
    chunks
        .send(Bytes::copy_from_slice(&held[..1 << 20]))
        .await
        .unwrap();
    // Once the collector has read the held upload's headers, the second request is refused at
    // once, with a retry delay (before, it would be accepted: nothing else is in the budget).
    let second = second_request();
    let mut refused = None;
    eventually("the second request to be refused", async || {
        let r = post(&c, second.clone()).await;
        let done = r.status() == 503;
        if done {
            refused = Some(r);
        }
        done
    })
    .await;
    let refused = refused.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused_backpressure(&c, "http").await, 1.0);
    // The held upload completes and is accepted; its bytes then go back to the budget.
    finish(chunks, &held[1 << 20..], response).await;
    assert_eq!(post(&c, second).await.status(), 200);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_message_counts_from_its_prefix_before_its_bytes_arrive() {
    let c = TestCollector::start(|_| {}).await;
    let held = held_request();
    // The held export sends its gRPC prefix (announcing the whole message) and its first MiB.
    let stream = TcpStream::connect(c.grpc_url().trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let (chunks, body) = channel_body();
    let request = http::Request::post(format!(
        "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        c.grpc_url()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(body)
    .unwrap();
    let response = tokio::spawn(sender.send_request(request));
    let mut prefixed = vec![0u8];
    prefixed.extend_from_slice(&u32::try_from(held.len()).unwrap().to_be_bytes());
    prefixed.extend_from_slice(&held);
    chunks
        .send(Bytes::copy_from_slice(&prefixed[..1 << 20]))
        .await
        .unwrap();
    // Meanwhile a second export of half the budget gets UNAVAILABLE with RetryInfo.
    let second = ExportTraceServiceRequest::decode(&second_request()[..]).unwrap();
    let mut client = TraceServiceClient::connect(c.grpc_url())
        .await
        .unwrap()
        .max_encoding_message_size(usize::MAX);
    let mut refused = None;
    eventually("the second export to be refused", async || {
        match client.export(second.clone()).await {
            Err(status) if status.code() == tonic::Code::Unavailable => {
                refused = Some(status);
                true
            }
            _ => false,
        }
    })
    .await;
    assert!(refused.unwrap().get_details_retry_info().is_some());
    assert_eq!(refused_backpressure(&c, "grpc").await, 1.0);
    // The held export completes and is accepted; then the second one is too.
    let response = finish(chunks, &prefixed[1 << 20..], response).await;
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(
        collected.trailers().unwrap().get("grpc-status").unwrap(),
        "0"
    );
    client.export(second).await.unwrap();
    c.stop().await;
}
