//! Small statistics helpers: latency and freshness samples with their percentiles, a seeded
//! RNG, and the meter of CPU used by other processes.

use serde::Serialize;
use std::time::Duration;

/// Latency samples in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latencies {
    samples_ms: Vec<f64>,
}

/// The summary of a set of latency samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.samples_ms.push(ms(d));
    }

    pub fn push_ms(&mut self, ms: f64) {
        self.samples_ms.push(ms);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.samples_ms.extend(other.samples_ms);
    }

    pub fn summary(&self) -> Summary {
        let mut v = self.samples_ms.clone();
        if v.is_empty() {
            return Summary::default();
        }
        v.sort_by(f64::total_cmp);
        Summary {
            n: v.len(),
            p50: percentile(&v, 50.0),
            p99: percentile(&v, 99.0),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// A duration in milliseconds, the unit of every latency the bench reports.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times `n` calls of `call` (each returns the time it measured) and summarizes them.
pub fn sample(
    n: usize,
    mut call: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Summary> {
    let mut lat = Latencies::default();
    for _ in 0..n {
        lat.push(call()?);
    }
    Ok(lat.summary())
}

/// Freshness samples: acknowledgement and 200-to-visible, in milliseconds.
#[derive(Debug, Default)]
pub struct Freshness {
    pub ack: Latencies,
    pub visible: Latencies,
}

/// The summary of [`Freshness`] samples, as the JSON results name it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FreshnessSummary {
    pub ack: Summary,
    #[serde(rename = "visible_after_200")]
    pub visible: Summary,
}

impl Freshness {
    pub fn push(&mut self, (ack, visible): (Duration, Duration)) {
        self.ack.push(ack);
        self.visible.push(visible);
    }

    pub fn extend(&mut self, other: Freshness) {
        self.ack.extend(other.ack);
        self.visible.extend(other.visible);
    }

    pub fn summary(&self) -> FreshnessSummary {
        FreshnessSummary {
            ack: self.ack.summary(),
            visible: self.visible.summary(),
        }
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample such that at least `p`% of
/// the samples are at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// SplitMix64: a small, fast, seeded generator for the bench's own synthetic events.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(hi > lo);
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        let mut l = Latencies::default();
        for ms in [3.0, 1.0, 2.0] {
            l.push_ms(ms);
        }
        let s = l.summary();
        assert_eq!((s.n, s.p50, s.p99, s.max), (3, 2.0, 3.0, 3.0));
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        for _ in 0..1000 {
            let x = a.range(-3, 4);
            assert_eq!(x, b.range(-3, 4));
            assert!((-3..4).contains(&x));
        }
    }
}

/// How much CPU processes other than the ones under test used during a timed phase: on a
/// shared two-core machine a concurrent build or fuzzer skews every number, and the report
/// says so rather than hiding it.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    pids: Vec<u32>,
    total0: u64,
    busy0: u64,
    ours0: u64,
}

/// (total, busy) jiffies of all CPUs, from /proc/stat.
pub fn cpu_jiffies() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = s.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total, total.saturating_sub(idle))
}

/// utime + stime of a process (all its threads), in jiffies; `pid` 0 is this process.
pub fn process_jiffies(pid: u32) -> u64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let Ok(s) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

impl CpuMeter {
    /// Starts metering; `pids` are the processes under test besides this one.
    pub fn start(pids: &[u32]) -> CpuMeter {
        let mut pids = pids.to_vec();
        pids.push(0);
        let (total0, busy0) = cpu_jiffies();
        let ours0 = pids.iter().map(|p| process_jiffies(*p)).sum();
        CpuMeter {
            pids,
            total0,
            busy0,
            ours0,
        }
    }

    /// The share of all CPU time since `start` that other processes used (0 to 1).
    pub fn foreign_share(&self) -> f64 {
        let (total, busy) = cpu_jiffies();
        let ours: u64 = self.pids.iter().map(|p| process_jiffies(*p)).sum();
        let dt = total.saturating_sub(self.total0);
        if dt == 0 {
            return 0.0;
        }
        let foreign = busy
            .saturating_sub(self.busy0)
            .saturating_sub(ours.saturating_sub(self.ours0));
        foreign as f64 / dt as f64
    }
}

#[cfg(test)]
mod meter_tests {
    use super::*;

    #[test]
    fn own_work_is_not_foreign() {
        let m = CpuMeter::start(&[]);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let share = m.foreign_share();
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
}
