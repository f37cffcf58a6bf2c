//! The ingest upper bound, and what the collector does on the receiving thread, on the load
//! generator's payload.
//!
//! The payloads are the 100- and 512-span `ExportTraceServiceRequest`s (5-span traces over 3
//! services, ~500 B and 10 attributes per span) that `tracelight-loadgen` sends. The
//! `receive_path` group's `prost_decode` case is the upper bound: decoded from a byte slice
//! with `ExportTraceServiceRequest::decode`, the decoded request dropped inside the timed loop,
//! as a receiver would. Issue 3 sets the collector's target relative to it: ingest ≥ 0.5 × this
//! rate per collector CPU-second. Throughput is reported in spans per second
//! (`Throughput::Elements`).
//!
//! The group's other cases measure, on the same payloads and in the same run, what the
//! collector does with a request's bytes on the receiving thread, cumulatively: the zero-copy
//! parse (`parse_request`); plus the embedded store's prepared chunk (encoding, summary, tag
//! hashes: `SpanStore::prepare`); plus span metrics and the service graph
//! (`Derived::observe_view_at`). What it leaves out is the transport (h2, HTTP), the commit
//! thread's write and fsync, and the sealing of blocks; the load generator measures those.
//!
//! `cargo bench -p tracelight-collector --bench decode`. For a quick figure in the same run as
//! a load test, `tracelight-loadgen --decode-baseline` measures the same loop.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tracelight_collector::derived::{Derived, ServiceGraphConfig, SpanMetricsConfig};
use tracelight_collector::model::parse_request;
use tracelight_collector::store::{EmbeddedConfig, EmbeddedStore, SpanStore};
use tracelight_loadgen::build_request;

fn receive_path(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("a temporary directory");
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("the store opens");
    let derived = Derived::new(
        &SpanMetricsConfig::default(),
        &ServiceGraphConfig::default(),
    )
    .expect("span metrics are on by default");
    let mut group = c.benchmark_group("receive_path");
    for spans in [100usize, 512] {
        let bytes = build_request(spans, 42, 1_700_000_000_000_000_000).encode_to_vec();
        group.throughput(Throughput::Elements(spans as u64));
        group.bench_function(format!("prost_decode_{spans}_spans"), |b| {
            b.iter(|| {
                ExportTraceServiceRequest::decode(black_box(&bytes[..]))
                    .expect("the generated payload decodes")
            });
        });
        group.bench_function(format!("parse_{spans}_spans"), |b| {
            b.iter(|| parse_request(black_box(&bytes[..])).expect("the payload parses"));
        });
        group.bench_function(format!("parse_prepare_{spans}_spans"), |b| {
            b.iter(|| {
                let parsed = parse_request(black_box(&bytes[..])).expect("the payload parses");
                store.prepare(&parsed.batch)
            });
        });
        group.bench_function(format!("parse_prepare_derived_{spans}_spans"), |b| {
            b.iter(|| {
                let parsed = parse_request(black_box(&bytes[..])).expect("the payload parses");
                derived.observe_view_at(&parsed.batch, 1, 1_700_000_000);
                store.prepare(&parsed.batch)
            });
        });
    }
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    receive_path(&mut c);
    c.final_summary();
}
