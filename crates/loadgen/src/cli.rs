//! Command-line interface.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;

use crate::client::Protocol;

const AFTER_HELP: &str = "\
Each request is one of --pool pre-encoded ExportTraceServiceRequests, copied with fresh trace ids
(no protobuf encoding while measuring). Traces have 5 spans across 3 services (server -> 2 client
-> 2 server), ~500 bytes and 10 attributes per span.

Counted in the report: only requests sent after the warm-up and answered before the end.
Latency percentiles are of acknowledged requests. Backpressure = HTTP 429/503 and gRPC
UNAVAILABLE; after one, that sender waits --backoff-ms.

With --pid, the collector's CPU time (utime+stime from /proc/PID/stat, in units of
`getconf CLK_TCK`, 100 if unavailable) and memory (VmRSS, VmHWM from /proc/PID/status) are
read at the start and end of the measured window; spans per CPU-second = accepted spans /
collector CPU seconds.

--decode-baseline measures the upper bound instead: prost-decoding one --batch request in a
loop on this thread for --duration seconds, with no network.

Examples:
  tracelight-loadgen --protocol grpc --batch 512 --connections 2 --duration 15 --pid $(pidof tracelight-collector)
  tracelight-loadgen --protocol http --batch 100 --connections 4 --rate 50000
  tracelight-loadgen --decode-baseline --batch 512 --duration 3 --json";

/// OTLP load generator for the Tracelight collector.
#[derive(Debug, Clone, Parser)]
#[command(name = "tracelight-loadgen", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Transport.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,

    /// Collector address [default: 127.0.0.1:4317 for grpc, 127.0.0.1:4318 for http].
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<SocketAddr>,

    /// Spans per export request (the benchmark sizes are 100 and 512).
    #[arg(long, value_name = "SPANS", default_value_t = 512)]
    pub batch: usize,

    /// Connections to open (gRPC: tonic channels; HTTP: keep-alive clients).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub connections: usize,

    /// Requests in flight per connection (HTTP/1.1 opens one connection per request in flight).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub inflight: usize,

    /// Measured time in seconds (or decode time with --decode-baseline).
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    pub duration: f64,

    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub warmup: f64,

    /// Cap on spans sent per second, over all connections [default: no cap].
    #[arg(long, value_name = "SPANS_PER_SEC")]
    pub rate: Option<f64>,

    /// Pre-encoded requests to rotate through.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub pool: usize,

    /// The collector's process id, to report its CPU time and memory.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Worker threads of the load generator's runtime (keep it low on small machines).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,

    /// Pause of a sender after a backpressure answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub backoff_ms: u64,

    /// Seed of the payload generator [default: from the clock].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Measure prost decoding of the payload alone (no collector), then exit.
    #[arg(long)]
    pub decode_baseline: bool,
}

fn seconds(name: &str, value: f64, allow_zero: bool) -> anyhow::Result<Duration> {
    if !value.is_finite() || value < 0.0 || (!allow_zero && value == 0.0) {
        bail!("--{name} must be a positive number of seconds, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

impl Cli {
    /// The collector address to use.
    pub fn target(&self) -> SocketAddr {
        self.addr.unwrap_or_else(|| self.protocol.default_addr())
    }

    /// The measured duration.
    pub fn duration(&self) -> anyhow::Result<Duration> {
        seconds("duration", self.duration, false)
    }

    /// The warm-up duration.
    pub fn warmup(&self) -> anyhow::Result<Duration> {
        seconds("warmup", self.warmup, true)
    }

    /// Checks the values clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.duration()?;
        self.warmup()?;
        for (name, value) in [
            ("batch", self.batch),
            ("connections", self.connections),
            ("inflight", self.inflight),
            ("pool", self.pool),
            ("threads", self.threads),
        ] {
            if value == 0 {
                return Err(anyhow!("--{name} must be at least 1"));
            }
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            bail!("--rate must be a positive number of spans per second, got {rate}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn help_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_follow_the_protocol() {
        let cli = Cli::try_parse_from(["loadgen", "--protocol", "http"]).unwrap();
        assert_eq!(cli.target(), "127.0.0.1:4318".parse().unwrap());
        let cli = Cli::try_parse_from(["loadgen"]).unwrap();
        assert_eq!(cli.target(), "127.0.0.1:4317".parse().unwrap());
        assert_eq!(cli.batch, 512);
        cli.validate().unwrap();
    }

    #[test]
    fn rejects_nonsense() {
        for args in [
            &["loadgen", "--batch", "0"][..],
            &["loadgen", "--duration", "0"],
            &["loadgen", "--duration=-1"],
            &["loadgen", "--rate", "0"],
            &["loadgen", "--connections", "0"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert!(cli.validate().is_err(), "{args:?} accepted");
        }
    }
}
