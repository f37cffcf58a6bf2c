//! OTLP ingest over real loopback sockets: every transport and encoding, every malformed-input
//! class, backpressure, and a clean drain on shutdown.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

#[path = "support/harness.rs"]
mod harness;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use harness::{
    SPAN_2, SPAN_3, TRACE_1, TRACE_2, TestCollector, eventually, fixture_request, kv,
    large_request, metric_value, one_span_request, string,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use parking_lot::{Condvar, Mutex};
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic_types::StatusExt as _;
use tracelight_collector::model::{DependencyLink, SpanBatch, SpanKind as Kind, Trace, TraceId};
use tracelight_collector::pipeline;
use tracelight_collector::store::{
    MemoryStore, Operation, SpanStore, StoreError, StoreStats, TraceQuery,
};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn post(
    c: &TestCollector,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = c
        .http
        .post(c.otlp_http_url())
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.send().await.unwrap()
}

/// POSTs a protobuf `body` from a task of its own (for requests that block in a gated store).
fn spawn_post(
    c: &Arc<TestCollector>,
    body: Vec<u8>,
) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let c = Arc::clone(c);
    tokio::spawn(async move { post(&c, PROTOBUF, None, body).await.status() })
}

/// Asserts the fixture's first trace reads back through both APIs with the right tree.
async fn assert_trace_readable(c: &TestCollector) {
    let (status, v1) = c.query(&format!("/api/traces/{TRACE_1}")).await;
    assert_eq!(status, 200, "{v1}");
    let spans = v1["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let s3 = spans.iter().find(|s| s["spanID"] == SPAN_3).unwrap();
    assert_eq!(s3["references"][0]["refType"], "CHILD_OF");
    assert_eq!(s3["references"][0]["spanID"], SPAN_2);
    let (status, v3) = c.query(&format!("/api/v3/traces/{TRACE_1}")).await;
    assert_eq!(status, 200, "{v3}");
    let count: usize = v3["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn grpc_export_with_gzip_is_queryable() {
    let c = TestCollector::start(|_| {}).await;
    let mut client = TraceServiceClient::connect(c.grpc_url())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let response = client.export(fixture_request()).await.unwrap();
    // The client accepts gzip, but a response of a few bytes is answered uncompressed.
    assert_eq!(response.metadata().get("grpc-encoding"), None);
    let response = response.into_inner();
    assert_eq!(response.partial_success, None);
    assert_trace_readable(&c).await;
    let (_, metrics) = c.admin("/metrics").await;
    assert_eq!(
        metric_value(
            &metrics,
            "tracelight_collector_spans_accepted_total{protocol=\"grpc\"}"
        ),
        4.0
    );
    assert_eq!(
        metric_value(&metrics, "tracelight_collector_store_spans"),
        4.0
    );
    c.stop().await;
}

/// A message larger than an HTTP/2 DATA frame (the server allows frames of 1 MiB) arrives in
/// several, which the receiver joins; it reads back whole.
#[tokio::test]
async fn a_grpc_message_over_several_data_frames_is_read_whole() {
    let c = TestCollector::start(|_| {}).await;
    let mut client = TraceServiceClient::connect(c.grpc_url()).await.unwrap();
    let blob: String = (0..3 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut request = one_span_request(TRACE_1);
    request.resource_spans[0].scope_spans[0].spans[0].attributes = vec![kv("blob", string(&blob))];
    let response = client.export(request).await.unwrap().into_inner();
    assert_eq!(response.partial_success, None);
    let (status, v1) = c.query(&format!("/api/traces/{TRACE_1}")).await;
    assert_eq!(status, 200);
    let tags = v1["data"][0]["spans"][0]["tags"].as_array().unwrap();
    let got = tags.iter().find(|t| t["key"] == "blob").unwrap();
    assert!(
        got["value"].as_str() == Some(blob.as_str()),
        "the blob came back changed"
    );
    c.stop().await;
}

#[tokio::test]
async fn http_protobuf_plain_gzip_and_zstd_are_queryable() {
    let c = TestCollector::start(|_| {}).await;
    let body = fixture_request().encode_to_vec();
    for (encoding, bytes) in [
        (None, body.clone()),
        (Some("gzip"), gzip(&body)),
        (Some("zstd"), zstd(&body)),
    ] {
        let response = post(&c, PROTOBUF, encoding, bytes).await;
        assert_eq!(response.status(), 200, "{encoding:?}");
        assert_eq!(response.headers()["content-type"], PROTOBUF);
        let decoded = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
        assert_eq!(decoded.partial_success, None);
    }
    assert_trace_readable(&c).await;
    c.stop().await;
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

#[tokio::test]
async fn http_json_with_otlp_quirks_is_queryable() {
    let c = TestCollector::start(|_| {}).await;
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"json-svc"}}}}]}},
          "scopeSpans":[{{"spans":[
            {{"traceId":"{upper}","spanId":"AAAAAAAAAAAAAAAA","name":"root","kind":"SPAN_KIND_SERVER",
              "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000000001000000,
              "status":{{"code":"STATUS_CODE_ERROR"}},"someFutureField":[1,2],
              "attributes":[{{"key":"n","value":{{"intValue":"7"}}}}]}},
            {{"traceId":"{upper}","spanId":"BBBBBBBBBBBBBBBB","parentSpanId":"aaaaaaaaaaaaaaaa",
              "name":"child","kind":3,"startTimeUnixNano":1700000000000100000,
              "endTimeUnixNano":"1700000000000900000"}}]}}]}}]}}"#,
        upper = TRACE_1.to_uppercase()
    );
    let response = post(
        &c,
        "application/json; charset=utf-8",
        None,
        body.into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], JSON);
    assert_eq!(response.text().await.unwrap(), "{}");
    let (status, v1) = c.query(&format!("/api/traces/{TRACE_1}")).await;
    assert_eq!(status, 200);
    let spans = v1["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let root = spans.iter().find(|s| s["operationName"] == "root").unwrap();
    assert_eq!(root["duration"], 1000);
    let tags = root["tags"].as_array().unwrap();
    assert!(
        tags.iter()
            .any(|t| t["key"] == "error" && t["value"] == true)
    );
    assert!(tags.iter().any(|t| t["key"] == "n" && t["value"] == 7));
    // Empty requests are a success.
    for empty in ["{}", r#"{"resourceSpans":[]}"#] {
        let response = post(&c, JSON, None, empty.as_bytes().to_vec()).await;
        assert_eq!(response.status(), 200);
    }
    c.stop().await;
}

#[tokio::test]
async fn malformed_http_inputs_get_the_right_status_and_the_collector_keeps_serving() {
    let c = TestCollector::start(|cfg| cfg.receiver.max_request_bytes = 4096).await;
    let good = fixture_request().encode_to_vec();

    // Undecodable protobuf → 400 with a protobuf google.rpc.Status.
    let response = post(&c, PROTOBUF, None, vec![0xff, 0xff, 0xff, 0x01]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    let status = tonic_types::Status::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("invalid protobuf"),
        "{}",
        status.message
    );

    // Undecodable JSON → 400 with a JSON google.rpc.Status.
    let response = post(&c, JSON, None, b"{\"resourceSpans\":".to_vec()).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], JSON);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], 3);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid OTLP/JSON")
    );

    // Unknown enum name → 400.
    let response = post(
        &c,
        JSON,
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);

    // Unsupported content type → 415; wrong method → 405.
    assert_eq!(
        post(&c, "text/plain", None, good.clone()).await.status(),
        415
    );
    let get = c.http.get(c.otlp_http_url()).send().await.unwrap();
    assert_eq!(get.status(), 405);

    // Unsupported and corrupt encodings → 400.
    assert_eq!(
        post(&c, PROTOBUF, Some("br"), good.clone()).await.status(),
        400
    );
    assert_eq!(
        post(&c, PROTOBUF, Some("gzip"), good.clone())
            .await
            .status(),
        400
    );

    // Over the limit as sent, and only after decompression → 413.
    let big = vec![0u8; 8192];
    let response = post(&c, PROTOBUF, None, big.clone()).await;
    assert_eq!(response.status(), 413);
    let response = post(&c, JSON, Some("gzip"), gzip(&big)).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], JSON);

    // Invalid spans inside a good request → 200 with partial success.
    let mut request = fixture_request();
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
    request.resource_spans[0].scope_spans[0].spans[1].span_id = vec![];
    let response = post(&c, PROTOBUF, None, request.encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = decoded.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("invalid trace id"),
        "{}",
        partial.error_message
    );
    let json_body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"0102030405060708","name":"x"}]}]}]}"#;
    let response = post(&c, JSON, None, json_body.as_bytes().to_vec()).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");

    // Still serving.
    assert_eq!(post(&c, PROTOBUF, None, good).await.status(), 200);
    assert_trace_readable(&c).await;
    let (_, metrics) = c.admin("/metrics").await;
    for (reason, count) in [
        ("malformed", 4.0),
        ("unsupported_media_type", 1.0),
        ("unsupported_encoding", 1.0),
        ("too_large", 2.0),
    ] {
        let series = format!(
            "tracelight_collector_requests_refused_total{{protocol=\"http\",reason=\"{reason}\"}}"
        );
        assert_eq!(metric_value(&metrics, &series), count, "{reason}");
    }
    assert_eq!(
        metric_value(
            &metrics,
            "tracelight_collector_spans_refused_total{protocol=\"http\",reason=\"invalid_span\"}"
        ),
        3.0
    );
    c.stop().await;
}

#[tokio::test]
async fn malformed_grpc_inputs_get_the_right_code_and_the_collector_keeps_serving() {
    let c = TestCollector::start(|cfg| cfg.receiver.max_request_bytes = 4096).await;
    let mut client = TraceServiceClient::connect(c.grpc_url()).await.unwrap();

    // Over the limit → RESOURCE_EXHAUSTED without RetryInfo.
    let mut big = fixture_request();
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(8192);
    let status = client.export(big.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.get_details_retry_info().is_none());

    // Over the limit only after decompression → RESOURCE_EXHAUSTED too.
    let mut gz = TraceServiceClient::connect(c.grpc_url())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let status = gz.export(big).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // Invalid spans → partial success.
    let mut request = fixture_request();
    request.resource_spans[1].scope_spans[0].spans[1].trace_id = vec![7; 3];
    let response = client.export(request).await.unwrap().into_inner();
    assert_eq!(response.partial_success.unwrap().rejected_spans, 1);

    // Still serving.
    client.export(fixture_request()).await.unwrap();
    assert_trace_readable(&c).await;
    c.stop().await;
}

#[tokio::test]
async fn undecodable_grpc_message_is_invalid_argument() {
    let c = TestCollector::start(|_| {}).await;
    // A raw gRPC frame whose payload is not an ExportTraceServiceRequest.
    let mut frame = vec![0u8, 0, 0, 0, 4];
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0x01]);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(format!(
            "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            c.grpc_url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "3");
    c.stop().await;
}

/// A store whose writes wait for a gate, to hold the pipeline full.
#[derive(Debug)]
struct GatedStore {
    inner: MemoryStore,
    open: Mutex<bool>,
    opened: Condvar,
    entered: AtomicUsize,
}

impl GatedStore {
    /// A store whose writes block until [`GatedStore::open_gate`].
    fn closed() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(1000),
            open: Mutex::new(false),
            opened: Condvar::new(),
            entered: AtomicUsize::new(0),
        })
    }

    fn open_gate(&self) {
        *self.open.lock() = true;
        self.opened.notify_all();
    }
}

impl SpanStore for GatedStore {
    fn write_batch(&self, batch: SpanBatch) -> Result<(), StoreError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock();
        while !*open {
            self.opened.wait(&mut open);
        }
        drop(open);
        self.inner.write_batch(batch)
    }
    fn get_trace(&self, id: TraceId) -> Result<Option<Trace>, StoreError> {
        self.inner.get_trace(id)
    }
    fn services(&self) -> Result<Vec<String>, StoreError> {
        self.inner.services()
    }
    fn operations(&self, s: &str, k: Option<Kind>) -> Result<Vec<Operation>, StoreError> {
        self.inner.operations(s, k)
    }
    fn find_traces(&self, q: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        self.inner.find_traces(q)
    }
    fn dependencies(&self, a: u64, b: u64) -> Result<Vec<DependencyLink>, StoreError> {
        self.inner.dependencies(a, b)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test]
async fn full_pipeline_answers_503_and_unavailable_then_recovers() {
    let store = GatedStore::closed();
    let c = Arc::new(
        TestCollector::start_with_store(
            |cfg| cfg.pipeline.capacity = 1,
            Arc::clone(&store) as Arc<dyn SpanStore>,
        )
        .await,
    );
    // First requests: one per pipeline worker, each of which blocks in the store. Sent one at
    // a time: with a one-batch queue, two arriving before a worker takes the first would
    // already be backpressure.
    let mut first = Vec::new();
    for n in 1..=pipeline::WORKERS {
        first.push(spawn_post(&c, one_span_request(TRACE_1).encode_to_vec()));
        eventually("a worker to block", async || {
            store.entered.load(Ordering::SeqCst) == n
        })
        .await;
    }
    // Second request: fills the one-batch queue.
    let second = spawn_post(&c, one_span_request(TRACE_2).encode_to_vec());
    eventually("the queue to fill", async || {
        let (_, m) = c.admin("/metrics").await;
        metric_value(&m, "tracelight_collector_pipeline_queued_batches") == 1.0
    })
    .await;

    // Now HTTP gets 503 + Retry-After, gRPC gets UNAVAILABLE + RetryInfo.
    let response = post(
        &c,
        PROTOBUF,
        None,
        one_span_request(TRACE_1).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let status = TraceServiceClient::connect(c.grpc_url())
        .await
        .unwrap()
        .export(one_span_request(TRACE_1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));

    store.open_gate();
    for first in first {
        assert_eq!(first.await.unwrap(), 200);
    }
    assert_eq!(second.await.unwrap(), 200);
    let (_, m) = c.admin("/metrics").await;
    for protocol in ["http", "grpc"] {
        let series = format!(
            "tracelight_collector_requests_refused_total{{protocol=\"{protocol}\",reason=\"backpressure\"}}"
        );
        assert_eq!(metric_value(&m, &series), 1.0);
    }
    assert_eq!(
        post(
            &c,
            PROTOBUF,
            None,
            one_span_request(TRACE_1).encode_to_vec()
        )
        .await
        .status(),
        200
    );
    let c = Arc::into_inner(c).unwrap();
    c.stop().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_turns_not_ready() {
    let store = GatedStore::closed();
    let c = TestCollector::start_with_store(|_| {}, Arc::clone(&store) as Arc<dyn SpanStore>).await;
    assert_eq!(c.admin("/ready").await.0, 200);
    assert_eq!(c.admin("/health").await.0, 200);
    let url = c.otlp_http_url();
    let http = c.http.clone();
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .header("content-type", PROTOBUF)
            .body(one_span_request(TRACE_1).encode_to_vec())
            .send()
            .await
            .unwrap()
            .status()
    });
    eventually("the write to start", async || {
        store.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    c.shutdown.cancel();
    eventually("readiness to drop", async || {
        c.admin("/ready").await.0 == 503
    })
    .await;
    store.open_gate();
    // The request that was in the pipeline is stored and acknowledged.
    assert_eq!(in_flight.await.unwrap(), 200);
    c.running.wait().await.unwrap();
    let id = TraceId::from_hex(TRACE_1).unwrap();
    assert!(store.get_trace(id).unwrap().is_some());
}

#[tokio::test]
async fn the_span_budget_bounds_the_queue_whatever_the_batch_count() {
    let store = GatedStore::closed();
    let c = Arc::new(
        TestCollector::start_with_store(
            |cfg| {
                cfg.pipeline.capacity = 64;
                cfg.pipeline.max_queued_spans = 1;
            },
            Arc::clone(&store) as Arc<dyn SpanStore>,
        )
        .await,
    );
    // One span in the store's hands uses the whole budget...
    let first = spawn_post(&c, one_span_request(TRACE_1).encode_to_vec());
    eventually("the write to start", async || {
        store.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    // ...so the next request is refused at once although 63 batch slots are free.
    let refused = post(
        &c,
        PROTOBUF,
        None,
        one_span_request(TRACE_2).encode_to_vec(),
    )
    .await;
    assert_eq!(refused.status(), 503);
    store.open_gate();
    assert_eq!(first.await.unwrap(), 200);
    // The budget is returned after the write.
    let accepted = post(
        &c,
        PROTOBUF,
        None,
        one_span_request(TRACE_2).encode_to_vec(),
    )
    .await;
    assert_eq!(accepted.status(), 200);
    let c = Arc::into_inner(c).unwrap();
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decode_budget_refuses_large_requests_beyond_it_then_recovers() {
    use tracelight_collector::receiver::limits::DECODE_BUDGET_BYTES;
    let store = GatedStore::closed();
    let c = Arc::new(
        TestCollector::start_with_store(|_| {}, Arc::clone(&store) as Arc<dyn SpanStore>).await,
    );
    // A request of 5/8 of the budget decodes and waits in the store, keeping its bytes...
    let first = spawn_post(&c, large_request(TRACE_1, DECODE_BUDGET_BYTES / 8 * 5));
    eventually("the write to start", async || {
        store.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    // ...so a second one of half the budget is refused at once, with a retry delay, while the
    // pipeline itself has room.
    let second = large_request(TRACE_2, DECODE_BUDGET_BYTES / 2);
    let refused = post(&c, PROTOBUF, None, second.clone()).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let (_, metrics) = c.admin("/metrics").await;
    assert_eq!(
        metric_value(
            &metrics,
            "tracelight_collector_requests_refused_total{protocol=\"http\",reason=\"backpressure\"}"
        ),
        1.0
    );
    store.open_gate();
    assert_eq!(first.await.unwrap(), 200);
    // With the first one answered, its bytes are back in the budget.
    assert_eq!(post(&c, PROTOBUF, None, second).await.status(), 200);
    let c = Arc::into_inner(c).unwrap();
    c.stop().await;
}
