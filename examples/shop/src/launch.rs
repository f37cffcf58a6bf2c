//! Starting the shop's services as child processes of one binary (`shop <service>`), each with
//! its own tracelight init, and stopping them in order.
//!
//! Services start dependencies first; each child's stdout (JSON log lines) is read line by
//! line: the `listening` line gives its bound address (so port 0 works), which becomes the
//! `SHOP_<SERVICE>_URL` of the services started after it. Every line is kept for
//! [`System::logs`], and [`Echo`] decides which ones are printed.
//!
//! Children get their own process group (a terminal's Ctrl-C reaches only the parent, which
//! then stops them callers-first) and `SHOP_STOP_ON_STDIN_EOF=true`: closing a child's stdin
//! is the stop signal, and a parent that dies closes it too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::config::{ENV_STOP_ON_STDIN_EOF, Service};
use crate::server::LISTENING_MESSAGE;

/// How long a child may take to announce its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child may take to drain and flush after its stdin closes.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Which child log lines to print on this process's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// None (tests).
    Nothing,
    /// Warnings, errors and lifecycle lines, condensed (the demo).
    Important,
}

/// How to start the system.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The `shop` binary.
    pub exe: PathBuf,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for every service (OTLP/HTTP base URL).
    pub otlp_endpoint: String,
    /// Bind every service to `127.0.0.1:0` instead of its configured address.
    pub ephemeral_ports: bool,
    /// Extra variables for every child (e.g. `SHOP_PAYMENTS_FAILURE_RATE`).
    pub env: Vec<(String, String)>,
    /// Which log lines to print.
    pub echo: Echo,
}

/// One running service.
#[derive(Debug)]
struct Running {
    service: Service,
    addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
    logs: Arc<Mutex<Vec<String>>>,
}

/// The running services.
#[derive(Debug)]
pub struct System {
    running: Vec<Running>,
}

impl System {
    /// Starts every service, dependencies first, and waits until each listens.
    pub async fn start(options: &LaunchOptions) -> anyhow::Result<Self> {
        let mut system = Self {
            running: Vec::new(),
        };
        let mut urls: HashMap<Service, String> = HashMap::new();
        for service in Service::ALL {
            let running = spawn(options, service, &urls)
                .await
                .with_context(|| format!("starting {}", service.name()))?;
            urls.insert(service, format!("http://{}", running.addr));
            system.running.push(running);
        }
        Ok(system)
    }

    /// The base URL of `service`.
    pub fn url(&self, service: Service) -> Option<String> {
        self.find(service).map(|r| format!("http://{}", r.addr))
    }

    /// Every stdout line `service` wrote so far.
    pub fn logs(&self, service: Service) -> Vec<String> {
        self.find(service)
            .map(|r| r.logs.lock().clone())
            .unwrap_or_default()
    }

    fn find(&self, service: Service) -> Option<&Running> {
        self.running.iter().find(|r| r.service == service)
    }

    /// Asks one service to stop (closes its stdin) without waiting: it drains, with `/ready`
    /// answering 503 for `SHOP_DRAIN_DELAY_MS`, then exits.
    pub fn request_stop(&mut self, service: Service) {
        if let Some(running) = self.running.iter_mut().find(|r| r.service == service) {
            drop(running.stdin.take());
        }
    }

    /// Stops one service (closes its stdin, waits for it to drain and exit).
    pub async fn stop_service(&mut self, service: Service) -> anyhow::Result<ExitStatus> {
        let running = self
            .running
            .iter_mut()
            .find(|r| r.service == service)
            .with_context(|| format!("{} is not running", service.name()))?;
        stop(running).await
    }

    /// Stops every service, callers first: the gateway, then orders, then the others
    /// together, so no request is cut off by a dependency going away. Each drains and flushes
    /// its telemetry on the way out.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        let mut record = |service: Service, result: anyhow::Result<ExitStatus>| match result {
            Ok(status) if status.success() => {}
            Ok(status) => failures.push(format!("{}: {status}", service.name())),
            Err(e) => failures.push(format!("{}: {e:#}", service.name())),
        };
        for caller in [Service::Gateway, Service::Orders] {
            if let Some(running) = self.running.iter_mut().find(|r| r.service == caller) {
                record(caller, stop(running).await);
            }
        }
        for running in &mut self.running {
            drop(running.stdin.take());
        }
        for running in &mut self.running {
            record(running.service, stop(running).await);
        }
        if !failures.is_empty() {
            bail!("unclean stop: {}", failures.join("; "));
        }
        Ok(())
    }
}

async fn stop(running: &mut Running) -> anyhow::Result<ExitStatus> {
    drop(running.stdin.take());
    match tokio::time::timeout(STOP_TIMEOUT, running.child.wait()).await {
        Ok(status) => Ok(status?),
        Err(_) => {
            running.child.start_kill()?;
            bail!("did not stop within {STOP_TIMEOUT:?}, killed")
        }
    }
}

async fn spawn(
    options: &LaunchOptions,
    service: Service,
    urls: &HashMap<Service, String>,
) -> anyhow::Result<Running> {
    let mut command = Command::new(&options.exe);
    command
        .arg(service.name())
        .env("TRACELIGHT_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &options.otlp_endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env(ENV_STOP_ON_STDIN_EOF, "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    if options.ephemeral_ports {
        command.env(service.addr_var(), "127.0.0.1:0");
    }
    for dependency in service.dependencies() {
        if let Some(url) = urls.get(dependency) {
            command.env(dependency.url_var(), url);
        }
    }
    for (k, v) in &options.env {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", options.exe.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = oneshot::channel();
    tokio::spawn(read_lines(
        service,
        BufReader::new(stdout),
        Arc::clone(&logs),
        Some(addr_tx),
        options.echo,
    ));
    tokio::spawn(read_lines(
        service,
        BufReader::new(stderr),
        Arc::clone(&logs),
        None,
        Echo::Important,
    ));
    let addr = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
        Ok(Ok(addr)) => addr,
        Ok(Err(_)) => {
            let status = child.wait().await?;
            // Give the stderr reader a moment to collect the error message.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let tail = logs.lock().join("\n");
            bail!("exited before listening ({status}):\n{tail}");
        }
        Err(_) => bail!("did not announce its address within {START_TIMEOUT:?}"),
    };
    let stdin = child.stdin.take();
    Ok(Running {
        service,
        addr,
        child,
        stdin,
        logs,
    })
}

async fn read_lines<R>(
    service: Service,
    reader: BufReader<R>,
    logs: Arc<Mutex<Vec<String>>>,
    mut addr_tx: Option<oneshot::Sender<SocketAddr>>,
    echo: Echo,
) where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let parsed: Option<serde_json::Value> = serde_json::from_str(&line).ok();
        if let Some(json) = &parsed
            && json["message"] == LISTENING_MESSAGE
            && let Some(addr) = json["addr"].as_str().and_then(|a| a.parse().ok())
            && let Some(tx) = addr_tx.take()
        {
            let _ = tx.send(addr);
        }
        if echo == Echo::Important
            && let Some(text) = condensed(service, &line, parsed.as_ref())
        {
            println!("{text}");
        }
        logs.lock().push(line);
    }
}

/// A one-line summary of an important log line, or `None` for routine ones.
fn condensed(service: Service, line: &str, json: Option<&serde_json::Value>) -> Option<String> {
    let name = service.name();
    let Some(json) = json else {
        return Some(format!("[{name:>8}] {line}"));
    };
    let level = json["level"].as_str().unwrap_or("?");
    let message = json["message"].as_str().unwrap_or("");
    let lifecycle = matches!(
        message,
        "listening" | "in-flight requests done, flushing telemetry"
    ) || message.starts_with("draining");
    if !(lifecycle || level == "WARN" || level == "ERROR") {
        return None;
    }
    let mut text = format!("[{name:>8}] {level:<5} {message}");
    for key in ["addr", "error", "part", "from", "to", "saga.step"] {
        if let Some(v) = json.get(key) {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            text.push_str(&format!(" {key}={v}"));
        }
    }
    if let Some(trace_id) = json["trace_id"].as_str() {
        text.push_str(&format!(" trace_id={trace_id}"));
    }
    Some(text)
}
