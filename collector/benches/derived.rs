//! The cost of span metrics, the service graph and the Monitor-tab history per span, beside the
//! cost of decoding the same spans (measured in the same run, as the baseline).
//!
//! Batches are the load generator's 512-span requests (5-span traces over 3 services, client
//! and server halves in the same batch), 64 seeds cycled so trace ids differ, converted to the
//! store's model and then to the `BatchView`s the receivers hand over once, outside the timed
//! loop (`Derived::observe_view_at`, as the pipeline calls it; `observe_at` converts owned
//! spans first, ~90–120 µs per batch here, which ingest never runs). `observe/all` is what a
//! pipeline worker does per batch before the store write; `observe/spanmetrics` and
//! `observe/servicegraph` split it.
//! Issue 4 allows the derived metrics to cut ingest throughput by at most 10 %: compare the
//! per-span figure of `observe/all` with the per-span cost of ingest as a whole
//! (`collector/bench/ingest.sh`), of which `decode/prost_512` is the floor.
//!
//! `cargo bench -p tracelight-collector --bench derived`.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tracelight_collector::derived::{Derived, ServiceGraphConfig, SpanMetricsConfig};
use tracelight_collector::model::{BatchView, SpanBatch, convert_request};
use tracelight_loadgen::build_request;

const SPANS: usize = 512;
const SEEDS: u64 = 64;
const START_NS: u64 = 1_700_000_000_000_000_000;

fn batches() -> Vec<SpanBatch> {
    (0..SEEDS)
        .map(|seed| convert_request(build_request(SPANS, seed, START_NS)).batch)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("derived");
    group.throughput(Throughput::Elements(SPANS as u64));
    let bytes = build_request(SPANS, 42, START_NS).encode_to_vec();
    group.bench_function("decode/prost_512", |b| {
        b.iter(|| {
            ExportTraceServiceRequest::decode(black_box(&bytes[..]))
                .expect("the generated payload decodes")
        });
    });
    let batches = batches();
    let views: Vec<BatchView<'_>> = batches
        .iter()
        .map(|b| BatchView::from_spans(&b.spans))
        .collect();
    let on = SpanMetricsConfig::default();
    let off = SpanMetricsConfig {
        enabled: false,
        ..SpanMetricsConfig::default()
    };
    let graph_on = ServiceGraphConfig::default();
    let graph_off = ServiceGraphConfig {
        enabled: false,
        ..ServiceGraphConfig::default()
    };
    for (name, spans, graph) in [
        ("observe/all", &on, &graph_on),
        ("observe/spanmetrics", &on, &graph_off),
        ("observe/servicegraph", &off, &graph_on),
    ] {
        let Some(derived) = Derived::new(spans, graph) else {
            continue;
        };
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % views.len();
                derived.observe_view_at(black_box(&views[i]), 0, 1_700_000_000);
            });
        });
    }
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
