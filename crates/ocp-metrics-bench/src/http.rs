//! HTTP plumbing shared by every system under test: one keep-alive agent per client thread,
//! the concurrent ingest driver and the concurrent query driver.

use crate::data::Batch;
use crate::stats::Latencies;
use anyhow::{Context, bail};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A new agent: one pooled keep-alive connection per host, generous timeouts (a benchmark
/// request that takes minutes is a finding, not a reason to give up).
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .max_idle_connections_per_host(4)
        .build()
}

/// Sends one request and returns its status and body for every status.
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{method} {url}"))),
    };
    let status = resp.status();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut out)
        .with_context(|| format!("reading the answer of {method} {url}"))?;
    Ok((status, out))
}

/// Creates a personal access token for every group with both scopes on the server at
/// `base_url`, with the admin token, and returns it.
pub fn create_token(
    agent: &ureq::Agent,
    base_url: &str,
    admin_token: &str,
) -> anyhow::Result<String> {
    let body = serde_json::json!({
        "name": "bench",
        "groups": ["*"],
        "scopes": ["metrics:read", "events:write"],
        "expires_at": null,
    })
    .to_string();
    let auth = format!("Bearer {admin_token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let url = format!("{base_url}/admin/v1/tokens");
    let (status, answer) = send(agent, "POST", &url, &headers, Some(body.as_bytes()))?;
    if status != 201 && status != 200 {
        bail!(
            "creating a token on {base_url} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&answer)?;
    Ok(v["token"]
        .as_str()
        .context("the token answer has no `token`")?
        .to_string())
}

/// Sends one request with `send`, timed from send to full answer; anything but a 200 is an
/// error naming `what` and quoting the start of the answer.
pub fn timed_ok(
    what: &str,
    send: impl FnOnce() -> anyhow::Result<(u16, Vec<u8>)>,
) -> anyhow::Result<(Vec<u8>, Duration)> {
    let t = Instant::now();
    let (status, out) = send()?;
    let elapsed = t.elapsed();
    if status != 200 {
        bail!(
            "{what} answered {status}: {}",
            String::from_utf8_lossy(&out[..out.len().min(500)])
        );
    }
    Ok((out, elapsed))
}

/// Where ingest requests go and how their answers are read.
#[derive(Debug, Clone)]
pub struct IngestTarget {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Whether a 200's body is an ocp-metrics ingest answer to check (else 200 is enough).
    pub ocp_answer: bool,
}

/// The outcome of one ingest phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestRun {
    pub producers: usize,
    pub batch_size: usize,
    pub events: u64,
    pub requests: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Requests answered 429/503 and sent again.
    pub retried: u64,
    pub latency: crate::stats::Summary,
    pub first_rejections: Vec<String>,
}

#[derive(serde::Deserialize)]
struct OcpAnswer {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// Sends `batches` with `producers` concurrent clients, each on its own connection taking the
/// next unsent batch, and times every request from send to full answer.
pub fn ingest(
    target: &IngestTarget,
    batches: &[Batch],
    producers: usize,
    batch_size: usize,
) -> anyhow::Result<IngestRun> {
    ingest_spread(std::slice::from_ref(target), batches, producers, batch_size)
}

/// [`ingest`] with producers spread round-robin over `targets` (producer `p` sends to target
/// `p % targets.len()`): the nodes of one cluster, each taking its share of the load.
pub fn ingest_spread(
    targets: &[IngestTarget],
    batches: &[Batch],
    producers: usize,
    batch_size: usize,
) -> anyhow::Result<IngestRun> {
    if targets.is_empty() {
        bail!("no ingest target");
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let totals = [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ];
    let lat = Mutex::new(Latencies::default());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let rejections: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for p in 0..producers {
            let target = &targets[p % targets.len()];
            let (next, failed, totals, lat, errors, rejections) =
                (&next, &failed, &totals, &lat, &errors, &rejections);
            s.spawn(move || {
                let agent = agent();
                let headers: Vec<(&str, &str)> = target
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let mut mine = Latencies::default();
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(i) else { break };
                    let t0 = Instant::now();
                    let mut attempts = 0;
                    let outcome = loop {
                        attempts += 1;
                        match send(&agent, "POST", &target.url, &headers, Some(&batch.body)) {
                            Ok((429 | 503, _)) if attempts < 100 => {
                                totals[3].fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            other => break other,
                        }
                    };
                    let elapsed = t0.elapsed();
                    match outcome {
                        Ok((200, body)) => {
                            mine.push(elapsed);
                            if target.ocp_answer {
                                match serde_json::from_slice::<OcpAnswer>(&body) {
                                    Ok(a) => {
                                        totals[0].fetch_add(a.accepted, Ordering::Relaxed);
                                        totals[1].fetch_add(a.duplicates, Ordering::Relaxed);
                                        totals[2].fetch_add(a.rejected, Ordering::Relaxed);
                                        if !a.errors.is_empty() {
                                            let mut r = rejections.lock().unwrap();
                                            if r.len() < 5 {
                                                r.push(a.errors[0].to_string());
                                            }
                                        }
                                    }
                                    Err(e) => {
                                        errors.lock().unwrap().push(format!(
                                            "a 200 whose body is not an ingest answer: {e}"
                                        ));
                                        failed.store(true, Ordering::Relaxed);
                                    }
                                }
                            } else {
                                totals[0].fetch_add(batch.events as u64, Ordering::Relaxed);
                            }
                        }
                        Ok((status, body)) => {
                            errors.lock().unwrap().push(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(500)])
                            ));
                            failed.store(true, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.lock().unwrap().push(format!("{e:#}"));
                            failed.store(true, Ordering::Relaxed);
                        }
                    }
                }
                lat.lock().unwrap().extend(mine);
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = errors.into_inner().unwrap().into_iter().next() {
        let urls: Vec<&str> = targets.iter().map(|t| t.url.as_str()).collect();
        bail!("ingest into {} failed: {e}", urls.join(", "));
    }
    let latencies = lat.into_inner().unwrap();
    let events: u64 = batches.iter().map(|b| b.events as u64).sum();
    Ok(IngestRun {
        producers,
        batch_size,
        events,
        requests: batches.len() as u64,
        seconds,
        events_per_second: events as f64 / seconds.max(1e-9),
        accepted: totals[0].load(Ordering::Relaxed),
        duplicates: totals[1].load(Ordering::Relaxed),
        rejected: totals[2].load(Ordering::Relaxed),
        retried: totals[3].load(Ordering::Relaxed),
        latency: latencies.summary(),
        first_rejections: rejections.into_inner().unwrap(),
    })
}

/// Runs `clients` threads, each with its own agent, that each call `run(agent, client, i)` for
/// i = 0, 1, ... until `duration` has passed, and returns completed calls per second. `run`
/// returns an error to stop.
pub fn throughput<F>(clients: usize, duration: Duration, run: F) -> anyhow::Result<f64>
where
    F: Fn(&ureq::Agent, usize, usize) -> anyhow::Result<()> + Sync,
{
    let agents: Vec<ureq::Agent> = (0..clients).map(|_| agent()).collect();
    let done = AtomicU64::new(0);
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for (c, agent) in agents.iter().enumerate() {
            let (done, error, stop, run) = (&done, &error, &stop, &run);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < duration {
                    if let Err(e) = run(agent, c, i) {
                        error.lock().unwrap().get_or_insert(e);
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(done.load(Ordering::Relaxed) as f64 / seconds)
}
