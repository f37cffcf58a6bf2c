//! Tests against the collector binary as a child process (SIGKILL, RSS, two collectors).
//! Included with `#[path]` by the test crates that need one.
#![allow(
    dead_code,
    reason = "each test crate uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed unwrap is a failed test, with its location"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tracelight-collector");

/// A running collector process and its base URLs.
pub(crate) struct CollectorProcess {
    pub(crate) child: Child,
    pub(crate) grpc: String,
    pub(crate) http: String,
    pub(crate) query: String,
    pub(crate) admin: String,
    /// The start-up log line (`otlp_grpc`, `otlp_http`, `query`, `admin` addresses).
    listening: serde_json::Value,
}

/// The listener flags for ephemeral loopback ports, except the OTLP ones given.
pub(crate) fn listen_args(grpc: &str, http: &str) -> Vec<String> {
    [
        "--otlp-grpc-listen",
        grpc,
        "--otlp-http-listen",
        http,
        "--query-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl CollectorProcess {
    /// Starts the binary on ephemeral loopback ports with `args` after the listener flags.
    pub(crate) fn spawn(args: &[&std::ffi::OsStr]) -> Self {
        let mut all: Vec<std::ffi::OsString> = listen_args("127.0.0.1:0", "127.0.0.1:0")
            .into_iter()
            .map(Into::into)
            .collect();
        all.extend(args.iter().map(|a| a.to_os_string()));
        Self::spawn_with(&all, &[])
    }

    /// Starts the binary with exactly `args` (listener flags included) and extra `env`, and
    /// reads the bound addresses from its start-up log line. Its WARN and ERROR lines are
    /// echoed to the test's stderr.
    pub(crate) fn spawn_with<A: AsRef<std::ffi::OsStr>>(
        args: &[A],
        env: &[(&str, String)],
    ) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("TRACELIGHT_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("OTEL_TRACES_EXPORTER")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = loop {
            let line = lines
                .next()
                .expect("collector exited before listening")
                .unwrap();
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "tracelight collector listening" {
                break v;
            }
        };
        // Keep draining stdout so the collector never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("\"WARN\"") || line.contains("\"ERROR\"") {
                    eprintln!("collector: {line}");
                }
            }
        });
        let url = |k: &str| format!("http://{}", listening[k].as_str().unwrap());
        Self {
            child,
            grpc: url("otlp_grpc"),
            http: url("otlp_http"),
            query: url("query"),
            admin: url("admin"),
            listening,
        }
    }

    /// The base URL of a listener (`otlp_grpc`, `otlp_http`, `query`, `admin`).
    pub(crate) fn url(&self, key: &str) -> String {
        format!("http://{}", self.addr(key))
    }

    /// A bound address (`otlp_grpc`, `otlp_http`, `query`, `admin`) without scheme.
    pub(crate) fn addr(&self, key: &str) -> String {
        self.listening[key].as_str().unwrap().to_owned()
    }

    /// Resident set size of the process, bytes (from `/proc/PID/status`).
    pub(crate) fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Trace id (hex) → span count of one export request.
pub(crate) fn spans_per_trace(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    for (span, _) in tracelight_loadgen::payload::spans_with_service(request) {
        let id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        *out.entry(id).or_default() += 1;
    }
    out
}
