//! ocp-metrics under test: a server process, a token, ingest, queries and freshness probes
//! (the measurements made with them are in [`measure`]).

mod measure;

pub use measure::{OursOut, run_ours};

use crate::data::rfc3339_ms;
use crate::http::{self, IngestTarget};
use crate::procs::{self, Proc};
use crate::queries::QuerySpec;
use anyhow::bail;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef0123";
/// The group of freshness probes, kept apart from the benchmark's data.
pub const PROBE_GROUP: &str = "bench-probe";

/// A running ocp-metrics server and a bearer token for it.
#[derive(Debug)]
pub struct Ours {
    pub proc: Proc,
    pub url: String,
    pub token: String,
    bin: PathBuf,
    pub data_dir: PathBuf,
    log: PathBuf,
    agent: ureq::Agent,
}

impl Ours {
    /// Starts a server on a fresh data directory and creates a token for every group.
    pub fn start(bin: &Path, data_dir: &Path, log: &Path) -> anyhow::Result<(Ours, Duration)> {
        let (proc, url, ready) = procs::start_ocp(bin, data_dir, ADMIN_TOKEN, log, &[], None)?;
        let agent = http::agent();
        let token = http::create_token(&agent, &url, ADMIN_TOKEN)?;
        Ok((
            Ours {
                proc,
                url,
                token,
                bin: bin.to_path_buf(),
                data_dir: data_dir.to_path_buf(),
                log: log.to_path_buf(),
                agent,
            },
            ready,
        ))
    }

    /// Starts the server again on the same data (after `terminate` or `kill9`); returns the
    /// time from spawn to `/healthz` answering 200.
    pub fn restart(&mut self, perf_out: Option<&Path>) -> anyhow::Result<Duration> {
        self.restart_profiled(&[], perf_out)
    }

    /// [`Ours::restart`] with extra `serve` arguments (e.g. `--clock-start`).
    pub fn restart_with(&mut self, extra: &[String]) -> anyhow::Result<Duration> {
        self.restart_profiled(extra, None)
    }

    fn restart_profiled(
        &mut self,
        extra: &[String],
        perf_out: Option<&Path>,
    ) -> anyhow::Result<Duration> {
        let (proc, url, ready) = procs::start_ocp(
            &self.bin,
            &self.data_dir,
            ADMIN_TOKEN,
            &self.log,
            extra,
            perf_out,
        )?;
        self.proc = proc;
        self.url = url;
        self.agent = http::agent();
        Ok(ready)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Posts `body` to `path` of this server with its token; returns the status and answer.
    fn post(
        &self,
        agent: &ureq::Agent,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        post(
            agent,
            &format!("{}{path}", self.url),
            &self.token,
            content_type,
            body,
        )
    }

    pub fn ingest_target(&self) -> IngestTarget {
        IngestTarget {
            url: format!("{}/ingest/v1/events", self.url),
            headers: vec![
                ("Authorization".into(), self.auth()),
                ("Content-Type".into(), "application/x-ndjson".into()),
            ],
            ocp_answer: true,
        }
    }

    /// Posts a query; returns the answer body and the time to read it all.
    pub fn query(
        &self,
        agent: &ureq::Agent,
        spec: &QuerySpec,
        body: &str,
    ) -> anyhow::Result<(Vec<u8>, Duration)> {
        crate::http::timed_ok(spec.name, || {
            self.post(agent, spec.path(), "application/json", body)
        })
    }

    pub fn version(&self) -> String {
        std::process::Command::new(&self.bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// One freshness probe: posts one event to the probe group, and from its 200 polls a
    /// real-time query until the event is counted. Returns (acknowledgement, 200-to-visible).
    pub fn probe(
        &self,
        agent: &ureq::Agent,
        n: u64,
        run: u64,
    ) -> anyhow::Result<(Duration, Duration)> {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let event = probe_event(run, n, now_ms);
        let t0 = Instant::now();
        let (status, body) =
            self.post(agent, "/ingest/v1/events", "application/x-ndjson", &event)?;
        if status != 200 {
            bail!(
                "probe ingest answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let acked = Instant::now();
        let ack = acked - t0;
        let query = probe_query(run, n, now_ms)?;
        loop {
            let (status, out) = self.post(agent, PROBE_QUERY_PATH, "application/json", &query)?;
            if status != 200 {
                bail!(
                    "probe query answered {status}: {}",
                    String::from_utf8_lossy(&out)
                );
            }
            let seen = probe_count(&out)?;
            if seen >= 1 {
                return Ok((ack, acked.elapsed()));
            }
            if acked.elapsed() > Duration::from_secs(30) {
                bail!("probe {n} not visible 30 s after its 200 (counted {seen})");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The real-time query of freshness probes.
pub const PROBE_QUERY_PATH: &str = "/metrics-api/v3/realtime/metrics/miniapps";

/// Freshness probe `n` of run `run` at `now_ms`: one event in the probe group, with a miniApp
/// name of its own.
pub fn probe_event(run: u64, n: u64, now_ms: i64) -> String {
    json!({
        "id": format!("probe-{run}-{n}"),
        "type": "miniapp_end",
        "time": rfc3339_ms(now_ms),
        "started_at": rfc3339_ms(now_ms - 1000),
        "group": PROBE_GROUP,
        "session_id": format!("probe-session-{run}-{n}"),
        "channel": "omIVR",
        "region": "us1",
        "miniapp_name": format!("Probe-{run}-{n}"),
        "miniapp_id": "probe",
        "miniapp_type": "Probe",
        "locale": "en-US",
        "result": "success",
    })
    .to_string()
}

/// The real-time query (at [`PROBE_QUERY_PATH`]) that counts probe `n` of run `run` sent at
/// `now_ms`. Each probe has its own miniApp name, so one count tells whether it is visible.
pub fn probe_query(run: u64, n: u64, now_ms: i64) -> anyhow::Result<String> {
    let five = 300_000;
    let end = now_ms.div_euclid(five) * five + five;
    let fmt = |ms: i64| -> anyhow::Result<String> {
        Ok(jiff::Timestamp::from_millisecond(ms)?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y/%m/%d %H:%M:%S")
            .to_string())
    };
    Ok(json!({
        "metrics": ["miniapps_invocations"],
        "filters": {"miniapp_name": [format!("Probe-{run}-{n}")]},
        "start": fmt(end - 3_600_000)?,
        "end": fmt(end)?,
        "group": PROBE_GROUP,
        "downsampling": "five_min",
        "timezone": "UTC",
    })
    .to_string())
}

/// How many probe invocations an answer of [`probe_query`] counts.
pub fn probe_count(answer: &[u8]) -> anyhow::Result<u64> {
    let v: serde_json::Value = serde_json::from_slice(answer)?;
    Ok(v[0]["dps"]
        .as_object()
        .map(|m| m.values().filter_map(|x| x.as_u64()).sum())
        .unwrap_or(0))
}

/// Posts `body` to `url` with a bearer `token`; returns the status and answer.
fn post(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    content_type: &str,
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let auth = format!("Bearer {token}");
    http::send(
        agent,
        "POST",
        url,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", content_type),
        ],
        Some(body.as_bytes()),
    )
}
