//! The forward path's gzip: compressing one forwarded request, before and after the switch to
//! the zlib-rs backend at level 1 (`forward::body`), and decompressing it (what the upstream's
//! receiver pays).
//!
//! Payloads: the load generator's 512-span `ExportTraceServiceRequest` (~500 B per span), and
//! 8 of them concatenated (4096 spans), the kind of merged request the sender builds when
//! records queue up. Cases, all in one run:
//!
//! - `miniz_level6`: `miniz_oxide` (flate2's default backend) at level 6 + the gzip CRC — what
//!   tonic's gRPC compression cost before (tonic always uses level 6);
//! - `miniz_level1`: the same at level 1 — the HTTP exporter's gzip before;
//! - `flate2_level6`: flate2's compiled backend (zlib-rs) at level 6 — tonic's compression now;
//! - `forward_body`: `forward::body::gzip`, what the sender runs now (zlib-rs, level 1);
//! - `gunzip_flate2` / `inflate_miniz`: decompressing the `forward_body` output with flate2
//!   (zlib-rs) and with `miniz_oxide`;
//! - `zstd_body`: `forward::body::zstd` (level −4, `ZSTD_LEVEL`; one context per thread),
//!   the sender's `--forward-compression zstd`, and `unzstd` decompressing it.
//!
//! Run with: `cargo bench -p tracelight-collector --bench forward_gzip`. Compressed sizes are
//! printed once per payload.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: a failed unwrap is a failed run"
)]

use std::hint::black_box;
use std::io::{Read as _, Write as _};

use criterion::{Criterion, Throughput};
use prost::Message as _;
use tracelight_collector::forward::body;
use tracelight_loadgen::build_request;

const START_NS: u64 = 1_700_000_000_000_000_000;

fn miniz_gzip(data: &[u8], level: u8) -> (Vec<u8>, u32) {
    (
        miniz_oxide::deflate::compress_to_vec(data, level),
        crc32fast::hash(data),
    )
}

fn flate2_gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 6);
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn compress(c: &mut Criterion) {
    let requests: Vec<Vec<u8>> = (0..8)
        .map(|i| build_request(512, 42 + i, START_NS).encode_to_vec())
        .collect();
    let payloads = [(512u64, requests[0].clone()), (4096, requests.concat())];
    for (spans, data) in &payloads {
        let sizes = [
            ("miniz_level6", miniz_gzip(data, 6).0.len() + 18),
            ("miniz_level1", miniz_gzip(data, 1).0.len() + 18),
            ("flate2_level6", flate2_gzip(data, 6).len()),
            ("forward_body", body::gzip(data, 0).unwrap().len()),
            ("zstd_body", body::zstd(data, 0).unwrap().len()),
        ];
        eprintln!(
            "{spans} spans, {} bytes: {}",
            data.len(),
            sizes
                .iter()
                .map(|(n, s)| format!("{n} {s} B ({:.2}x)", data.len() as f64 / *s as f64))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut group = c.benchmark_group(format!("forward_gzip_{spans}_spans"));
        group.throughput(Throughput::Elements(*spans));
        group.bench_function("miniz_level6", |b| {
            b.iter(|| miniz_gzip(black_box(data), 6));
        });
        group.bench_function("miniz_level1", |b| {
            b.iter(|| miniz_gzip(black_box(data), 1));
        });
        group.bench_function("flate2_level6", |b| {
            b.iter(|| flate2_gzip(black_box(data), 6));
        });
        group.bench_function("forward_body", |b| {
            b.iter(|| body::gzip(black_box(data), body::GRPC_PREFIX).unwrap());
        });
        let gz = body::gzip(data, 0).unwrap();
        // The same stream without its 10-byte gzip header and 8-byte trailer.
        let raw_deflate = gz[10..gz.len() - 8].to_vec();
        group.bench_function("zstd_body", |b| {
            b.iter(|| body::zstd(black_box(data), body::GRPC_PREFIX).unwrap());
        });
        let zst = body::zstd(data, 0).unwrap();
        group.bench_function("unzstd", |b| {
            b.iter(|| zstd::decode_all(black_box(&zst[..])).unwrap());
        });
        group.bench_function("gunzip_flate2", |b| {
            b.iter(|| gunzip(black_box(&gz)));
        });
        group.bench_function("inflate_miniz", |b| {
            b.iter(|| miniz_oxide::inflate::decompress_to_vec(black_box(&raw_deflate)).unwrap());
        });
        group.finish();
    }
}

// What `criterion_group!`/`criterion_main!` expand to, minus their undocumented `pub fn`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    compress(&mut c);
    c.final_summary();
}
