//! `TestServer` and `LogCapture`.

use std::io::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use tracelight_testkit::{LogCapture, TestServer};
use tracing_subscriber::fmt::MakeWriter as _;

#[tokio::test]
async fn test_server_serves_the_router_with_connect_info() {
    let router = Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let server = TestServer::spawn(router).await;
    assert!(server.addr().ip().is_loopback());
    assert_ne!(server.addr().port(), 0);
    assert_eq!(
        server.url("/peer"),
        format!("http://{}/peer", server.addr())
    );
    assert_eq!(server.url("peer"), server.url("/peer"));

    let response = reqwest::get(server.url("/peer")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "127.0.0.1");

    let missing = reqwest::get(server.url("/nope")).await.unwrap();
    assert_eq!(missing.status(), 404);

    let url = server.url("/peer");
    server.shutdown().await;
    let err = reqwest::get(url).await.expect_err("server is stopped");
    assert!(err.is_connect(), "{err:?}");
}

#[test]
fn log_capture_records_fmt_output() {
    let capture = LogCapture::new();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(user = 7, "first");
        tracing::warn!("second");
    });

    let lines = capture.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("INFO"), "{lines:?}");
    assert!(lines[0].contains("first user=7"), "{lines:?}");
    assert!(lines[1].contains("WARN"), "{lines:?}");
    assert!(capture.contents().ends_with('\n'));

    capture.clear();
    assert!(capture.contents().is_empty());
}

#[test]
fn log_capture_parses_json_lines() {
    let capture = LogCapture::new();
    let mut writer = capture.make_writer();
    writer
        .write_all(b"{\"level\":\"INFO\",\"n\":1}\n\n{\"level\":\"WARN\",\"n\":2}\n")
        .unwrap();

    let values = capture.json_lines();
    assert_eq!(values.len(), 2);
    assert_eq!(values[0]["level"], "INFO");
    assert_eq!(values[1]["n"], 2);
}

#[test]
#[should_panic(expected = "not json at all")]
fn log_capture_json_lines_panics_with_the_bad_line() {
    let capture = LogCapture::new();
    let mut writer = capture.make_writer();
    writer
        .write_all(b"{\"ok\":true}\nnot json at all\n")
        .unwrap();
    let _ = capture.json_lines();
}
