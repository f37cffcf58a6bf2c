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

/// Clients posting load-generator requests to a collector's OTLP/HTTP until stopped or the
/// collector is gone; the acknowledged requests are recorded (trace id → span count each).
pub(crate) struct Load {
    acked: std::sync::Arc<parking_lot::Mutex<Vec<std::collections::HashMap<String, usize>>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `senders` clients of `spans` spans per request against `http_base`; `seed` keeps
    /// the trace ids of different loads apart.
    pub(crate) fn start_with(senders: u64, spans: usize, http_base: &str, seed: u64) -> Self {
        use prost::Message as _;
        use std::sync::atomic::Ordering;
        let client = reqwest::Client::new();
        let acked: std::sync::Arc<parking_lot::Mutex<Vec<_>>> = std::sync::Arc::default();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let now = tracelight_loadgen::pool::now_unix_nanos();
        let tasks = (0..senders)
            .map(|sender| {
                let (client, url, acked, stop) = (
                    client.clone(),
                    format!("{http_base}/v1/traces"),
                    std::sync::Arc::clone(&acked),
                    std::sync::Arc::clone(&stop),
                );
                tokio::spawn(async move {
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let request = tracelight_loadgen::payload::build_request(
                            spans,
                            seed << 48 | sender << 32 | i,
                            now,
                        );
                        let sent = client
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(request.encode_to_vec())
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == 200 => {
                                acked.lock().push(spans_per_trace(&request));
                            }
                            Ok(r) => panic!("unexpected status {} from the collector", r.status()),
                            // The collector is gone: stop sending.
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        Self { acked, stop, tasks }
    }

    /// Requests acknowledged so far.
    pub(crate) fn acked(&self) -> usize {
        self.acked.lock().len()
    }

    /// Waits (at most a minute) until `n` requests were acknowledged.
    pub(crate) async fn wait_acked(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.acked() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} requests acknowledged",
                self.acked()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients; the acknowledged requests.
    pub(crate) async fn stop(self) -> Vec<std::collections::HashMap<String, usize>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.acked.lock().clone()
    }
}

/// Spans of `trace_id` as a collector's Jaeger API (`query_base`) returns them (0 if absent).
pub(crate) async fn stored_span_count(
    client: &reqwest::Client,
    query_base: &str,
    trace_id: &str,
) -> usize {
    let resp = client
        .get(format!("{query_base}/api/traces/{trace_id}"))
        .send()
        .await
        .unwrap();
    if resp.status() != 200 {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    v["data"][0]["spans"].as_array().map_or(0, Vec::len)
}
