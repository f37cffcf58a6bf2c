//! The collector binary as a child process on ephemeral loopback ports. Included with
//! `#[path]` by the test crates that need a real process (SIGKILL, RSS).
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
}

impl CollectorProcess {
    /// Starts the binary with `args` (after the ephemeral loopback listeners) and reads the
    /// bound addresses from its start-up log line.
    pub(crate) fn spawn(args: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(BIN)
            .args([
                "--otlp-grpc-listen",
                "127.0.0.1:0",
                "--otlp-http-listen",
                "127.0.0.1:0",
                "--query-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("TRACELIGHT_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("OTEL_TRACES_EXPORTER")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
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
        std::thread::spawn(move || lines.for_each(drop));
        let addr = |k: &str| format!("http://{}", listening[k].as_str().unwrap());
        Self {
            child,
            grpc: addr("otlp_grpc"),
            http: addr("otlp_http"),
            query: addr("query"),
            admin: addr("admin"),
        }
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
