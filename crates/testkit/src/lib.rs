//! Test support for the Tracelight workspace (`publish = false`).
//!
//! - [`otlp_server`]: [`OtlpReceiver`], a loopback OTLP gRPC + HTTP trace receiver that records
//!   every request, with failure injection ([`Behavior`]);
//! - [`golden`]: [`assert_golden`] for whole-document comparisons, `UPDATE_GOLDEN=1` rewrites;
//! - [`http`]: [`TestServer`], an `axum::Router` served on an ephemeral loopback port;
//! - [`logs`]: [`LogCapture`], an in-memory `tracing-subscriber` writer.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tracelight_testkit::OtlpReceiver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let receiver = OtlpReceiver::start().await;
//! // Point the exporter under test at `receiver.grpc_endpoint()` (OTLP/gRPC) or
//! // `receiver.http_endpoint()` (OTLP/HTTP), export, then assert on what arrived:
//! let spans = receiver.wait_for_spans(1, Duration::from_millis(50)).await;
//! assert!(spans.is_empty(), "nothing was exported in this example");
//! assert!(receiver.http_traces_url().ends_with("/v1/traces"));
//! # }
//! ```
//!
//! The OTLP types are re-exported as [`proto`], so tests don't need their own
//! `opentelemetry-proto` dependency.

pub mod golden;
pub mod http;
pub mod logs;
pub mod otlp_server;

pub use golden::{GoldenMode, assert_golden, assert_golden_with};
pub use http::TestServer;
pub use logs::{LogCapture, line_with_message};
pub use opentelemetry_proto as proto;
pub use otlp_server::{
    AttrValue, Behavior, OtlpReceiver, Protocol, RecordedRequest, RecordedSpan,
    closed_loopback_endpoint, find_span,
};
