//! Forwarding settings: the `[forwarding]` defaults (also set by `TRACELIGHT_FORWARDING_*` and
//! `--forward*` flags) and the file's `[[forward]]` entries, resolved into one [`Upstream`]
//! per endpoint.
//!
//! ```toml
//! [forwarding]
//! endpoints = ["http://tempo:4317"]          # --forward (repeatable); gRPC unless the path
//!                                            # ends with /v1/traces (then OTLP/HTTP protobuf)
//! headers = { authorization = "Bearer x" }   # --forward-header k=v; env "k=v,k2=v2"
//! compression = "gzip"                       # or "zstd", "none"
//! ca_file = "/etc/ssl/private-ca.pem"        # extra trust root for https:// endpoints
//! timeout_seconds = 10                       # per attempt
//! max_queue_bytes = 1073741824               # disk cap per upstream queue (1 GiB)
//! max_batch_spans = 8192                     # spans per forwarded request, at most
//! max_in_flight = 4                          # concurrent requests per upstream
//! retry_initial_interval_ms = 5000
//! retry_max_interval_ms = 30000
//!
//! [[forward]]                                # per-upstream entries, in addition
//! endpoint = "https://otelcol.example:4318/v1/traces"
//! protocol = "http"                          # optional: grpc | http
//! headers = { x-tenant = "a" }               # merged over [forwarding] headers
//! compression = "none"                       # optional override
//! ca_file = "/etc/ssl/other-ca.pem"          # optional override
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default per-attempt timeout, seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// Default disk cap per upstream queue (1 GiB).
pub const DEFAULT_MAX_QUEUE_BYTES: u64 = 1 << 30;
/// Smallest accepted disk cap (1 MiB).
pub const MIN_MAX_QUEUE_BYTES: u64 = 1 << 20;
/// Default spans per forwarded request.
pub const DEFAULT_MAX_BATCH_SPANS: u64 = 8192;
/// Default concurrent requests per upstream.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// Longest upstream label (metric label and queue directory name).
pub const MAX_LABEL_CHARS: usize = 48;

/// Upstream transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// Request compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (the default, as in the OpenTelemetry Collector's exporters).
    #[default]
    Gzip,
    /// zstd (`Content-Encoding: zstd`, `grpc-encoding: zstd`) at a fast level: about half of
    /// gzip's CPU for a body of the same size. The OpenTelemetry Collector's OTLP receiver (and
    /// so Jaeger and Tempo, which use it) accepts it over HTTP and gRPC; the OTLP specification
    /// names only gzip, so other receivers may not.
    Zstd,
    /// None.
    None,
}

impl Compression {
    /// The `Content-Encoding` (HTTP) and `grpc-encoding` (gRPC) value, `None` uncompressed.
    pub fn encoding(self) -> Option<&'static str> {
        match self {
            Self::Gzip => Some("gzip"),
            Self::Zstd => Some("zstd"),
            Self::None => None,
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            "none" | "" => Ok(Self::None),
            other => Err(format!("expected gzip, zstd or none, got {other:?}")),
        }
    }
}

impl fmt::Display for UpstreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        })
    }
}

/// `[forwarding]`: the list of simple endpoints and the defaults of every upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardingConfig {
    /// Upstream endpoints using the defaults below.
    pub endpoints: Vec<String>,
    /// Headers sent to every upstream.
    pub headers: BTreeMap<String, String>,
    /// Request compression.
    pub compression: Compression,
    /// Extra trust root (PEM) for `https://` upstreams, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Per-attempt timeout, seconds.
    pub timeout_seconds: u64,
    /// Disk cap of each upstream's queue, bytes; when reached, receivers answer 503.
    pub max_queue_bytes: u64,
    /// Spans per forwarded request, at most (queued batches are merged up to it).
    pub max_batch_spans: u64,
    /// Concurrent requests per upstream.
    pub max_in_flight: usize,
    /// First retry delay, ms.
    pub retry_initial_interval_ms: u64,
    /// Longest computed retry delay, ms (server-given delays may be longer).
    pub retry_max_interval_ms: u64,
}

impl Default for ForwardingConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            ca_file: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            max_batch_spans: DEFAULT_MAX_BATCH_SPANS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry_initial_interval_ms: 5_000,
            retry_max_interval_ms: 30_000,
        }
    }
}

/// One `[[forward]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Endpoint URL.
    pub endpoint: String,
    /// Transport; inferred from the URL when absent.
    #[serde(default)]
    pub protocol: Option<UpstreamProtocol>,
    /// Headers, merged over `[forwarding] headers`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Compression override.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Trust root override.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// One effective upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Endpoint URL.
    pub endpoint: String,
    /// Metric label and queue directory name: the endpoint, sanitized and bounded.
    pub label: String,
    /// Transport.
    pub protocol: UpstreamProtocol,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Compression.
    pub compression: Compression,
    /// Extra trust root.
    pub ca_file: Option<PathBuf>,
}

impl ForwardingConfig {
    /// Per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// Retry delays: (initial, max).
    pub fn retry_intervals(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.retry_initial_interval_ms),
            Duration::from_millis(self.retry_max_interval_ms),
        )
    }
}

/// The transport an endpoint implies: OTLP/HTTP when its path ends with `/v1/traces`.
pub fn infer_protocol(endpoint: &str) -> UpstreamProtocol {
    let path = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split_once('/')
        .map_or("", |(_, path)| path);
    if path.trim_end_matches('/').ends_with("v1/traces") {
        UpstreamProtocol::Http
    } else {
        UpstreamProtocol::Grpc
    }
}

/// A label for metrics and the queue directory: scheme dropped, `[A-Za-z0-9]` kept, every
/// other run of characters one `_`, at most [`MAX_LABEL_CHARS`].
pub fn label(endpoint: &str) -> String {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let mut out = String::with_capacity(rest.len());
    for c in rest.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed: String = out
        .trim_matches('_')
        .chars()
        .take(MAX_LABEL_CHARS)
        .collect();
    if trimmed.is_empty() {
        "upstream".to_owned()
    } else {
        trimmed
    }
}

/// Parses `k=v,k2=v2` (the `OTEL_EXPORTER_OTLP_HEADERS` form).
pub fn parse_headers(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {pair:?}"))?;
        if k.trim().is_empty() {
            return Err(format!("empty header name in {pair:?}"));
        }
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(out)
}

/// Splits a comma-separated endpoint list.
pub fn parse_endpoints(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The effective upstreams: `[[forward]]` entries, then `forwarding.endpoints`.
pub fn upstreams(defaults: &ForwardingConfig, entries: &[UpstreamConfig]) -> Vec<Upstream> {
    let simple = defaults.endpoints.iter().map(|e| UpstreamConfig {
        endpoint: e.clone(),
        protocol: None,
        headers: BTreeMap::new(),
        compression: None,
        ca_file: None,
    });
    entries
        .iter()
        .cloned()
        .chain(simple)
        .map(|u| {
            let mut headers = defaults.headers.clone();
            headers.extend(u.headers);
            Upstream {
                label: label(&u.endpoint),
                protocol: u.protocol.unwrap_or_else(|| infer_protocol(&u.endpoint)),
                headers: headers.into_iter().collect(),
                compression: u.compression.unwrap_or(defaults.compression),
                ca_file: u.ca_file.or_else(|| defaults.ca_file.clone()),
                endpoint: u.endpoint,
            }
        })
        .collect()
}

/// Checks the forwarding settings; the error is (setting key, reason).
pub fn validate(
    defaults: &ForwardingConfig,
    entries: &[UpstreamConfig],
) -> Result<(), (&'static str, String)> {
    let checks: [(&'static str, bool, &str); 5] = [
        (
            "forwarding.timeout_seconds",
            (1..=600).contains(&defaults.timeout_seconds),
            "must be between 1 and 600",
        ),
        (
            "forwarding.max_queue_bytes",
            defaults.max_queue_bytes >= MIN_MAX_QUEUE_BYTES,
            "must be at least 1048576 (1 MiB)",
        ),
        (
            "forwarding.max_batch_spans",
            (1..=1_000_000).contains(&defaults.max_batch_spans),
            "must be between 1 and 1000000",
        ),
        (
            "forwarding.max_in_flight",
            (1..=64).contains(&defaults.max_in_flight),
            "must be between 1 and 64",
        ),
        (
            "forwarding.retry_initial_interval_ms",
            (1..=defaults.retry_max_interval_ms.max(1))
                .contains(&defaults.retry_initial_interval_ms)
                && defaults.retry_max_interval_ms <= 3_600_000,
            "must be at least 1 and at most retry_max_interval_ms (≤ 3600000)",
        ),
    ];
    for (key, ok, reason) in checks {
        if !ok {
            return Err((key, reason.to_owned()));
        }
    }
    let all = upstreams(defaults, entries);
    for (i, u) in all.iter().enumerate() {
        let key = if i < entries.len() {
            "forward.endpoint"
        } else {
            "forwarding.endpoints"
        };
        let uri: http::Uri = u
            .endpoint
            .parse()
            .map_err(|e| (key, format!("{:?} is not a URL: {e}", u.endpoint)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err((
                key,
                format!(
                    "{:?}: expected http://host:port or https://host:port",
                    u.endpoint
                ),
            ));
        }
        if let Some(dup) = all[..i].iter().find(|o| o.label == u.label) {
            return Err((
                key,
                format!(
                    "{:?} and {:?} are the same upstream",
                    dup.endpoint, u.endpoint
                ),
            ));
        }
        if let Some(ca) = &u.ca_file
            && !ca.is_file()
        {
            return Err((
                "forwarding.ca_file",
                format!("{} is not a file", ca.display()),
            ));
        }
        for (name, value) in &u.headers {
            if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return Err(("forwarding.headers", format!("invalid header {name:?}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use super::*;

    #[test]
    fn protocol_label_and_headers() {
        assert_eq!(infer_protocol("http://b:4317"), UpstreamProtocol::Grpc);
        assert_eq!(
            infer_protocol("https://b:4318/v1/traces"),
            UpstreamProtocol::Http
        );
        assert_eq!(label("http://127.0.0.1:4317"), "127_0_0_1_4317");
        assert_eq!(
            label("https://Tempo:4318/v1/traces"),
            "tempo_4318_v1_traces"
        );
        assert_eq!(
            label(&format!("http://{}", "a".repeat(200))).len(),
            MAX_LABEL_CHARS
        );
        let h = parse_headers("authorization=Bearer x, x-tenant = a").unwrap();
        assert_eq!(h["authorization"], "Bearer x");
        assert_eq!(h["x-tenant"], "a");
        assert!(parse_headers("novalue").is_err());
    }

    #[test]
    fn entries_override_defaults() {
        let mut d = ForwardingConfig {
            endpoints: vec!["http://a:4317".to_owned()],
            ..Default::default()
        };
        d.headers.insert("k".to_owned(), "1".to_owned());
        let mut e = UpstreamConfig {
            endpoint: "https://b:4318/v1/traces".to_owned(),
            protocol: None,
            headers: BTreeMap::new(),
            compression: Some(Compression::None),
            ca_file: None,
        };
        e.headers.insert("k".to_owned(), "2".to_owned());
        let all = upstreams(&d, &[e.clone()]);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].protocol, UpstreamProtocol::Http);
        assert_eq!(all[0].headers, vec![("k".to_owned(), "2".to_owned())]);
        assert_eq!(all[0].compression, Compression::None);
        assert_eq!(all[1].protocol, UpstreamProtocol::Grpc);
        assert_eq!(all[1].compression, Compression::Gzip);
        assert!(validate(&d, &[e.clone()]).is_ok());
        e.endpoint = "ftp://x".to_owned();
        assert_eq!(validate(&d, &[e]).unwrap_err().0, "forward.endpoint");
        d.endpoints.push("http://a:4317".to_owned());
        assert!(validate(&d, &[]).unwrap_err().1.contains("same upstream"));
    }
}
