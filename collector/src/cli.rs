//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{ConfigError, EnvLookup, Setting, ValidatedConfig, read_file, resolve};

const AFTER_HELP: &str = "\
Every setting can also come from a TOML file (--config) or a TRACELIGHT_* environment variable.
Precedence: command line > environment > config file > defaults.

Environment variables:
  TRACELIGHT_CONFIG                        config file path
  TRACELIGHT_STORAGE_BACKEND               --storage
  TRACELIGHT_STORAGE_DATA_DIR              --data-dir
  TRACELIGHT_STORAGE_MEMORY_MAX_SPANS      --memory-max-spans
  TRACELIGHT_STORAGE_RETENTION_HOURS       --retention-hours
  TRACELIGHT_STORAGE_MAX_DISK_BYTES        --max-disk-bytes
  TRACELIGHT_STORAGE_DIRECT_IO             (file/env only) WAL commits with direct I/O [true]
  TRACELIGHT_RECEIVER_GRPC_LISTEN          --otlp-grpc-listen
  TRACELIGHT_RECEIVER_HTTP_LISTEN          --otlp-http-listen
  TRACELIGHT_RECEIVER_MAX_REQUEST_BYTES    --max-request-bytes
  TRACELIGHT_RECEIVER_MAX_IN_FLIGHT_BYTES  (file/env only) bytes of requests decoded at once [32 MiB]
  TRACELIGHT_PIPELINE_CAPACITY             --pipeline-capacity
  TRACELIGHT_PIPELINE_MAX_QUEUED_SPANS     --pipeline-max-spans
  TRACELIGHT_PIPELINE_RETRY_AFTER_SECONDS  (file/env only) retry delay suggested on overload
  TRACELIGHT_QUERY_LISTEN                  --query-listen
  TRACELIGHT_ADMIN_LISTEN                  --admin-listen
  TRACELIGHT_SPANMETRICS_ENABLED           --spanmetrics
  TRACELIGHT_SPANMETRICS_DIMENSIONS        --spanmetrics-dimensions
  TRACELIGHT_SPANMETRICS_MAX_SERIES        --metrics-max-series
  TRACELIGHT_SPANMETRICS_SERIES_EXPIRY_SECONDS  --metrics-series-expiry-seconds
  TRACELIGHT_SERVICEGRAPH_ENABLED          --servicegraph
  TRACELIGHT_SERVICEGRAPH_WAIT_SECONDS     (file/env only) wait for the other half of an edge
  TRACELIGHT_SERVICEGRAPH_MAX_PENDING      (file/env only) spans waiting to be paired
  TRACELIGHT_FORWARDING_ENDPOINTS          --forward (comma-separated in the variable)
  TRACELIGHT_FORWARDING_HEADERS            --forward-header (k=v,k2=v2 in the variable)
  TRACELIGHT_FORWARDING_COMPRESSION        --forward-compression
  TRACELIGHT_FORWARDING_CA_FILE            --forward-ca-file
  TRACELIGHT_FORWARDING_MAX_QUEUE_BYTES    --forward-max-queue-bytes
  TRACELIGHT_FORWARDING_TIMEOUT_SECONDS    (file/env only) per-attempt timeout
  TRACELIGHT_FORWARDING_MAX_BATCH_SPANS    (file/env only) spans per forwarded request
  TRACELIGHT_FORWARDING_MAX_IN_FLIGHT      (file/env only) concurrent requests per upstream
  TRACELIGHT_FORWARDING_RETRY_INITIAL_INTERVAL_MS  (file/env only) first retry delay
  TRACELIGHT_FORWARDING_RETRY_MAX_INTERVAL_MS      (file/env only) longest retry delay

All listeners default to 127.0.0.1. To receive spans from a whole cluster, listen on all
interfaces, e.g. --otlp-grpc-listen 0.0.0.0:4317 --otlp-http-listen 0.0.0.0:4318
(and --query-listen 0.0.0.0:16686 for Grafana / Jaeger UI on other hosts).

Log verbosity follows RUST_LOG (default: info); log format TRACELIGHT_LOG_FORMAT (json, pretty,
compact). The collector's own spans are exported only if OTEL_TRACES_EXPORTER=otlp is set.";

/// Tracelight collector: receives OTLP traces and serves them through the Jaeger query API.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "tracelight-collector", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// TOML config file (unknown keys are an error).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Load and validate the configuration, print the effective settings, and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Storage engine: `embedded` (on disk in --data-dir, crash-safe), `memory` (tests and
    /// demos, bounded by --memory-max-spans) or `none` (agent mode: only --forward; the query
    /// API answers as an empty store) [default: embedded].
    #[arg(long, value_name = "BACKEND")]
    pub storage: Option<String>,

    /// Data directory of the embedded store [default: ./tracelight-data].
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,

    /// Embedded store: delete spans older than this many hours [default: 168].
    #[arg(long, value_name = "HOURS")]
    pub retention_hours: Option<u64>,

    /// Embedded store: cap on the data directory's size in bytes; the oldest data is deleted
    /// first [default: 10737418240].
    #[arg(long, value_name = "BYTES")]
    pub max_disk_bytes: Option<u64>,

    /// Span cap of the memory store; oldest traces are evicted beyond it [default: 1000000].
    #[arg(long, value_name = "N")]
    pub memory_max_spans: Option<usize>,

    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc_listen: Option<SocketAddr>,

    /// OTLP/HTTP listen address (POST /v1/traces) [default: 127.0.0.1:4318].
    #[arg(long, value_name = "ADDR")]
    pub otlp_http_listen: Option<SocketAddr>,

    /// Largest accepted export request in bytes, also after decompression [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,

    /// Batches queued between receivers and store before clients get 503/UNAVAILABLE
    /// [default: 64].
    #[arg(long, value_name = "N")]
    pub pipeline_capacity: Option<usize>,

    /// Spans queued between receivers and store before clients get 503/UNAVAILABLE, whatever
    /// the batch sizes [default: 65536].
    #[arg(long, value_name = "N")]
    pub pipeline_max_spans: Option<usize>,

    /// Jaeger query API listen address (Grafana, Jaeger UI) [default: 127.0.0.1:16686].
    #[arg(long, value_name = "ADDR")]
    pub query_listen: Option<SocketAddr>,

    /// Admin listen address: /metrics, /health, /ready [default: 127.0.0.1:8888].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Derive span metrics (traces_span_metrics_*) and serve Jaeger's Monitor-tab API
    /// [default: true].
    #[arg(long, value_name = "BOOL")]
    pub spanmetrics: Option<bool>,

    /// Extra span-metrics labels: comma-separated attribute names, looked up in span then
    /// resource attributes (e.g. http.request.method) [default: none].
    #[arg(long, value_name = "ATTRS")]
    pub spanmetrics_dimensions: Option<String>,

    /// Series cap per derived metric; new label sets beyond it go to one overflow series
    /// [default: 5000].
    #[arg(long, value_name = "N")]
    pub metrics_max_series: Option<usize>,

    /// Derived series not updated for this many seconds are removed [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub metrics_series_expiry_seconds: Option<u64>,

    /// Derive the service graph (traces_service_graph_*) [default: true].
    #[arg(long, value_name = "BOOL")]
    pub servicegraph: Option<bool>,

    /// Forward every accepted span to this upstream OTLP endpoint (repeatable), through a
    /// persistent queue in --data-dir: `http(s)://host:4317` for gRPC, a URL ending in
    /// `/v1/traces` for OTLP/HTTP protobuf. Replaces forwarding.endpoints of the file/env.
    #[arg(long = "forward", value_name = "URL")]
    pub forward: Vec<String>,

    /// Header sent to every upstream, `name=value` (repeatable).
    #[arg(long = "forward-header", value_name = "NAME=VALUE")]
    pub forward_header: Vec<String>,

    /// Compression of forwarded requests: gzip, zstd or none [default: gzip]. zstd costs
    /// about half the CPU of gzip for the same size; OpenTelemetry Collector-based upstreams
    /// (Jaeger, Tempo) accept it.
    #[arg(long, value_name = "ALGO")]
    pub forward_compression: Option<String>,

    /// Extra CA certificate file (PEM) trusted for https:// upstreams, besides the system's.
    #[arg(long, value_name = "PATH")]
    pub forward_ca_file: Option<PathBuf>,

    /// Disk cap of each upstream's queue; when reached, clients get 503/UNAVAILABLE
    /// [default: 1073741824].
    #[arg(long, value_name = "BYTES")]
    pub forward_max_queue_bytes: Option<u64>,
}

impl Cli {
    /// Loads the file (if any), applies environment and flags, and validates.
    pub fn load_config(&self, env: &dyn EnvLookup) -> Result<ValidatedConfig, ConfigError> {
        let file = read_file(self.config.as_deref(), env)?;
        resolve(file, env, &self.overrides())?.validate()
    }

    /// The flags that were given, as settings for [`crate::config::resolve`].
    pub fn overrides(&self) -> Vec<(Setting, String)> {
        let mut out = Vec::new();
        let mut push = |setting, value: Option<String>| {
            if let Some(v) = value {
                out.push((setting, v));
            }
        };
        push(Setting::StorageBackend, self.storage.clone());
        push(
            Setting::DataDir,
            self.data_dir.as_ref().map(|p| p.display().to_string()),
        );
        push(
            Setting::MemoryMaxSpans,
            self.memory_max_spans.map(|n| n.to_string()),
        );
        push(
            Setting::RetentionHours,
            self.retention_hours.map(|n| n.to_string()),
        );
        push(
            Setting::MaxDiskBytes,
            self.max_disk_bytes.map(|n| n.to_string()),
        );
        push(
            Setting::GrpcListen,
            self.otlp_grpc_listen.map(|a| a.to_string()),
        );
        push(
            Setting::HttpListen,
            self.otlp_http_listen.map(|a| a.to_string()),
        );
        push(
            Setting::MaxRequestBytes,
            self.max_request_bytes.map(|n| n.to_string()),
        );
        push(
            Setting::PipelineCapacity,
            self.pipeline_capacity.map(|n| n.to_string()),
        );
        push(
            Setting::PipelineMaxSpans,
            self.pipeline_max_spans.map(|n| n.to_string()),
        );
        push(
            Setting::QueryListen,
            self.query_listen.map(|a| a.to_string()),
        );
        push(
            Setting::AdminListen,
            self.admin_listen.map(|a| a.to_string()),
        );
        push(
            Setting::SpanMetricsEnabled,
            self.spanmetrics.map(|b| b.to_string()),
        );
        push(
            Setting::SpanMetricsDimensions,
            self.spanmetrics_dimensions.clone(),
        );
        push(
            Setting::SpanMetricsMaxSeries,
            self.metrics_max_series.map(|n| n.to_string()),
        );
        push(
            Setting::SpanMetricsSeriesExpiry,
            self.metrics_series_expiry_seconds.map(|n| n.to_string()),
        );
        push(
            Setting::ServiceGraphEnabled,
            self.servicegraph.map(|b| b.to_string()),
        );
        push(
            Setting::ForwardEndpoints,
            (!self.forward.is_empty()).then(|| self.forward.join(",")),
        );
        push(
            Setting::ForwardHeaders,
            (!self.forward_header.is_empty()).then(|| self.forward_header.join(",")),
        );
        push(
            Setting::ForwardCompression,
            self.forward_compression.clone(),
        );
        push(
            Setting::ForwardCaFile,
            self.forward_ca_file
                .as_ref()
                .map(|p| p.display().to_string()),
        );
        push(
            Setting::ForwardMaxQueueBytes,
            self.forward_max_queue_bytes.map(|n| n.to_string()),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn help_documents_every_option() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--config",
            "--check-config",
            "--storage",
            "--data-dir",
            "--memory-max-spans",
            "--retention-hours",
            "--max-disk-bytes",
            "--otlp-grpc-listen",
            "--otlp-http-listen",
            "--max-request-bytes",
            "--pipeline-capacity",
            "--pipeline-max-spans",
            "--query-listen",
            "--admin-listen",
            "--forward",
            "--forward-header",
            "--forward-compression",
            "--forward-ca-file",
            "--forward-max-queue-bytes",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
        for setting in Setting::ALL {
            assert!(help.contains(&setting.env()), "{} missing", setting.env());
        }
    }

    #[test]
    fn overrides_carry_given_flags_only() {
        let cli = Cli::try_parse_from([
            "tracelight-collector",
            "--storage",
            "memory",
            "--query-listen",
            "0.0.0.0:16686",
        ])
        .unwrap();
        assert_eq!(
            cli.overrides(),
            vec![
                (Setting::StorageBackend, "memory".to_owned()),
                (Setting::QueryListen, "0.0.0.0:16686".to_owned()),
            ]
        );
    }
}
