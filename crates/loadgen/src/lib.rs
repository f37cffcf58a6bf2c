//! # tracelight-loadgen
//!
//! A load generator for the Tracelight collector (and any OTLP trace receiver). It sends
//! pre-encoded `ExportTraceServiceRequest`s — realistic 5-span traces over three services,
//! about 500 bytes and 10 attributes per span ([`payload`]) — over N OTLP/gRPC or OTLP/HTTP
//! connections for a fixed time, optionally rate-capped, and reports accepted spans per
//! second, partial-success rejections, errors by kind (backpressure counted apart), latency
//! percentiles and, given the collector's pid, its CPU time, memory and spans per CPU-second
//! ([`procfs`]). `--decode-baseline` measures the upper bound: prost decoding alone
//! ([`baseline`]).
//!
//! ```text
//! RequestPool (encoded once) ──nth(n): copy, fresh ids + times──► SenderTask × (connections × inflight)
//!                                                                   │ Sender::send (gRPC | HTTP)
//!                                                                   ▼
//!                                      Stats (counters + hdr histogram) ──merge──► LoadReport
//!                            /proc/PID/{stat,status} at window start/end ───────────┘
//! ```
//!
//! The binary is a thin wrapper around [`run_cli`]; the collector's decode bench uses
//! [`payload::build_request`] so both measure the same bytes.

pub mod baseline;
pub mod cli;
pub mod client;
pub mod payload;
pub mod pool;
pub mod procfs;
pub mod report;
pub mod run;
pub mod stats;

use std::sync::Arc;

pub use cli::Cli;
pub use client::Protocol;
pub use payload::build_request;
use pool::now_unix_nanos;
pub use report::{DecodeReport, LoadReport};

/// What a command run produced.
#[derive(Debug, Clone)]
pub enum Report {
    /// A load run.
    Load(Box<LoadReport>),
    /// A decode baseline.
    Decode(DecodeReport),
}

impl Report {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        let value = match self {
            Self::Load(r) => serde_json::to_string(r),
            Self::Decode(r) => serde_json::to_string(r),
        };
        value.unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise the report: {e}\"}}"))
    }

    /// Human-readable text.
    pub fn to_text(&self) -> String {
        match self {
            Self::Load(r) => r.to_text(),
            Self::Decode(r) => r.to_text(),
        }
    }

    /// Whether the run did what it should: some request was acknowledged (or, for the
    /// baseline, something was decoded).
    pub fn succeeded(&self) -> bool {
        match self {
            Self::Load(r) => r.requests_ok > 0,
            Self::Decode(r) => r.iterations > 0,
        }
    }
}

/// Runs what the command line asks for and returns its report.
pub fn run_cli(cli: &Cli) -> anyhow::Result<Report> {
    cli.validate()?;
    let ticks = procfs::clock_ticks_per_second();
    let this = procfs::ProcessProbe::this_process(ticks).ok();
    let seed = cli.seed.unwrap_or_else(now_unix_nanos);
    if cli.decode_baseline {
        let report = baseline::decode_baseline(cli.batch, cli.duration()?, seed, this.as_ref());
        return Ok(Report::Decode(report));
    }
    let collector = cli
        .pid
        .map(|pid| procfs::ProcessProbe::new(pid, ticks))
        .transpose()?;
    let config = run::LoadConfig {
        protocol: cli.protocol,
        addr: cli.target(),
        connections: cli.connections,
        inflight: cli.inflight,
        warmup: cli.warmup()?,
        duration: cli.duration()?,
        rate: cli.rate,
        backoff: std::time::Duration::from_millis(cli.backoff_ms),
    };
    let pool = Arc::new(pool::RequestPool::build(
        cli.pool,
        cli.batch,
        seed,
        now_unix_nanos(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run::run_load(&config, pool, collector, this))?;
    Ok(Report::Load(Box::new(report)))
}
