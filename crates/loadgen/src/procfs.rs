//! CPU time and memory of a process, from Linux's `/proc/PID/stat` and `/proc/PID/status`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde::Serialize;

/// Clock ticks per second assumed when `getconf CLK_TCK` cannot be run (Linux's `USER_HZ`,
/// which is 100 on every mainstream architecture).
pub const DEFAULT_CLK_TCK: u64 = 100;

/// The unit of `utime`/`stime` in `/proc/PID/stat`: `getconf CLK_TCK`, run once (the workspace
/// forbids `unsafe`, so `sysconf` is out of reach), else [`DEFAULT_CLK_TCK`].
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(DEFAULT_CLK_TCK)
}

/// User and system CPU time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTicks {
    /// `utime`.
    pub user: u64,
    /// `stime`.
    pub system: u64,
}

impl CpuTicks {
    /// `user + system`.
    pub fn total(self) -> u64 {
        self.user + self.system
    }
}

/// Parses `utime` and `stime` (fields 14 and 15) out of a `/proc/PID/stat` line.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses, so
/// the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> anyhow::Result<CpuTicks> {
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| anyhow!("no ')' in /proc/PID/stat"))?;
    // After the name: field 3 (state) is at index 0, so field N is at index N - 3.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("/proc/PID/stat has no field {n}"))?
            .parse()
            .with_context(|| format!("/proc/PID/stat field {n}"))
    };
    Ok(CpuTicks {
        user: field(14)?,
        system: field(15)?,
    })
}

/// Resident memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: peak resident since the process started.
    pub hwm_kib: u64,
}

/// Parses `VmRSS` and `VmHWM` out of `/proc/PID/status`.
pub fn parse_status(text: &str) -> anyhow::Result<Memory> {
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(|| anyhow!("/proc/PID/status has no {name}"))?;
        let number = line.trim().trim_end_matches("kB").trim();
        number
            .parse()
            .with_context(|| format!("/proc/PID/status {name}: {line:?}"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// Reads one process's CPU time and memory.
#[derive(Debug, Clone)]
pub struct ProcessProbe {
    pid: u32,
    dir: PathBuf,
    ticks_per_second: u64,
}

impl ProcessProbe {
    /// A probe for `pid`; fails if the process cannot be read now.
    pub fn new(pid: u32, ticks_per_second: u64) -> anyhow::Result<Self> {
        let probe = Self {
            pid,
            dir: PathBuf::from(format!("/proc/{pid}")),
            ticks_per_second: ticks_per_second.max(1),
        };
        probe.cpu_ticks()?;
        probe.memory()?;
        Ok(probe)
    }

    /// A probe for this process.
    pub fn this_process(ticks_per_second: u64) -> anyhow::Result<Self> {
        Self::new(std::process::id(), ticks_per_second)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU time used so far, in ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<CpuTicks> {
        let path = self.dir.join("stat");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        parse_stat(&text)
    }

    /// Converts a tick count into time.
    pub fn ticks_to_duration(&self, ticks: u64) -> Duration {
        Duration::from_secs_f64(ticks as f64 / self.ticks_per_second as f64)
    }

    /// Resident memory now and at peak.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = self.dir.join("status");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        parse_status(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    731 269 0 0 20 0 9 0 123456 987654321 4321 18446744073709551615";
        let ticks = parse_stat(line).unwrap();
        assert_eq!(
            ticks,
            CpuTicks {
                user: 731,
                system: 269
            }
        );
        assert_eq!(ticks.total(), 1000);
    }

    #[test]
    fn stat_that_is_cut_short_is_an_error() {
        assert!(parse_stat("4242 (x) S 1 2 3").is_err());
        assert!(parse_stat("garbage").is_err());
    }

    #[test]
    fn status_memory_lines() {
        let text = "Name:\ttracelight-col\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\n\
                    VmRSS:\t   40960 kB\nThreads:\t4\n";
        assert_eq!(
            parse_status(text).unwrap(),
            Memory {
                rss_kib: 40960,
                hwm_kib: 51234
            }
        );
        assert!(parse_status("Name:\tx\n").is_err());
    }

    #[test]
    fn reads_this_process() {
        let probe = ProcessProbe::this_process(clock_ticks_per_second()).unwrap();
        let memory = probe.memory().unwrap();
        assert!(memory.rss_kib > 0);
        assert!(memory.hwm_kib >= memory.rss_kib);
        // Burn a little CPU so the counters move past zero.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(probe.cpu_ticks().unwrap().total() > 0);
        assert_eq!(probe.ticks_to_duration(250), {
            let t = clock_ticks_per_second();
            Duration::from_secs_f64(250.0 / t as f64)
        });
    }
}
