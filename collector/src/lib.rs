//! # tracelight-collector
//!
//! Receives OpenTelemetry traces (OTLP over gRPC and HTTP), keeps them in a store, and serves
//! them through the Jaeger query API that Grafana and Jaeger UI read.
//!
//! ```text
//!  OTLP/gRPC :4317 ──► receiver::grpc ─┐
//!                                      ├─► receiver::Ingest ──► pipeline (bounded queue) ──► store
//!  OTLP/HTTP :4318 ──► receiver::http ─┘   OTLP → model          full → 503 / UNAVAILABLE       │
//!                      (limits, gzip,      invalid spans →       ack after the store write      │
//!                       zstd, JSON)        partial success                                      │
//!                                                                                               ▼
//!  Grafana / Jaeger UI ──► query (:16686): /api/… (Jaeger v1), /api/v3/… ◄── SpanStore (memory now,
//!                                                                            on-disk later)
//!  Prometheus ──► admin (:8888): /metrics, /health, /ready
//!
//!  pipeline worker ──► forward queue per upstream (fsynced, on disk) ──► forward::sender ──► upstream OTLP
//!                      (ack waits for the store and the queues)          retry + backoff     (gRPC / HTTP)
//! ```
//!
//! [`run`] drives everything from a [`config::ValidatedConfig`] until its cancellation token
//! fires, then stops the receivers, drains the pipeline, flushes the store and stops the
//! servers (see [`app`]). The binary is a thin wrapper around it; tests use [`start`] to learn
//! the ports bound when the configuration asks for port 0.
//!
//! Contracts: `shared/reference/otlp-receiver.md` (ingest) and
//! `shared/reference/jaeger-query-api.md` (query).

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod derived;
pub mod error;
pub mod forward;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod query;
pub mod receiver;
pub mod store;

pub use app::{BoundAddrs, Running, run, start, start_with_store};
pub use error::RunError;
