//! The upper bound: decoding the payload with prost alone, on one thread, with no network.

use std::hint::black_box;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::payload::build_request;
use crate::procfs::ProcessProbe;
use crate::report::DecodeReport;

/// Decodes one `batch`-span request in a loop for `duration` (after a short warm-up) and
/// reports the rate. `this` measures the CPU time of this process, which should be otherwise
/// idle (no async runtime running).
pub fn decode_baseline(
    batch: usize,
    duration: Duration,
    seed: u64,
    this: Option<&ProcessProbe>,
) -> DecodeReport {
    let bytes = build_request(batch, seed, 1_700_000_000_000_000_000).encode_to_vec();
    let decode = || {
        let request = ExportTraceServiceRequest::decode(black_box(&bytes[..]))
            .expect("the generated payload decodes");
        black_box(request);
    };
    for _ in 0..20 {
        decode();
    }
    let cpu_before = this.and_then(|p| p.cpu_ticks().ok());
    let started = Instant::now();
    let mut iterations = 0u64;
    while started.elapsed() < duration {
        decode();
        iterations += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = match (this, cpu_before, this.and_then(|p| p.cpu_ticks().ok())) {
        (Some(p), Some(a), Some(b)) => Some(
            p.ticks_to_duration(b.total().saturating_sub(a.total()))
                .as_secs_f64(),
        ),
        _ => None,
    };
    let spans = (iterations * batch as u64) as f64;
    DecodeReport {
        mode: "decode-baseline",
        batch,
        bytes_per_request: bytes.len(),
        iterations,
        seconds,
        cpu_seconds,
        spans_per_sec: spans / seconds,
        spans_per_cpu_second: spans / cpu_seconds.filter(|&c| c > 0.0).unwrap_or(seconds),
        ns_per_span: seconds * 1e9 / spans,
    }
}
