//! One `ocp-metrics serve` process of a configuration (embedded, or a cluster node with
//! `--nats`): start and restart on its data directory, a bearer token, queries, its Prometheus
//! metrics, and freshness probes across nodes.

use crate::http;
use crate::ours::{ADMIN_TOKEN, PROBE_QUERY_PATH, probe_count, probe_event, probe_query};
use crate::procs::{self, Proc};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a probe may stay invisible after its 200 before the run fails: the contract says
/// about 1 s across nodes; the rest is headroom for six processes on two cores.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);
/// Grace for a node to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two polls of a probe's query.
const PROBE_POLL: Duration = Duration::from_millis(1);

/// A running server, and how to start it again.
#[derive(Debug)]
pub struct Node {
    pub proc: Proc,
    pub url: String,
    pub data_dir: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
    agent: ureq::Agent,
}

impl Node {
    /// Starts a server on `data_dir` with `extra` `serve` arguments; returns it and the time
    /// from spawn to `/readyz` 200.
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        log: &Path,
        extra: &[String],
    ) -> anyhow::Result<(Node, Duration)> {
        std::fs::create_dir_all(data_dir)?;
        let (proc, url, ready) = procs::start_ocp(bin, data_dir, ADMIN_TOKEN, log, extra, None)?;
        Ok((
            Node {
                proc,
                url,
                data_dir: data_dir.to_path_buf(),
                bin: bin.to_path_buf(),
                log: log.to_path_buf(),
                extra: extra.to_vec(),
                agent: http::agent(),
            },
            ready,
        ))
    }

    /// `kill -9`, delete the data directory, start again: the node has nothing but what the
    /// cluster holds. Returns the time from spawn to `/readyz` 200.
    pub fn wipe_and_restart(&mut self) -> anyhow::Result<Duration> {
        self.proc.kill9();
        std::fs::remove_dir_all(&self.data_dir)
            .with_context(|| format!("wiping {}", self.data_dir.display()))?;
        std::fs::create_dir_all(&self.data_dir)?;
        self.spawn()
    }

    /// SIGTERM, then start again on the same data directory with `extra` `serve` arguments.
    /// Returns the time from spawn to `/readyz` 200.
    pub fn restart_with(&mut self, extra: &[String]) -> anyhow::Result<Duration> {
        self.proc.terminate(SHUTDOWN_TIMEOUT)?;
        self.extra = extra.to_vec();
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<Duration> {
        let (proc, url, ready) = procs::start_ocp(
            &self.bin,
            &self.data_dir,
            ADMIN_TOKEN,
            &self.log,
            &self.extra,
            None,
        )?;
        self.proc = proc;
        self.url = url;
        self.agent = http::agent();
        Ok(ready)
    }

    /// Creates a token for every group with the admin token.
    pub fn create_token(&self) -> anyhow::Result<String> {
        http::create_token(&self.agent, &self.url, ADMIN_TOKEN)
    }

    /// Waits until this node accepts `token` (a token created on another node reaches it
    /// through the cluster's credentials bucket); returns how long that took.
    pub fn await_token(&self, token: &str, deadline: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let query = probe_query(0, 0, jiff::Timestamp::now().as_millisecond())?;
        loop {
            let (status, out) = self.post(
                &self.agent,
                PROBE_QUERY_PATH,
                token,
                "application/json",
                query.as_bytes(),
            )?;
            match status {
                200 => return Ok(started.elapsed()),
                401 | 403 if started.elapsed() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => bail!(
                    "{} answered {status} with the bench token: {}",
                    self.url,
                    String::from_utf8_lossy(&out)
                ),
            }
        }
    }

    /// Posts `body` to `path` with a bearer `token`; returns the status and answer.
    pub fn post(
        &self,
        agent: &ureq::Agent,
        path: &str,
        token: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let auth = format!("Bearer {token}");
        http::send(
            agent,
            "POST",
            &format!("{}{path}", self.url),
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", content_type),
            ],
            Some(body),
        )
    }

    /// Posts a query; returns its answer and the time to read it all. Anything but 200 fails.
    pub fn query(
        &self,
        agent: &ureq::Agent,
        token: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(Vec<u8>, Duration)> {
        crate::http::timed_ok(&format!("{path} on {}", self.url), || {
            self.post(agent, path, token, "application/json", body.as_bytes())
        })
    }

    /// The node's `/metrics` samples by name (labels included in the name when present).
    pub fn metrics(&self) -> anyhow::Result<HashMap<String, f64>> {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let (status, out) = http::send(
            &self.agent,
            "GET",
            &format!("{}/metrics", self.url),
            &[("Authorization", auth.as_str())],
            None,
        )?;
        if status != 200 {
            bail!("/metrics on {} answered {status}", self.url);
        }
        Ok(parse_prometheus(&String::from_utf8_lossy(&out)))
    }

    /// One sample of `/metrics` (0 when absent: embedded mode has no cluster samples).
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        Ok(self.metrics()?.get(name).copied().unwrap_or(0.0))
    }
}

/// Prometheus text exposition: `name{labels} value` lines, comments skipped.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// One freshness probe across nodes: posts probe `n` to `writer` with `token`, then, from its
/// 200, polls the real-time query on each of `readers` in turn until it counts the probe.
/// Returns the acknowledgement time and, per reader, the time from the 200 to visible there.
/// The writer answers read-your-writes, so polling it first hardly delays the others.
pub fn probe(
    writer: &Node,
    readers: &[&Node],
    token: &str,
    run: u64,
    n: u64,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let agent = http::agent();
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let event = probe_event(run, n, now_ms);
    let t0 = Instant::now();
    let (status, body) = writer.post(
        &agent,
        "/ingest/v1/events",
        token,
        "application/x-ndjson",
        event.as_bytes(),
    )?;
    if status != 200 {
        bail!(
            "probe ingest on {} answered {status}: {}",
            writer.url,
            String::from_utf8_lossy(&body)
        );
    }
    let acked = Instant::now();
    let query = probe_query(run, n, now_ms)?;
    let mut visible = Vec::with_capacity(readers.len());
    for reader in readers {
        loop {
            let (out, _) = reader.query(&agent, token, PROBE_QUERY_PATH, &query)?;
            if probe_count(&out)? >= 1 {
                visible.push(acked.elapsed());
                break;
            }
            if acked.elapsed() > PROBE_DEADLINE {
                bail!(
                    "probe {n} from {} not visible on {} {PROBE_DEADLINE:?} after its 200",
                    writer.url,
                    reader.url
                );
            }
            std::thread::sleep(PROBE_POLL);
        }
    }
    Ok((acked - t0, visible))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_by_name() {
        let m = parse_prometheus(
            "# HELP x y\n# TYPE x gauge\nocp_metrics_groups 2\nocp_metrics_cluster_catch_up_seconds 1.5\nh{le=\"1\"} 3\n",
        );
        assert_eq!(m["ocp_metrics_groups"], 2.0);
        assert_eq!(m["ocp_metrics_cluster_catch_up_seconds"], 1.5);
        assert_eq!(m["h{le=\"1\"}"], 3.0);
        assert_eq!(m.len(), 3);
    }
}
