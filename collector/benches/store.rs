//! Embedded store benchmarks: write throughput (512-span batches, fsync group commit), bytes on
//! disk per span, reopen (index rebuild) time, trace-by-id and search latency on a pre-filled
//! store.
//!
//! Run with: `cargo bench -p tracelight-collector --bench store`
//! Scale with `TRACELIGHT_BENCH_SPANS` (default 1,000,000 spans pre-filled); the store lives in
//! a temporary directory under `$TMPDIR`. `TRACELIGHT_BENCH_ZSTD_LEVEL` sets the blocks' zstd
//! level (default: the store's); `TRACELIGHT_BENCH_QUICK=1` skips the criterion groups (prefill,
//! bytes per span and the query percentiles only, e.g. for 10 M spans).
//! `TRACELIGHT_BENCH_DIR=<dir>` keeps the pre-filled store there and reuses it on the next run
//! (skipping the prefill; the trace ids and time range are kept in `<dir>/bench-meta`);
//! `TRACELIGHT_BENCH_ONLY=<text>` runs only the searches whose name contains it, without the
//! trace lookups, `TRACELIGHT_BENCH_REPEAT` times (default 30) each, e.g. under `perf record`
//! (`TRACELIGHT_BENCH_LIMIT` overrides their limit of 20 traces).
#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "benchmark harness: a failed unwrap is a failed run; criterion macros"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tracelight_collector::model::{
    AttrValue, KeyValue, Resource, Scope, Span, SpanBatch, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};
use tracelight_collector::store::{EmbeddedConfig, EmbeddedStore, SpanStore, TraceQuery};

const BATCH: usize = 512;
const SPANS_PER_TRACE: u64 = 8;
const SERVICES: usize = 10;

/// A deterministic xorshift generator (no dependency on `rand`'s versions).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn kv(key: &str, value: AttrValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value,
    }
}

fn s(v: String) -> AttrValue {
    AttrValue::String(v)
}

/// Generates realistic spans: ~500 bytes of OTLP each, 10 attributes (some high-cardinality:
/// request id, user id, URL with an id), traces of 8 spans over several services with parent
/// links, monotonically advancing timestamps.
struct Generator {
    rng: Rng,
    resources: Vec<Arc<Resource>>,
    scope: Arc<Scope>,
    next_trace: u64,
    now: u64,
}

impl Generator {
    fn new(start_ns: u64) -> Self {
        let resources = (0..SERVICES)
            .map(|i| {
                let name = format!("service-{i}");
                Arc::new(Resource {
                    service_name: name.clone(),
                    attributes: vec![
                        kv("service.name", s(name)),
                        kv("service.version", s("1.4.2".to_owned())),
                        kv("deployment.environment", s("production".to_owned())),
                        kv("host.name", s(format!("node-{}.cluster.local", i % 4))),
                        kv("telemetry.sdk.language", s("rust".to_owned())),
                    ],
                })
            })
            .collect();
        Self {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            resources,
            scope: Arc::new(Scope {
                name: "tracelight".to_owned(),
                version: "0.1.0".to_owned(),
                attributes: vec![],
            }),
            next_trace: 1,
            now: start_ns,
        }
    }

    fn trace(&mut self, out: &mut Vec<Span>) -> TraceId {
        let hi = self.rng.next();
        let id = self.next_trace;
        self.next_trace += 1;
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hi.to_be_bytes());
        b[8..].copy_from_slice(&id.to_be_bytes());
        let trace_id = TraceId::from_bytes(b).unwrap();
        let root_service = self.rng.below(SERVICES as u64) as usize;
        let user = self.rng.below(50_000);
        let mut ids: Vec<(SpanId, usize)> = Vec::new();
        self.now += 1_000_000 + self.rng.below(1_000_000);
        for i in 0..SPANS_PER_TRACE {
            let span_id = SpanId::from_bytes((self.rng.next() | 1).to_be_bytes()).unwrap();
            let (parent, service) = if i == 0 {
                (None, root_service)
            } else {
                let (p, ps) = ids[self.rng.below(ids.len() as u64) as usize];
                let svc = if self.rng.below(2) == 0 {
                    ps
                } else {
                    self.rng.below(SERVICES as u64) as usize
                };
                (Some(p), svc)
            };
            ids.push((span_id, service));
            let route = self.rng.below(20);
            let status = [200, 200, 200, 200, 201, 204, 404, 500][self.rng.below(8) as usize];
            let start = self.now + i * 50_000 + self.rng.below(20_000);
            let duration = 20_000 + self.rng.below(5_000_000);
            let server = i % 2 == 0;
            let error = status == 500;
            out.push(Span {
                trace_id,
                span_id,
                parent_span_id: parent,
                trace_state: String::new(),
                flags: 1,
                name: format!(
                    "{} /api/v1/resource{route}/{{id}}",
                    ["GET", "POST"][i as usize % 2]
                ),
                kind: if server {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                },
                start_ns: start,
                end_ns: start + duration,
                attributes: vec![
                    kv(
                        "http.request.method",
                        s(["GET", "POST"][i as usize % 2].to_owned()),
                    ),
                    kv("http.route", s(format!("/api/v1/resource{route}/{{id}}"))),
                    kv(
                        "url.full",
                        s(format!(
                            "https://service-{service}.cluster.local/api/v1/resource{route}/{}",
                            self.rng.below(1_000_000)
                        )),
                    ),
                    kv("http.response.status_code", AttrValue::Int(status)),
                    kv(
                        "server.address",
                        s(format!("service-{service}.cluster.local")),
                    ),
                    kv("server.port", AttrValue::Int(8080)),
                    kv(
                        "network.peer.address",
                        s(format!(
                            "10.0.{}.{}",
                            self.rng.below(4),
                            self.rng.below(255)
                        )),
                    ),
                    kv("user.id", s(format!("user-{user}"))),
                    kv("request.id", s(format!("{:016x}", self.rng.next()))),
                    kv(
                        "thread.name",
                        s(format!("tokio-runtime-worker-{}", self.rng.below(8))),
                    ),
                ],
                events: vec![],
                links: vec![],
                status: Status {
                    code: if error {
                        StatusCode::Error
                    } else {
                        StatusCode::Unset
                    },
                    message: if error {
                        "internal error".to_owned()
                    } else {
                        String::new()
                    },
                },
                resource: Arc::clone(&self.resources[service]),
                scope: Arc::clone(&self.scope),
            });
        }
        trace_id
    }

    /// A batch of about `n` spans (whole traces); returns the trace ids.
    fn batch(&mut self, n: usize) -> (SpanBatch, Vec<TraceId>) {
        let mut spans = Vec::with_capacity(n + SPANS_PER_TRACE as usize);
        let mut ids = Vec::new();
        while spans.len() < n {
            ids.push(self.trace(&mut spans));
        }
        (SpanBatch { spans }, ids)
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Runs search `q` `repeat` times and prints its latency percentiles.
fn time_search(f: &Filled, name: &str, q: &TraceQuery, repeat: usize) {
    let samples: Vec<Duration> = (0..repeat)
        .map(|_| {
            let t = Instant::now();
            black_box(f.store.find_traces(q).unwrap());
            t.elapsed()
        })
        .collect();
    let n = f.store.find_traces(q).unwrap().len();
    eprintln!(
        "  find_traces {name} ({n} traces): {}",
        percentiles(samples)
    );
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!("p50 {:?}  p99 {:?}  max {:?}", p(0.5), p(0.99), p(1.0))
}

struct Filled {
    _dir: Option<tempfile::TempDir>,
    store: EmbeddedStore,
    trace_ids: Vec<TraceId>,
    start: u64,
    end: u64,
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn config(dir: &std::path::Path) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    if let Some(level) = env_number("TRACELIGHT_BENCH_ZSTD_LEVEL") {
        c.compression_level = level;
    }
    c
}

/// Reopens a store kept by an earlier run in `TRACELIGHT_BENCH_DIR`, if there is one.
fn reuse(dir: &std::path::Path) -> Option<Filled> {
    let meta = std::fs::read(dir.join("bench-meta")).ok()?;
    let word = |i: usize| u64::from_le_bytes(meta[i * 8..i * 8 + 8].try_into().unwrap());
    let (start, end) = (word(0), word(1));
    let trace_ids = meta[16..]
        .chunks_exact(16)
        .map(|c| TraceId::from_bytes(c.try_into().unwrap()).unwrap())
        .collect();
    let t = Instant::now();
    let store = EmbeddedStore::open(config(dir)).unwrap();
    let stats = store.stats();
    eprintln!(
        "  reused {}: {} spans, {:.1} bytes/span; reopen {:?}",
        dir.display(),
        stats.spans,
        stats.bytes as f64 / stats.spans as f64,
        t.elapsed()
    );
    Some(Filled {
        _dir: None,
        store,
        trace_ids,
        start,
        end,
    })
}

fn prefill(total: usize, writers: usize) -> Filled {
    let kept: Option<std::path::PathBuf> = std::env::var_os("TRACELIGHT_BENCH_DIR").map(Into::into);
    if let Some(filled) = kept.as_deref().and_then(reuse) {
        return filled;
    }
    let (temp, path) = match &kept {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap();
            (None, d.clone())
        }
        None => {
            let t = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
            let p = t.path().to_owned();
            (Some(t), p)
        }
    };
    let start = now_ns() - 3_600_000_000_000;
    let store = Arc::new(EmbeddedStore::open(config(&path)).unwrap());
    // Pre-generate so the timing covers the store only.
    let mut generator = Generator::new(start);
    let mut batches = Vec::new();
    let mut trace_ids = Vec::new();
    let mut spans = 0;
    while spans < total {
        let (b, ids) = generator.batch(BATCH);
        spans += b.len();
        trace_ids.extend(ids);
        batches.push(b);
        if batches.len() == 400 || spans >= total {
            // Write in chunks to bound the benchmark's own memory.
            let chunk = std::mem::take(&mut batches);
            let per = chunk.len().div_ceil(writers);
            let t = Instant::now();
            let n: usize = chunk.iter().map(SpanBatch::len).sum();
            let mut parts: Vec<Vec<SpanBatch>> = Vec::new();
            let mut it = chunk.into_iter().peekable();
            while it.peek().is_some() {
                parts.push(it.by_ref().take(per).collect());
            }
            std::thread::scope(|sc| {
                for part in parts {
                    let store = Arc::clone(&store);
                    sc.spawn(move || {
                        for b in part {
                            store.write_batch(b).unwrap();
                        }
                    });
                }
            });
            let el = t.elapsed();
            if spans <= 210_000 || spans >= total {
                eprintln!(
                    "  write {n} spans with {writers} writers: {:.0} spans/s",
                    n as f64 / el.as_secs_f64()
                );
            }
        }
    }
    let store = Arc::into_inner(store).unwrap();
    store.flush().unwrap();
    let stats = store.stats();
    eprintln!(
        "  {} spans, {} bytes on disk: {:.1} bytes/span",
        stats.spans,
        stats.bytes,
        stats.bytes as f64 / stats.spans as f64
    );
    drop(store);
    let t = Instant::now();
    let store = EmbeddedStore::open(config(&path)).unwrap();
    eprintln!("  reopen (rebuild in-memory summaries): {:?}", t.elapsed());
    let end = generator.now + 10_000_000;
    if kept.is_some() {
        let mut meta = Vec::with_capacity(16 + trace_ids.len() * 16);
        meta.extend_from_slice(&start.to_le_bytes());
        meta.extend_from_slice(&end.to_le_bytes());
        for id in &trace_ids {
            meta.extend_from_slice(id.as_bytes());
        }
        std::fs::write(path.join("bench-meta"), meta).unwrap();
    }
    Filled {
        _dir: temp,
        store,
        trace_ids,
        start,
        end,
    }
}

fn queries(f: &Filled) -> Vec<(&'static str, TraceQuery)> {
    let svc = |i: usize| Some(format!("service-{i}"));
    let base = TraceQuery {
        start_min_ns: f.start,
        start_max_ns: f.end,
        limit: 20,
        ..TraceQuery::default()
    };
    vec![
        (
            "service",
            TraceQuery {
                service: svc(3),
                ..base.clone()
            },
        ),
        (
            "service+operation",
            TraceQuery {
                service: svc(3),
                operation: Some("GET /api/v1/resource7/{id}".to_owned()),
                ..base.clone()
            },
        ),
        (
            "service+tag error",
            TraceQuery {
                service: svc(3),
                tags: vec![("error".to_owned(), "true".to_owned())],
                ..base.clone()
            },
        ),
        (
            "service+min duration 5ms",
            TraceQuery {
                service: svc(3),
                duration_min_ns: Some(5_000_000),
                ..base.clone()
            },
        ),
        (
            "rare tag user.id",
            TraceQuery {
                tags: vec![("user.id".to_owned(), "user-4242".to_owned())],
                ..base.clone()
            },
        ),
        (
            "no match (tag absent)",
            TraceQuery {
                service: svc(1),
                tags: vec![("user.id".to_owned(), "nobody".to_owned())],
                ..base
            },
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let total: usize = env_number("TRACELIGHT_BENCH_SPANS").unwrap_or(1_000_000);
    let quick = env_number::<u8>("TRACELIGHT_BENCH_QUICK").unwrap_or(0) == 1;

    // Write: one writer waits for its own durable commit; group commit shows with several
    // writers. The WAL's direct writes (the default) and, as their baseline in the same run,
    // buffered writes with an `fdatasync` (`EmbeddedConfig::direct_io` off).
    if !quick {
        let mut generator = Generator::new(now_ns() - 3_600_000_000_000);
        let mut group = c.benchmark_group("write");
        group.throughput(criterion::Throughput::Elements(BATCH as u64));
        for (name, direct_io) in [
            ("write_batch_512_fsync", true),
            ("write_batch_512_fsync_buffered", false),
        ] {
            let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
            let mut cfg = config(dir.path());
            cfg.direct_io = direct_io;
            let store = EmbeddedStore::open(cfg).unwrap();
            group.bench_function(name, |b| {
                b.iter_batched(
                    || generator.batch(BATCH).0,
                    |batch| store.write_batch(batch).unwrap(),
                    BatchSize::SmallInput,
                );
            });
        }
        group.finish();
    }

    eprintln!("prefilling {total} spans");
    let f = prefill(total, 4);
    let mut rng = Rng(42);
    let only = std::env::var("TRACELIGHT_BENCH_ONLY").ok();
    let repeat = env_number("TRACELIGHT_BENCH_REPEAT").unwrap_or(30);
    if let Some(only) = only {
        let limit = env_number("TRACELIGHT_BENCH_LIMIT");
        for (name, mut q) in queries(&f).into_iter().filter(|(n, _)| n.contains(&only)) {
            q.limit = limit.unwrap_or(q.limit);
            time_search(&f, name, &q, repeat);
        }
        return;
    }

    let samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let id = f.trace_ids[rng.below(f.trace_ids.len() as u64) as usize];
            let t = Instant::now();
            let trace = f.store.get_trace(id).unwrap().unwrap();
            let el = t.elapsed();
            assert_eq!(trace.spans.len(), SPANS_PER_TRACE as usize);
            el
        })
        .collect();
    eprintln!("  get_trace (random ids, 2000): {}", percentiles(samples));
    for (name, q) in queries(&f) {
        time_search(&f, name, &q, 30);
    }

    if quick {
        return;
    }
    let mut group = c.benchmark_group("read");
    group.bench_function("get_trace_random", |b| {
        b.iter(|| {
            let id = f.trace_ids[rng.below(f.trace_ids.len() as u64) as usize];
            black_box(f.store.get_trace(id).unwrap())
        });
    });
    for (name, q) in queries(&f).into_iter().take(3) {
        group.bench_function(format!("find_traces {name}"), |b| {
            b.iter(|| black_box(f.store.find_traces(&q).unwrap()));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
