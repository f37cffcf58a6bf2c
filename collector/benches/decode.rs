//! The ingest upper bound: prost-decoding the load generator's payload, nothing else.
//!
//! The same 512-span `ExportTraceServiceRequest` (5-span traces over 3 services, ~500 B and
//! 10 attributes per span) that `tracelight-loadgen` sends, decoded from a byte slice with
//! `ExportTraceServiceRequest::decode`; the decoded request is dropped inside the timed loop,
//! as a receiver would. Throughput is reported in spans per second (`Throughput::Elements`).
//! Issue 3 sets the collector's target relative to this: ingest ≥ 0.5 × this rate per
//! collector CPU-second.
//!
//! `cargo bench -p tracelight-collector --bench decode`. For a quick figure in the same run as
//! a load test, `tracelight-loadgen --decode-baseline` measures the same loop.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tracelight_loadgen::build_request;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("otlp_decode");
    for spans in [100usize, 512] {
        let bytes = build_request(spans, 42, 1_700_000_000_000_000_000).encode_to_vec();
        group.throughput(Throughput::Elements(spans as u64));
        group.bench_function(format!("prost_{spans}_spans"), |b| {
            b.iter(|| {
                ExportTraceServiceRequest::decode(black_box(&bytes[..]))
                    .expect("the generated payload decodes")
            });
        });
    }
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    decode(&mut c);
    c.final_summary();
}
