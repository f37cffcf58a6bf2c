//! The OTLP receiver over real loopback sockets: gRPC, HTTP protobuf, HTTP JSON, gzip,
//! failure injection and waiting.

use std::io::Write as _;
use std::time::{Duration, Instant};

use prost::Message as _;
use tracelight_testkit::proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tracelight_testkit::proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tracelight_testkit::proto::tonic::common::v1::any_value::Value;
use tracelight_testkit::proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use tracelight_testkit::proto::tonic::resource::v1::Resource;
use tracelight_testkit::proto::tonic::trace::v1::span::SpanKind;
use tracelight_testkit::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use tracelight_testkit::{
    AttrValue, Behavior, OtlpReceiver, Protocol, RecordedSpan, closed_loopback_endpoint,
};

const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const ROOT_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
const CHILD_ID: [u8; 8] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];
const WAIT: Duration = Duration::from_secs(5);

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span(name: &str, id: [u8; 8], parent: Option<[u8; 8]>, kind: SpanKind) -> Span {
    Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        attributes: vec![
            kv("http.route", Value::StringValue("/users/{id}".to_owned())),
            kv("http.response.status_code", Value::IntValue(200)),
            kv("retry", Value::BoolValue(false)),
            kv("ratio", Value::DoubleValue(0.5)),
            kv("raw", Value::BytesValue(vec![1, 2])),
        ],
        ..Default::default()
    }
}

/// One resource (`service.name = checkout`), one scope, a server root span and a client child.
fn sample_request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    Value::StringValue("checkout".to_owned()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tracelight".to_owned(),
                    ..Default::default()
                }),
                spans: vec![
                    span("GET /users/{id}", ROOT_ID, None, SpanKind::Server),
                    span("db.query", CHILD_ID, Some(ROOT_ID), SpanKind::Client),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn single_span_request(name: &str) -> ExportTraceServiceRequest {
    let mut request = sample_request();
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    spans.truncate(1);
    spans[0].name = name.to_owned();
    request
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip into a Vec");
    encoder.finish().expect("finish gzip")
}

fn assert_sample_spans(spans: &[RecordedSpan]) {
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let root = &spans[0];
    let child = &spans[1];

    assert_eq!(root.name(), "GET /users/{id}");
    assert_eq!(root.kind(), SpanKind::Server);
    assert_eq!(root.scope_name, "tracelight");
    assert_eq!(root.trace_id_hex(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(root.span_id_hex(), "eee19b7ec3c1b174");
    assert_eq!(root.parent_span_id_hex(), None);
    assert_eq!(
        root.resource_attr("service.name"),
        Some(AttrValue::Str("checkout".to_owned()))
    );
    assert_eq!(root.resource_attr("service.version"), None);

    assert_eq!(child.name(), "db.query");
    assert_eq!(child.kind(), SpanKind::Client);
    assert_eq!(child.span_id_hex(), "0001020304050607");
    assert_eq!(
        child.parent_span_id_hex().as_deref(),
        Some("eee19b7ec3c1b174")
    );
    assert_eq!(child.trace_id_hex(), root.trace_id_hex());

    assert_eq!(
        child
            .attr("http.route")
            .as_ref()
            .and_then(AttrValue::as_str),
        Some("/users/{id}")
    );
    assert_eq!(
        child
            .attr("http.response.status_code")
            .as_ref()
            .and_then(AttrValue::as_int),
        Some(200)
    );
    assert_eq!(child.attr("retry"), Some(AttrValue::Bool(false)));
    assert_eq!(child.attr("ratio"), Some(AttrValue::Double(0.5)));
    assert_eq!(child.attr("raw"), Some(AttrValue::Other));
    assert_eq!(child.attr("missing"), None);
    assert_eq!(AttrValue::Int(1).as_str(), None);
    assert_eq!(AttrValue::Str("1".to_owned()).as_int(), None);
}

async fn post(
    url: &str,
    content_type: &str,
    gzip_encoded: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .header("x-test", "http");
    if gzip_encoded {
        request = request.header("content-encoding", "gzip");
    }
    request.body(body).send().await.expect("send HTTP request")
}

#[tokio::test]
async fn endpoints_are_loopback_urls() {
    let receiver = OtlpReceiver::start().await;
    let grpc = receiver.grpc_endpoint();
    let http = receiver.http_endpoint();
    assert!(grpc.starts_with("http://127.0.0.1:"), "{grpc}");
    assert!(http.starts_with("http://127.0.0.1:"), "{http}");
    assert_ne!(grpc, http, "gRPC and HTTP listen on separate ports");
    assert_eq!(receiver.http_traces_url(), format!("{http}/v1/traces"));
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn grpc_export_is_recorded_and_flattened() {
    let receiver = OtlpReceiver::start().await;
    let mut client = TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .unwrap();
    let mut request = tonic::Request::new(sample_request());
    request
        .metadata_mut()
        .insert("x-test", "grpc".parse().unwrap());
    let response = client.export(request).await.unwrap().into_inner();
    assert_eq!(response, ExportTraceServiceResponse::default());

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].protocol, Protocol::Grpc);
    assert!(requests[0].accepted);
    assert_eq!(requests[0].headers["x-test"], "grpc");
    assert_eq!(requests[0].request, sample_request());
    assert_sample_spans(&receiver.spans());
}

#[tokio::test]
async fn grpc_accepts_gzip() {
    let receiver = OtlpReceiver::start().await;
    let mut client = TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    client.export(sample_request()).await.unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].headers["grpc-encoding"], "gzip");
    assert_sample_spans(&receiver.spans());
}

#[tokio::test]
async fn http_protobuf_export_is_recorded() {
    let receiver = OtlpReceiver::start().await;
    let response = post(
        &receiver.http_traces_url(),
        "application/x-protobuf",
        false,
        sample_request().encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let body = response.bytes().await.unwrap();
    assert_eq!(
        ExportTraceServiceResponse::decode(body).unwrap(),
        ExportTraceServiceResponse::default()
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].protocol, Protocol::HttpProtobuf);
    assert_eq!(requests[0].headers["x-test"], "http");
    assert_eq!(requests[0].request, sample_request());
    assert_sample_spans(&receiver.spans());
}

#[tokio::test]
async fn http_json_export_is_recorded() {
    let receiver = OtlpReceiver::start().await;
    let body = serde_json::to_vec(&sample_request()).unwrap();
    let response = post(
        &receiver.http_traces_url(),
        "application/json; charset=utf-8",
        false,
        body,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.bytes().await.unwrap();
    let decoded: ExportTraceServiceResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(decoded, ExportTraceServiceResponse::default());

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].protocol, Protocol::HttpJson);
    assert_sample_spans(&receiver.spans());
}

/// OTLP/JSON as another implementation would write it: hex ids, camelCase, enum as integer.
#[tokio::test]
async fn http_json_accepts_spec_encoding() {
    let receiver = OtlpReceiver::start().await;
    let body = r#"{
      "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "scopeSpans": [{
          "scope": {"name": "manual"},
          "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "0001020304050607",
            "name": "checkout",
            "kind": 2,
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": "1544712661000000000",
            "attributes": [{"key": "http.response.status_code", "value": {"intValue": "503"}}]
          }]
        }]
      }]
    }"#;
    let response = post(
        &receiver.http_traces_url(),
        "application/json",
        false,
        body.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    let span = receiver
        .wait_for_span_named("checkout", WAIT)
        .await
        .expect("span recorded");
    assert_eq!(span.trace_id_hex(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(span.span_id_hex(), "eee19b7ec3c1b174");
    assert_eq!(
        span.parent_span_id_hex().as_deref(),
        Some("0001020304050607")
    );
    assert_eq!(span.kind(), SpanKind::Server);
    assert_eq!(span.scope_name, "manual");
    assert_eq!(
        span.resource_attr("service.name")
            .as_ref()
            .and_then(AttrValue::as_str),
        Some("cart")
    );
    assert_eq!(
        span.attr("http.response.status_code")
            .as_ref()
            .and_then(AttrValue::as_int),
        Some(503)
    );
}

#[tokio::test]
async fn http_accepts_gzip_for_both_encodings() {
    let receiver = OtlpReceiver::start().await;
    let url = receiver.http_traces_url();

    let protobuf = gzip(&sample_request().encode_to_vec());
    let response = post(&url, "application/x-protobuf", true, protobuf).await;
    assert_eq!(response.status(), 200);

    let json = gzip(&serde_json::to_vec(&sample_request()).unwrap());
    let response = post(&url, "application/json", true, json).await;
    assert_eq!(response.status(), 200);

    let requests = receiver.requests();
    let protocols: Vec<_> = requests.iter().map(|r| r.protocol).collect();
    assert_eq!(protocols, [Protocol::HttpProtobuf, Protocol::HttpJson]);
    assert!(requests.iter().all(|r| r.request == sample_request()));
    assert_eq!(receiver.spans().len(), 4);
}

#[tokio::test]
async fn http_rejects_bad_requests_without_recording() {
    let receiver = OtlpReceiver::start().await;
    let url = receiver.http_traces_url();

    let response = post(&url, "text/plain", false, b"hello".to_vec()).await;
    assert_eq!(response.status(), 415);

    let response = post(&url, "application/json", false, b"{not json".to_vec()).await;
    assert_eq!(response.status(), 400);

    let response = post(&url, "application/x-protobuf", true, b"not gzip".to_vec()).await;
    assert_eq!(response.status(), 400);

    let response = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 405);

    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn unavailable_behavior_rejects_both_protocols_then_recovers() {
    let receiver = OtlpReceiver::start().await;
    receiver.set_behavior(Behavior::Unavailable);

    let mut client = TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .unwrap();
    let status = client
        .export(sample_request())
        .await
        .expect_err("gRPC export must fail");
    assert_eq!(status.code(), tonic::Code::Unavailable);

    let response = post(
        &receiver.http_traces_url(),
        "application/x-protobuf",
        false,
        sample_request().encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 503);

    // Rejected attempts are recorded (to count retries) but contribute no spans.
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| !r.accepted));
    assert!(receiver.spans().is_empty());

    receiver.set_behavior(Behavior::Accept);
    client.export(sample_request()).await.unwrap();
    assert_eq!(receiver.requests().len(), 3);
    assert_sample_spans(&receiver.spans());
}

#[tokio::test]
async fn delay_behavior_delays_the_answer() {
    let receiver = OtlpReceiver::start().await;
    let delay = Duration::from_millis(300);
    receiver.set_behavior(Behavior::Delay(delay));

    let started = Instant::now();
    let response = post(
        &receiver.http_traces_url(),
        "application/x-protobuf",
        false,
        sample_request().encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());

    let mut client = TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .unwrap();
    let started = Instant::now();
    client.export(sample_request()).await.unwrap();
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());

    assert_eq!(receiver.spans().len(), 4);
}

#[tokio::test]
async fn wait_for_spans_wakes_on_arrival_and_times_out_quietly() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.grpc_endpoint();
    let sender = tokio::spawn(async move {
        let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.export(single_span_request("first")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.export(single_span_request("second")).await.unwrap();
    });

    let started = Instant::now();
    let spans = receiver.wait_for_spans(2, WAIT).await;
    assert_eq!(spans.len(), 2);
    assert!(
        started.elapsed() < WAIT,
        "woken by the arrival, not the timeout"
    );
    let names: Vec<_> = spans.iter().map(RecordedSpan::name).collect();
    assert_eq!(names, ["first", "second"]);
    sender.await.unwrap();

    // Fewer spans than asked for: returns what it has after the timeout.
    let started = Instant::now();
    let spans = receiver.wait_for_spans(3, Duration::from_millis(200)).await;
    assert_eq!(spans.len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(200));

    assert_eq!(
        receiver
            .wait_for_span_named("second", WAIT)
            .await
            .map(|s| s.span_id_hex()),
        Some("eee19b7ec3c1b174".to_owned())
    );
    assert_eq!(
        receiver
            .wait_for_span_named("third", Duration::from_millis(100))
            .await,
        None
    );

    receiver.clear();
    assert!(receiver.requests().is_empty());
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn wait_for_span_named_sees_a_later_request() {
    let receiver = OtlpReceiver::start().await;
    let url = receiver.http_traces_url();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(
            &url,
            "application/x-protobuf",
            false,
            single_span_request("late").encode_to_vec(),
        )
        .await;
    });
    let span = receiver.wait_for_span_named("late", WAIT).await;
    assert_eq!(span.map(|s| s.name().to_owned()).as_deref(), Some("late"));
}

#[tokio::test]
async fn closed_loopback_endpoint_refuses_connections() {
    let endpoint = closed_loopback_endpoint().await;
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let err = reqwest::Client::new()
        .post(format!("{endpoint}/v1/traces"))
        .send()
        .await
        .expect_err("nothing listens there");
    assert!(err.is_connect(), "{err:?}");
}

async fn refuses_connections(endpoint: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    let client = reqwest::Client::new();
    while Instant::now() < deadline {
        match client.get(endpoint).send().await {
            Err(err) if err.is_connect() => return true,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_servers() {
    let receiver = OtlpReceiver::start().await;
    let (grpc, http) = (receiver.grpc_endpoint(), receiver.http_endpoint());
    receiver.shutdown().await;
    assert!(refuses_connections(&grpc).await, "gRPC still listening");
    assert!(refuses_connections(&http).await, "HTTP still listening");

    let receiver = OtlpReceiver::start().await;
    let (grpc, http) = (receiver.grpc_endpoint(), receiver.http_endpoint());
    drop(receiver);
    assert!(refuses_connections(&grpc).await, "gRPC still listening");
    assert!(refuses_connections(&http).await, "HTTP still listening");
}
