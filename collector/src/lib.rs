//! # tracelight-collector
//!
//! Receives OpenTelemetry traces (OTLP over gRPC and HTTP), keeps them in a store, and serves
//! them through the Jaeger query API that Grafana and Jaeger UI read.
//!
//! ```text
//!  OTLP/gRPC :4317 ─► receiver::grpc ─┐  limits, gzip/zstd, JSON; in-flight decode budget
//!                                     ├─► receiver::Ingest: OTLP → model, invalid spans → partial
//!  OTLP/HTTP :4318 ─► receiver::http ─┘   success; on the receiving thread: derived::observe,
//!                                         encode once (WAL chunk), keep the request bytes
//!                                                  │
//!                                                  ▼  bounded queue; full → 503 / UNAVAILABLE
//!                                          pipeline workers ── ack when everything below is durable
//!                           ┌──────────────────────┴───────────────────────┐
//!                           ▼                                              ▼
//!        store (embedded: WAL + sealed zstd blocks; memory; none)   forward queue per upstream
//!                           │                                     (fsynced segments) ─► sender ─►
//!                           ▼                                      retry/backoff, TLS, gzip   upstream
//!  Grafana / Jaeger UI ─► query :16686  /api/… (Jaeger v1), /api/v3/…, /api/metrics/* (SPM) ◄─ derived
//!  Prometheus ─────────► admin :8888    /metrics (own, span metrics, service graph), /health, /ready
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
pub mod completion;
pub mod config;
pub mod derived;
pub mod error;
pub mod forward;
pub mod group;
mod intern;
pub mod metrics;
pub mod model;
pub mod pipeline;
mod prealloc;
pub mod query;
pub mod receiver;
pub mod store;

pub use app::{BoundAddrs, Running, run, start, start_with_store};
pub use error::RunError;
