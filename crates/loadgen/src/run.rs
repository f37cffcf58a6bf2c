//! The load run: senders, the measured window, and the collector's resource use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{Protocol, Sender};
use crate::pool::RequestPool;
use crate::procfs::{CpuTicks, Memory, ProcessProbe};
use crate::report::{CollectorUsage, LoadReport};
use crate::stats::{ErrorKind, Outcome, Stats};

/// How often the collector's resident memory is sampled during the window.
const MEMORY_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// Pause after a request got no answer at all, so a dead collector is not spun on.
const TRANSPORT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How long senders get to finish their last request after the window.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What to send and how.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Transport.
    pub protocol: Protocol,
    /// Collector address.
    pub addr: SocketAddr,
    /// Connections to open.
    pub connections: usize,
    /// Requests in flight per connection.
    pub inflight: usize,
    /// Load before measuring.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Cap in spans per second over all senders.
    pub rate: Option<f64>,
    /// Pause after a backpressure answer.
    pub backoff: Duration,
}

/// Time between two requests of one sender so that `senders` senders of `batch`-span requests
/// together send `rate` spans per second.
pub fn sender_period(rate: f64, senders: usize, batch: usize) -> Duration {
    Duration::from_secs_f64(senders as f64 * batch as f64 / rate)
}

/// The measured window, shared by all senders.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

struct SenderTask {
    sender: Sender,
    pool: Arc<RequestPool>,
    sends: Arc<AtomicU64>,
    window: Window,
    /// First send time and period, when the rate is capped.
    pace: Option<(Instant, Duration)>,
    backoff: Duration,
}

impl SenderTask {
    async fn run(mut self) -> Stats {
        let mut stats = Stats::default();
        let spans = self.pool.spans_per_request() as u64;
        let mut ticker = self.pace.map(|(first, period)| {
            let mut t = tokio::time::interval_at(first, period);
            t.set_missed_tick_behavior(MissedTickBehavior::Skip);
            t
        });
        loop {
            if let Some(t) = &mut ticker {
                t.tick().await;
            }
            if Instant::now() >= self.window.end {
                break;
            }
            let n = self.sends.fetch_add(1, Ordering::Relaxed);
            let body = self.pool.nth(n);
            let started = Instant::now();
            let outcome = self.sender.send(body).await;
            let finished = Instant::now();
            if started >= self.window.start && finished <= self.window.end {
                stats.record(&outcome, spans, finished - started);
            }
            match &outcome {
                Outcome::Failed(kind) if kind.is_backpressure() => {
                    tokio::time::sleep(self.backoff).await;
                }
                Outcome::Failed(ErrorKind::Transport(_)) => {
                    tokio::time::sleep(TRANSPORT_ERROR_PAUSE).await;
                }
                _ => {}
            }
        }
        stats
    }
}

/// A CPU and memory reading.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    collector: Option<(CpuTicks, Memory)>,
    this: Option<CpuTicks>,
}

fn read(collector: Option<&ProcessProbe>, this: Option<&ProcessProbe>) -> Reading {
    Reading {
        at: Instant::now(),
        collector: collector.and_then(|p| Some((p.cpu_ticks().ok()?, p.memory().ok()?))),
        this: this.and_then(|p| p.cpu_ticks().ok()),
    }
}

/// Runs the load described by `config` with requests from `pool`; `collector` (if any) is
/// measured over the window, and so is this process (`this`).
pub async fn run_load(
    config: &LoadConfig,
    pool: Arc<RequestPool>,
    collector: Option<ProcessProbe>,
    this: Option<ProcessProbe>,
) -> anyhow::Result<LoadReport> {
    let mut senders = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let sender = Sender::connect(config.protocol, config.addr, config.inflight)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to the collector at {} ({:?})",
                    config.addr, config.protocol
                )
            })?;
        senders.push(sender);
    }

    let tasks = config.connections * config.inflight;
    let batch = pool.spans_per_request();
    let begin = Instant::now();
    let window = Window {
        start: begin + config.warmup,
        end: begin + config.warmup + config.duration,
    };
    let period = config.rate.map(|rate| sender_period(rate, tasks, batch));
    let sends = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for (i, sender) in senders
        .iter()
        .flat_map(|s| std::iter::repeat_n(s, config.inflight))
        .enumerate()
    {
        // Spread the paced senders evenly over one period.
        let pace = period.map(|p| (begin + p.mul_f64(i as f64 / tasks as f64), p));
        let task = SenderTask {
            sender: sender.clone(),
            pool: Arc::clone(&pool),
            sends: Arc::clone(&sends),
            window,
            pace,
            backoff: config.backoff,
        };
        handles.push(tokio::spawn(task.run()));
    }
    drop(senders);

    tokio::time::sleep_until(window.start).await;
    let first = read(collector.as_ref(), this.as_ref());
    let mut rss_peak = first.collector.map_or(0, |(_, m)| m.rss_kib);
    let mut sample = tokio::time::interval(MEMORY_SAMPLE_INTERVAL);
    while Instant::now() + MEMORY_SAMPLE_INTERVAL < window.end {
        sample.tick().await;
        if let Some(memory) = collector.as_ref().and_then(|p| p.memory().ok()) {
            rss_peak = rss_peak.max(memory.rss_kib);
        }
    }
    tokio::time::sleep_until(window.end).await;
    let last = read(collector.as_ref(), this.as_ref());

    let mut stats = Stats::default();
    let stop = tokio::time::timeout(STOP_TIMEOUT, async {
        for handle in handles {
            if let Ok(s) = handle.await {
                stats.merge(&s);
            }
        }
    });
    if stop.await.is_err() {
        eprintln!("tracelight-loadgen: some senders did not finish within {STOP_TIMEOUT:?}");
    }

    let seconds = (last.at - first.at).as_secs_f64();
    let usage = match (collector.as_ref(), first.collector, last.collector) {
        (Some(probe), Some((cpu0, _)), Some((cpu1, memory))) => {
            let cpu = probe.ticks_to_duration(cpu1.total().saturating_sub(cpu0.total()));
            Some(CollectorUsage::new(
                probe.pid(),
                cpu,
                seconds,
                stats.accepted_spans,
                memory,
                rss_peak.max(memory.rss_kib),
            ))
        }
        _ => None,
    };
    let loadgen_cpu_seconds = match (this.as_ref(), first.this, last.this) {
        (Some(probe), Some(a), Some(b)) => Some(
            probe
                .ticks_to_duration(b.total().saturating_sub(a.total()))
                .as_secs_f64(),
        ),
        _ => None,
    };
    Ok(LoadReport::new(
        config,
        &pool,
        seconds,
        &stats,
        usage,
        loadgen_cpu_seconds,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_splits_the_rate_over_senders() {
        // 4 senders × 512 spans at 20 480 spans/s: each sends 10 requests/s.
        assert_eq!(sender_period(20_480.0, 4, 512), Duration::from_millis(100));
        assert_eq!(sender_period(1_000.0, 1, 100), Duration::from_millis(100));
    }
}
