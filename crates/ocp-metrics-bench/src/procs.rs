//! Processes around a measurement: children under test (start, RSS, disk, stop gracefully or by
//! `kill -9`), `perf` profiles of them, and the other processes whose CPU use skews a timing.
//! A child still running when its handle drops is killed, so a failed run leaves nothing behind.

use crate::say;
use crate::stats::{CpuMeter, Freshness};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A foreign CPU share below this is a quiet machine: timings taken then are trusted.
pub const FOREIGN_SHARE_QUIET: f64 = 0.05;

/// A running child process.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    pub fn new(name: &str, child: Child) -> Proc {
        Proc {
            name: name.to_string(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Resident set size now, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.pid())
    }

    /// SIGTERM, then wait for the exit; returns how long the exit took.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let Some(mut child) = self.child.take() else {
            bail!("{} is not running", self.name)
        };
        let started = Instant::now();
        signal(child.id(), "TERM")?;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM", self.name);
                }
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `kill -9`, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sends a signal by name with the `kill` command (the crate has no unsafe code for libc).
pub fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// Resident set size of a process, in bytes (0 if it is gone).
pub fn rss_of(pid: u32) -> u64 {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:").map_or(0, |kb| kb * 1024)
}

/// The value of the `key` line (e.g. `MemTotal:`) of a `/proc` file that counts in kB.
pub fn proc_kib(path: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
    })
}

/// Bytes of the files under `dir` (their lengths).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Starts `ocp-metrics serve` on a free port; returns the process, its base URL and how long
/// it took from spawn to ready.
pub fn start_ocp(
    bin: &Path,
    data_dir: &Path,
    admin_token: &str,
    log: &Path,
    extra_args: &[String],
    perf_out: Option<&Path>,
) -> anyhow::Result<(Proc, String, Duration)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--rate-per-second", "1000000", "--rate-burst", "1000000"])
        .args(extra_args)
        .env("OCP_METRICS_ADMIN_TOKEN", admin_token)
        // The store logs only its checkpoints and recovery at info: the timings a reader of a
        // benchmark wants next to the numbers.
        .env("RUST_LOG", "warn,ocp_metrics_store=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let proc = Proc::new("ocp-metrics", child);
    // Profiling a start-up: attach right away (the first ~100 ms are missed).
    let perf = perf_out.and_then(|out| perf_record(proc.pid(), out, false));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut sent = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if !sent && let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_string());
                sent = true;
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(600)).with_context(|| {
        format!(
            "ocp-metrics did not print its address; see {}",
            log.display()
        )
    })?;
    // Ready means recovered and serving: `/readyz` answers 200 (a server that binds before
    // recovering answers 503 there meanwhile). Servers without `/readyz` recover before they
    // bind, so `/healthz` is their readiness.
    let agent = crate::http::agent();
    let mut path = "/readyz";
    loop {
        match crate::http::send(&agent, "GET", &format!("{url}{path}"), &[], None) {
            Ok((200, _)) => break,
            Ok((404, _)) if path == "/readyz" => path = "/healthz",
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("ocp-metrics at {url} was not ready ({path}) within 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ready = started.elapsed();
    perf_stop(perf);
    Ok((proc, url, ready))
}

/// Finds a free TCP port on the loopback interface.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts `perf record` on a process (cpu-clock samples with DWARF call graphs), and waits a
/// moment for it to attach if `wait`.
pub fn perf_record(pid: u32, out: &Path, wait: bool) -> Option<Child> {
    let child = Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "299",
            "--call-graph",
            "dwarf,8192",
        ])
        .args(["-p", &pid.to_string(), "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    if wait {
        std::thread::sleep(Duration::from_millis(500));
    }
    Some(child)
}

/// Stops a `perf record` started by [`perf_record`] and lets it write its file.
pub fn perf_stop(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = signal(c.id(), "INT");
        let _ = c.wait();
    }
}

/// [`perf_record`] into `out` if there is one (`--perf`), after it has attached.
pub fn start_perf(pid: u32, out: Option<&Path>) -> Option<Child> {
    out.and_then(|out| perf_record(pid, out, true))
}

/// Seconds to wait for a quiet machine before a timed phase (see `--quiet-wait`).
static QUIET_WAIT: AtomicU64 = AtomicU64::new(0);

/// Sets how long [`wait_quiet`] waits at the most, for the whole run.
pub fn set_quiet_wait(seconds: u64) {
    QUIET_WAIT.store(seconds, Ordering::Relaxed);
}

/// Waits (up to `--quiet-wait`) until processes other than `pids` and this one use under 5% of
/// the CPU time over a second.
pub fn wait_quiet(pids: &[u32], phase: &str) {
    let max = Duration::from_secs(QUIET_WAIT.load(Ordering::Relaxed));
    if max.is_zero() {
        return;
    }
    let t = Instant::now();
    let mut share = 1.0;
    while t.elapsed() < max {
        let m = CpuMeter::start(pids);
        std::thread::sleep(Duration::from_secs(1));
        share = m.foreign_share();
        if share < FOREIGN_SHARE_QUIET {
            if t.elapsed() > Duration::from_secs(2) {
                say(format!(
                    "machine quiet again after {:.0} s",
                    t.elapsed().as_secs_f64()
                ));
            }
            return;
        }
        if t.elapsed() < Duration::from_millis(1500) {
            say(format!(
                "other processes use {:.0}% of the CPU; waiting up to {} s before {phase}",
                share * 100.0,
                max.as_secs()
            ));
        }
    }
    say(format!(
        "machine still busy ({:.0}% foreign CPU); measuring {phase} anyway",
        share * 100.0
    ));
}

/// The longest a timed phase waits for the server's own background work to end, in seconds.
const SETTLE_WAIT_SECONDS_MAX: u64 = 60;
/// A server counts as idle in a second in which it uses at most this many jiffies of CPU time
/// (all its threads): 5% of one CPU at the usual 100 Hz.
const SETTLED_JIFFIES_PER_SECOND_MAX: u64 = 5;
/// Idle seconds in a row that make a server settled: more than the quiet spell after which the
/// store starts a checkpoint (2 s, checked once a second), so that none can start after the
/// wait.
const SETTLED_SECONDS_MIN: u32 = 4;

/// Waits (up to [`SETTLE_WAIT_SECONDS_MAX`]) until the server `pid` is settled: after a load it
/// writes a checkpoint once ingest has been quiet for 2 s (a second or two of one core at 10
/// million events), which a query phase timed meanwhile would measure instead of the queries.
pub fn wait_settled(pid: u32, phase: &str) {
    let t = Instant::now();
    let mut idle_seconds = 0;
    while t.elapsed() < Duration::from_secs(SETTLE_WAIT_SECONDS_MAX) {
        let before = crate::stats::process_jiffies(pid);
        std::thread::sleep(Duration::from_secs(1));
        let used = crate::stats::process_jiffies(pid).saturating_sub(before);
        idle_seconds = if used <= SETTLED_JIFFIES_PER_SECOND_MAX {
            idle_seconds + 1
        } else {
            0
        };
        if idle_seconds >= SETTLED_SECONDS_MIN {
            say(format!(
                "server settled ({SETTLED_SECONDS_MIN} idle seconds) after {:.0} s, before {phase}",
                t.elapsed().as_secs_f64()
            ));
            return;
        }
    }
    say(format!(
        "server still busy after {SETTLE_WAIT_SECONDS_MAX} s; measuring {phase} anyway"
    ));
}

/// The share of all CPU time that other processes used during each timed phase of one system,
/// in the order measured.
#[derive(Debug, Default)]
pub struct Noise(Vec<(String, f64)>);

impl Noise {
    /// Runs `timed` while metering the CPU of processes other than `pids` and this one, and
    /// records that share as `label`.
    pub fn meter<T>(
        &mut self,
        label: impl Into<String>,
        pids: &[u32],
        timed: impl FnOnce() -> T,
    ) -> T {
        let meter = CpuMeter::start(pids);
        let out = timed();
        self.push(label, meter.foreign_share());
        out
    }

    /// Records that other processes used `share` (0 to 1) of the CPU during phase `label`.
    pub fn push(&mut self, label: impl Into<String>, share: f64) {
        self.0.push((label.into(), share));
    }

    /// The phase with the largest share, and that share (0 with no phase).
    pub fn worst(&self) -> (String, f64) {
        self.0
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .cloned()
            .unwrap_or_default()
    }

    /// Phase to share, for the JSON results.
    pub fn json(&self) -> Value {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// How often [`with_probes`] probes freshness.
const PROBE_INTERVAL_MS: u64 = 100;

/// Runs `ingest` while a thread calls `probe(n)` for n = `first`, `first` + 1, ... every 100 ms
/// until it is done; adds the samples to `fresh` and returns the next unused n.
pub fn with_probes<T>(
    probe: impl Fn(u64) -> anyhow::Result<(Duration, Duration)> + Sync,
    first: u64,
    fresh: &mut Freshness,
    ingest: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, u64)> {
    let stop = AtomicBool::new(false);
    let (result, (probed, next, err)) = std::thread::scope(|s| {
        let prober = s.spawn(|| probe_until(&probe, first, &stop));
        let r = ingest();
        stop.store(true, Ordering::Relaxed);
        (r, prober.join().expect("the probe thread panicked"))
    });
    if let Some(e) = err {
        return Err(e.context("freshness probe"));
    }
    fresh.extend(probed);
    Ok((result?, next))
}

/// The probe thread of [`with_probes`]: its samples, the next unused n, and the error that
/// stopped it early, if any.
fn probe_until(
    probe: &impl Fn(u64) -> anyhow::Result<(Duration, Duration)>,
    first: u64,
    stop: &AtomicBool,
) -> (Freshness, u64, Option<anyhow::Error>) {
    let mut f = Freshness::default();
    let mut n = first;
    while !stop.load(Ordering::Relaxed) {
        match probe(n) {
            Ok(sample) => f.push(sample),
            Err(e) => return (f, n, Some(e)),
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(PROBE_INTERVAL_MS));
    }
    (f, n, None)
}
