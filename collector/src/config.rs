//! Configuration: a TOML file, `TRACELIGHT_*` environment variables and command-line flags.
//!
//! **Precedence: command line > environment > file > defaults**, applied in one place,
//! [`resolve`]. Every setting has a dotted key (`receiver.grpc_listen`), an environment
//! variable (`TRACELIGHT_RECEIVER_GRPC_LISTEN`) and usually a flag; see [`Setting`]. Unknown
//! keys in the file are an error, and every error names the setting it is about.
//!
//! ```toml
//! [storage]
//! backend = "embedded"          # on-disk, crash-safe (default); "memory" for tests and demos
//! data_dir = "./tracelight-data"
//! retention_hours = 168          # 7 days
//! max_disk_bytes = 10737418240   # 10 GiB; the oldest data goes first
//! memory_max_spans = 1000000     # cap of the memory store
//! direct_io = true               # WAL commits with O_DIRECT | O_DSYNC where the file system has them
//!
//! [receiver]
//! grpc_listen = "127.0.0.1:4317" # use "0.0.0.0:4317" to accept spans from the whole cluster
//! http_listen = "127.0.0.1:4318"
//! max_request_bytes = 67108864   # also applies after decompression
//! max_in_flight_bytes = 33554432 # bytes of all requests being read and decoded at once; past
//!                                # it, 503/UNAVAILABLE with a retry delay
//!
//! [pipeline]
//! capacity = 64                  # batches queued between receivers and store
//! max_queued_spans = 65536       # and at most this many spans, whatever the batch sizes
//! retry_after_seconds = 1
//!
//! [query]
//! listen = "127.0.0.1:16686"
//!
//! [admin]
//! listen = "127.0.0.1:8888"
//!
//! [spanmetrics]                  # RED metrics and the Monitor-tab API from received spans
//! enabled = true
//! dimensions = []                # extra labels from span/resource attributes
//! max_series = 5000              # per metric (also caps service-graph edges); then overflow
//! series_expiry_seconds = 300    # idle series (and edges) are dropped after this
//!
//! [servicegraph]
//! enabled = true
//! wait_seconds = 10              # a client/server span waits this long for its other half
//! max_pending = 10000            # spans waiting at once; more are dropped and counted
//!
//! [forwarding]                   # upstream OTLP endpoints, see crate::forward::config
//! endpoints = []                 # e.g. ["http://tempo:4317", "https://otel:4318/v1/traces"]
//! max_queue_bytes = 1073741824   # persistent queue per upstream, under data_dir/forward/
//!
//! [[forward]]                    # per-upstream entries with their own headers/TLS/compression
//! endpoint = "https://otel.example:4317"
//! headers = { authorization = "Bearer x" }
//! ```
//!
//! `storage.backend = "none"` (agent mode) stores nothing locally and needs an upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::derived::{ServiceGraphConfig, SpanMetricsConfig};
use crate::forward::config::{self as fwd, ForwardingConfig, Upstream, UpstreamConfig};
use crate::receiver::limits::{DECODE_BUDGET_BYTES, DEFAULT_MAX_REQUEST_BYTES};
use crate::store::EmbeddedConfig;

/// Environment variable naming the config file (the `--config` flag wins over it).
pub const ENV_CONFIG: &str = "TRACELIGHT_CONFIG";
/// Default OTLP/gRPC address.
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:4317";
/// Default OTLP/HTTP address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:4318";
/// Default query API address.
pub const DEFAULT_QUERY_LISTEN: &str = "127.0.0.1:16686";
/// Default admin address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8888";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tracelight-data";
/// Default span cap of the memory store.
pub const DEFAULT_MEMORY_MAX_SPANS: usize = 1_000_000;
/// Default retention of the embedded store, hours (7 days).
pub const DEFAULT_RETENTION_HOURS: u64 = 7 * 24;
/// Default disk cap of the embedded store (10 GiB).
pub const DEFAULT_MAX_DISK_BYTES: u64 = 10 << 30;
/// Smallest accepted disk cap (64 MiB).
pub const MIN_MAX_DISK_BYTES: u64 = 64 << 20;
/// Default pipeline queue length, in batches.
pub const DEFAULT_PIPELINE_CAPACITY: usize = 64;
/// Default cap on spans queued in the pipeline.
pub const DEFAULT_MAX_QUEUED_SPANS: usize = 65_536;

/// Reads environment variables; implemented for the process environment and for maps.
pub trait EnvLookup {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvLookup for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<S: std::hash::BuildHasher> EnvLookup for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// A configuration problem; the message names the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// File path.
        path: PathBuf,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys or wrong types.
    #[error("invalid config file {path}: {source}")]
    ParseFile {
        /// File path.
        path: PathBuf,
        /// Parser error (names the key).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// An environment variable or flag value does not parse.
    #[error("{setting} (from {origin}): invalid value {value:?}: {reason}")]
    Value {
        /// Dotted setting key.
        setting: &'static str,
        /// `environment variable X` or `command line`.
        origin: String,
        /// The raw value.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A value parses but is not acceptable.
    #[error("{setting}: {reason}")]
    Invalid {
        /// Dotted setting key.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Storage engine: `embedded` (on disk, the default) or `memory`.
    pub backend: String,
    /// Data directory of the embedded engine (validated, unused by `memory`).
    pub data_dir: PathBuf,
    /// Embedded engine: spans older than this many hours are deleted.
    pub retention_hours: u64,
    /// Embedded engine: upper bound of the data directory's size; the oldest data goes first.
    pub max_disk_bytes: u64,
    /// Span cap of the memory store; the oldest traces are evicted past it.
    pub memory_max_spans: usize,
    /// Embedded engine: commit the WAL with direct, synchronous writes where the file system
    /// supports them (less CPU per commit); `false` commits through the page cache and an
    /// `fdatasync`. Both are equally durable.
    pub direct_io: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: "embedded".to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            retention_hours: DEFAULT_RETENTION_HOURS,
            max_disk_bytes: DEFAULT_MAX_DISK_BYTES,
            memory_max_spans: DEFAULT_MEMORY_MAX_SPANS,
            direct_io: true,
        }
    }
}

/// OTLP receiver settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// OTLP/gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// OTLP/HTTP listen address.
    pub http_listen: SocketAddr,
    /// Largest accepted request, in bytes, before and after decompression.
    pub max_request_bytes: usize,
    /// Bytes of all requests being read, decompressed and decoded at once, across both
    /// receivers (the decode budget, `receiver::limits`); past it, requests get 503 /
    /// `UNAVAILABLE` with a retry delay. One request larger than this is admitted alone.
    pub max_in_flight_bytes: usize,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            grpc_listen: addr(DEFAULT_GRPC_LISTEN),
            http_listen: addr(DEFAULT_HTTP_LISTEN),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_in_flight_bytes: DECODE_BUDGET_BYTES,
        }
    }
}

/// Pipeline settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Batches queued between the receivers and the store; beyond it clients get 503.
    pub capacity: usize,
    /// Spans queued between receivers and store at most; bounds memory whatever the batch
    /// sizes (64 batches of 100 000 spans would otherwise all be held).
    pub max_queued_spans: usize,
    /// Retry delay suggested to throttled clients, in seconds.
    pub retry_after_seconds: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_PIPELINE_CAPACITY,
            max_queued_spans: DEFAULT_MAX_QUEUED_SPANS,
            retry_after_seconds: 1,
        }
    }
}

/// A listener setting (query API or admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Listen address.
    pub listen: SocketAddr,
}

/// The whole configuration tree, as in the TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[receiver]`.
    pub receiver: ReceiverConfig,
    /// `[pipeline]`.
    pub pipeline: PipelineConfig,
    /// `[query]`.
    pub query: ListenConfig,
    /// `[admin]`.
    pub admin: ListenConfig,
    /// `[spanmetrics]`.
    pub spanmetrics: SpanMetricsConfig,
    /// `[servicegraph]`.
    pub servicegraph: ServiceGraphConfig,
    /// `[forwarding]`: endpoints and defaults of every upstream.
    pub forwarding: ForwardingConfig,
    /// `[[forward]]`: upstreams with settings of their own (file only).
    pub forward: Vec<UpstreamConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            storage: StorageConfig::default(),
            receiver: ReceiverConfig::default(),
            pipeline: PipelineConfig::default(),
            query: ListenConfig {
                listen: addr(DEFAULT_QUERY_LISTEN),
            },
            admin: ListenConfig {
                listen: addr(DEFAULT_ADMIN_LISTEN),
            },
            spanmetrics: SpanMetricsConfig::default(),
            servicegraph: ServiceGraphConfig::default(),
            forwarding: ForwardingConfig::default(),
            forward: Vec::new(),
        }
    }
}

fn addr(text: &str) -> SocketAddr {
    // The defaults are literals that parse; fall back to an ephemeral port rather than panic.
    text.parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Every overridable setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// `storage.backend`.
    StorageBackend,
    /// `storage.data_dir`.
    DataDir,
    /// `storage.memory_max_spans`.
    MemoryMaxSpans,
    /// `storage.retention_hours`.
    RetentionHours,
    /// `storage.max_disk_bytes`.
    MaxDiskBytes,
    /// `storage.direct_io`.
    StorageDirectIo,
    /// `receiver.grpc_listen`.
    GrpcListen,
    /// `receiver.http_listen`.
    HttpListen,
    /// `receiver.max_request_bytes`.
    MaxRequestBytes,
    /// `receiver.max_in_flight_bytes`.
    MaxInFlightBytes,
    /// `pipeline.capacity`.
    PipelineCapacity,
    /// `pipeline.max_queued_spans`.
    PipelineMaxSpans,
    /// `pipeline.retry_after_seconds`.
    RetryAfterSeconds,
    /// `query.listen`.
    QueryListen,
    /// `admin.listen`.
    AdminListen,
    /// `spanmetrics.enabled`.
    SpanMetricsEnabled,
    /// `spanmetrics.dimensions` (comma-separated in env and flags).
    SpanMetricsDimensions,
    /// `spanmetrics.max_series`.
    SpanMetricsMaxSeries,
    /// `spanmetrics.series_expiry_seconds`.
    SpanMetricsSeriesExpiry,
    /// `servicegraph.enabled`.
    ServiceGraphEnabled,
    /// `servicegraph.wait_seconds`.
    ServiceGraphWaitSeconds,
    /// `servicegraph.max_pending`.
    ServiceGraphMaxPending,
    /// `forwarding.endpoints` (comma-separated in env; `--forward` repeatable).
    ForwardEndpoints,
    /// `forwarding.headers` (`k=v,k2=v2` in env; `--forward-header` repeatable).
    ForwardHeaders,
    /// `forwarding.compression`.
    ForwardCompression,
    /// `forwarding.ca_file`.
    ForwardCaFile,
    /// `forwarding.timeout_seconds`.
    ForwardTimeout,
    /// `forwarding.max_queue_bytes`.
    ForwardMaxQueueBytes,
    /// `forwarding.max_batch_spans`.
    ForwardMaxBatchSpans,
    /// `forwarding.max_in_flight`.
    ForwardMaxInFlight,
    /// `forwarding.retry_initial_interval_ms`.
    ForwardRetryInitial,
    /// `forwarding.retry_max_interval_ms`.
    ForwardRetryMax,
}

impl Setting {
    /// All settings.
    pub const ALL: [Self; 32] = [
        Self::StorageBackend,
        Self::DataDir,
        Self::MemoryMaxSpans,
        Self::RetentionHours,
        Self::MaxDiskBytes,
        Self::StorageDirectIo,
        Self::GrpcListen,
        Self::HttpListen,
        Self::MaxRequestBytes,
        Self::MaxInFlightBytes,
        Self::PipelineCapacity,
        Self::PipelineMaxSpans,
        Self::RetryAfterSeconds,
        Self::QueryListen,
        Self::AdminListen,
        Self::SpanMetricsEnabled,
        Self::SpanMetricsDimensions,
        Self::SpanMetricsMaxSeries,
        Self::SpanMetricsSeriesExpiry,
        Self::ServiceGraphEnabled,
        Self::ServiceGraphWaitSeconds,
        Self::ServiceGraphMaxPending,
        Self::ForwardEndpoints,
        Self::ForwardHeaders,
        Self::ForwardCompression,
        Self::ForwardCaFile,
        Self::ForwardTimeout,
        Self::ForwardMaxQueueBytes,
        Self::ForwardMaxBatchSpans,
        Self::ForwardMaxInFlight,
        Self::ForwardRetryInitial,
        Self::ForwardRetryMax,
    ];

    /// Dotted key in the TOML file.
    pub fn key(self) -> &'static str {
        match self {
            Self::StorageBackend => "storage.backend",
            Self::DataDir => "storage.data_dir",
            Self::MemoryMaxSpans => "storage.memory_max_spans",
            Self::RetentionHours => "storage.retention_hours",
            Self::MaxDiskBytes => "storage.max_disk_bytes",
            Self::StorageDirectIo => "storage.direct_io",
            Self::GrpcListen => "receiver.grpc_listen",
            Self::HttpListen => "receiver.http_listen",
            Self::MaxRequestBytes => "receiver.max_request_bytes",
            Self::MaxInFlightBytes => "receiver.max_in_flight_bytes",
            Self::PipelineCapacity => "pipeline.capacity",
            Self::PipelineMaxSpans => "pipeline.max_queued_spans",
            Self::RetryAfterSeconds => "pipeline.retry_after_seconds",
            Self::QueryListen => "query.listen",
            Self::AdminListen => "admin.listen",
            Self::SpanMetricsEnabled => "spanmetrics.enabled",
            Self::SpanMetricsDimensions => "spanmetrics.dimensions",
            Self::SpanMetricsMaxSeries => "spanmetrics.max_series",
            Self::SpanMetricsSeriesExpiry => "spanmetrics.series_expiry_seconds",
            Self::ServiceGraphEnabled => "servicegraph.enabled",
            Self::ServiceGraphWaitSeconds => "servicegraph.wait_seconds",
            Self::ServiceGraphMaxPending => "servicegraph.max_pending",
            Self::ForwardEndpoints => "forwarding.endpoints",
            Self::ForwardHeaders => "forwarding.headers",
            Self::ForwardCompression => "forwarding.compression",
            Self::ForwardCaFile => "forwarding.ca_file",
            Self::ForwardTimeout => "forwarding.timeout_seconds",
            Self::ForwardMaxQueueBytes => "forwarding.max_queue_bytes",
            Self::ForwardMaxBatchSpans => "forwarding.max_batch_spans",
            Self::ForwardMaxInFlight => "forwarding.max_in_flight",
            Self::ForwardRetryInitial => "forwarding.retry_initial_interval_ms",
            Self::ForwardRetryMax => "forwarding.retry_max_interval_ms",
        }
    }

    /// Environment variable: `TRACELIGHT_` + the key in upper case, `.` → `_`.
    pub fn env(self) -> String {
        format!(
            "TRACELIGHT_{}",
            self.key().replace('.', "_").to_ascii_uppercase()
        )
    }

    /// Parses `raw` into this setting of `config`.
    fn apply(self, config: &mut Config, raw: &str, origin: &str) -> Result<(), ConfigError> {
        fn parse<T: FromStr>(setting: Setting, raw: &str, origin: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            raw.trim().parse().map_err(|e: T::Err| ConfigError::Value {
                setting: setting.key(),
                origin: origin.to_owned(),
                value: raw.to_owned(),
                reason: e.to_string(),
            })
        }
        match self {
            Self::StorageBackend => config.storage.backend = raw.trim().to_owned(),
            Self::DataDir => config.storage.data_dir = PathBuf::from(raw),
            Self::MemoryMaxSpans => config.storage.memory_max_spans = parse(self, raw, origin)?,
            Self::RetentionHours => config.storage.retention_hours = parse(self, raw, origin)?,
            Self::MaxDiskBytes => config.storage.max_disk_bytes = parse(self, raw, origin)?,
            Self::StorageDirectIo => config.storage.direct_io = parse(self, raw, origin)?,
            Self::GrpcListen => config.receiver.grpc_listen = parse(self, raw, origin)?,
            Self::HttpListen => config.receiver.http_listen = parse(self, raw, origin)?,
            Self::MaxRequestBytes => config.receiver.max_request_bytes = parse(self, raw, origin)?,
            Self::MaxInFlightBytes => {
                config.receiver.max_in_flight_bytes = parse(self, raw, origin)?;
            }
            Self::PipelineCapacity => config.pipeline.capacity = parse(self, raw, origin)?,
            Self::PipelineMaxSpans => config.pipeline.max_queued_spans = parse(self, raw, origin)?,
            Self::RetryAfterSeconds => {
                config.pipeline.retry_after_seconds = parse(self, raw, origin)?;
            }
            Self::QueryListen => config.query.listen = parse(self, raw, origin)?,
            Self::AdminListen => config.admin.listen = parse(self, raw, origin)?,
            Self::SpanMetricsEnabled => config.spanmetrics.enabled = parse(self, raw, origin)?,
            Self::SpanMetricsDimensions => {
                config.spanmetrics.dimensions = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            Self::SpanMetricsMaxSeries => config.spanmetrics.max_series = parse(self, raw, origin)?,
            Self::SpanMetricsSeriesExpiry => {
                config.spanmetrics.series_expiry_seconds = parse(self, raw, origin)?;
            }
            Self::ServiceGraphEnabled => config.servicegraph.enabled = parse(self, raw, origin)?,
            Self::ServiceGraphWaitSeconds => {
                config.servicegraph.wait_seconds = parse(self, raw, origin)?;
            }
            Self::ServiceGraphMaxPending => {
                config.servicegraph.max_pending = parse(self, raw, origin)?;
            }
            Self::ForwardEndpoints => config.forwarding.endpoints = fwd::parse_endpoints(raw),
            Self::ForwardHeaders => {
                config.forwarding.headers =
                    fwd::parse_headers(raw).map_err(|reason| ConfigError::Value {
                        setting: self.key(),
                        origin: origin.to_owned(),
                        value: raw.to_owned(),
                        reason,
                    })?;
            }
            Self::ForwardCompression => config.forwarding.compression = parse(self, raw, origin)?,
            Self::ForwardCaFile => config.forwarding.ca_file = Some(PathBuf::from(raw.trim())),
            Self::ForwardTimeout => config.forwarding.timeout_seconds = parse(self, raw, origin)?,
            Self::ForwardMaxQueueBytes => {
                config.forwarding.max_queue_bytes = parse(self, raw, origin)?;
            }
            Self::ForwardMaxBatchSpans => {
                config.forwarding.max_batch_spans = parse(self, raw, origin)?;
            }
            Self::ForwardMaxInFlight => config.forwarding.max_in_flight = parse(self, raw, origin)?,
            Self::ForwardRetryInitial => {
                config.forwarding.retry_initial_interval_ms = parse(self, raw, origin)?;
            }
            Self::ForwardRetryMax => {
                config.forwarding.retry_max_interval_ms = parse(self, raw, origin)?;
            }
        }
        Ok(())
    }
}

/// Parses a TOML config file's text.
pub fn parse_file(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Reads the config file named by `cli_path`, else by `TRACELIGHT_CONFIG`; `None` if neither.
pub fn read_file(
    cli_path: Option<&Path>,
    env: &dyn EnvLookup,
) -> Result<Option<Config>, ConfigError> {
    let Some(path) = cli_path
        .map(Path::to_owned)
        .or_else(|| env.get(ENV_CONFIG).map(PathBuf::from))
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
        path: path.clone(),
        source,
    })?;
    parse_file(&path, &text).map(Some)
}

/// **The precedence rule**: starts from `file` (itself defaults + the file's keys), then
/// applies environment variables, then command-line values. Later sources win.
pub fn resolve(
    file: Option<Config>,
    env: &dyn EnvLookup,
    cli: &[(Setting, String)],
) -> Result<Config, ConfigError> {
    let mut config = file.unwrap_or_default();
    for setting in Setting::ALL {
        let name = setting.env();
        if let Some(raw) = env.get(&name) {
            setting.apply(&mut config, &raw, &format!("environment variable {name}"))?;
        }
    }
    for (setting, raw) in cli {
        setting.apply(&mut config, raw, "command line")?;
    }
    Ok(config)
}

/// The storage engine to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageBackend {
    /// The on-disk, crash-safe store in the data directory.
    Embedded,
    /// The bounded in-memory store.
    Memory,
    /// No local storage (agent mode): spans are only forwarded.
    None,
}

/// A configuration that passed [`Config::validate`].
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    config: Config,
    backend: StorageBackend,
}

impl ValidatedConfig {
    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The storage engine.
    pub fn backend(&self) -> StorageBackend {
        self.backend
    }

    /// Settings of the embedded store.
    pub fn embedded(&self) -> EmbeddedConfig {
        let s = &self.config.storage;
        let mut e = EmbeddedConfig::new(&s.data_dir);
        e.retention = Duration::from_secs(s.retention_hours * 3600);
        e.max_disk_bytes = s.max_disk_bytes;
        e.direct_io = s.direct_io;
        // Batches wait for the commit thread there (the pipeline hands them straight over).
        e.queue_depth = self.config.pipeline.capacity;
        e
    }

    /// Retry delay for throttled clients.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(self.config.pipeline.retry_after_seconds)
    }

    /// The upstreams to forward to (none: no forwarding).
    pub fn upstreams(&self) -> Vec<Upstream> {
        fwd::upstreams(&self.config.forwarding, &self.config.forward)
    }
}

impl Config {
    /// Checks every setting; the error names the first bad one.
    pub fn validate(self) -> Result<ValidatedConfig, ConfigError> {
        let invalid = |setting: Setting, reason: String| ConfigError::Invalid {
            setting: setting.key(),
            reason,
        };
        let backend = match self.storage.backend.as_str() {
            "embedded" => StorageBackend::Embedded,
            "memory" => StorageBackend::Memory,
            "none" => StorageBackend::None,
            other => {
                return Err(invalid(
                    Setting::StorageBackend,
                    format!(
                        "unsupported storage backend {other:?}; expected embedded, memory or none"
                    ),
                ));
            }
        };
        fwd::validate(&self.forwarding, &self.forward)
            .map_err(|(setting, reason)| ConfigError::Invalid { setting, reason })?;
        if backend == StorageBackend::None
            && fwd::upstreams(&self.forwarding, &self.forward).is_empty()
        {
            return Err(invalid(
                Setting::StorageBackend,
                "\"none\" stores nothing: it needs at least one --forward upstream".to_owned(),
            ));
        }
        if !(1..=24 * 365 * 10).contains(&self.storage.retention_hours) {
            return Err(invalid(
                Setting::RetentionHours,
                "must be between 1 and 87600 (10 years)".to_owned(),
            ));
        }
        if self.storage.max_disk_bytes < MIN_MAX_DISK_BYTES {
            return Err(invalid(
                Setting::MaxDiskBytes,
                format!("must be at least {MIN_MAX_DISK_BYTES} (64 MiB)"),
            ));
        }
        let dir = &self.storage.data_dir;
        if dir.as_os_str().is_empty() {
            return Err(invalid(Setting::DataDir, "must not be empty".to_owned()));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(invalid(
                Setting::DataDir,
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        if self.storage.memory_max_spans == 0 {
            return Err(invalid(
                Setting::MemoryMaxSpans,
                "must be at least 1".to_owned(),
            ));
        }
        if !(1024..=(1 << 31)).contains(&self.receiver.max_request_bytes) {
            return Err(invalid(
                Setting::MaxRequestBytes,
                "must be between 1024 and 2147483648".to_owned(),
            ));
        }
        if !((64 << 10)..=(1 << 40)).contains(&self.receiver.max_in_flight_bytes) {
            return Err(invalid(
                Setting::MaxInFlightBytes,
                "must be between 65536 and 1099511627776".to_owned(),
            ));
        }
        if !(1..=100_000_000).contains(&self.pipeline.max_queued_spans) {
            return Err(invalid(
                Setting::PipelineMaxSpans,
                "must be between 1 and 100000000".to_owned(),
            ));
        }
        if !(1..=1_000_000).contains(&self.pipeline.capacity) {
            return Err(invalid(
                Setting::PipelineCapacity,
                "must be between 1 and 1000000".to_owned(),
            ));
        }
        if !(1..=3600).contains(&self.pipeline.retry_after_seconds) {
            return Err(invalid(
                Setting::RetryAfterSeconds,
                "must be between 1 and 3600".to_owned(),
            ));
        }
        if !(1..=1_000_000).contains(&self.spanmetrics.max_series) {
            return Err(invalid(
                Setting::SpanMetricsMaxSeries,
                "must be between 1 and 1000000".to_owned(),
            ));
        }
        if !(10..=7 * 24 * 3600).contains(&self.spanmetrics.series_expiry_seconds) {
            return Err(invalid(
                Setting::SpanMetricsSeriesExpiry,
                "must be between 10 and 604800 (7 days)".to_owned(),
            ));
        }
        if let Some(bad) = self
            .spanmetrics
            .dimensions
            .iter()
            .find(|d| d.trim().is_empty() || d.len() > 256)
        {
            return Err(invalid(
                Setting::SpanMetricsDimensions,
                format!("{bad:?} is not an attribute name"),
            ));
        }
        if !(1..=3600).contains(&self.servicegraph.wait_seconds) {
            return Err(invalid(
                Setting::ServiceGraphWaitSeconds,
                "must be between 1 and 3600".to_owned(),
            ));
        }
        if !(1..=10_000_000).contains(&self.servicegraph.max_pending) {
            return Err(invalid(
                Setting::ServiceGraphMaxPending,
                "must be between 1 and 10000000".to_owned(),
            ));
        }
        let listeners = [
            (Setting::GrpcListen, self.receiver.grpc_listen),
            (Setting::HttpListen, self.receiver.http_listen),
            (Setting::QueryListen, self.query.listen),
            (Setting::AdminListen, self.admin.listen),
        ];
        for (i, (setting, a)) in listeners.iter().enumerate() {
            if let Some((other, _)) = listeners[..i].iter().find(|(_, b)| a.port() != 0 && a == b) {
                return Err(invalid(
                    *setting,
                    format!("{a} is already used by {}", other.key()),
                ));
            }
        }
        Ok(ValidatedConfig {
            config: self,
            backend,
        })
    }
}

#[cfg(test)]
mod tests;
