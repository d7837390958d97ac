//! Harness of the reliability tests (`torture.rs`, `corruption.rs`): runs the real binary over a
//! data dir that outlives the process, kills it (SIGKILL) or stops it (SIGTERM), restarts it,
//! and talks HTTP to it; plus a from-scratch recomputation of answers with the core, and a count
//! by hand of one endpoint that shares no code with the server.

#![allow(dead_code)]

use crate::support;
use ocp_metrics_core::rollup::Horizons;
use ocp_metrics_core::{Endpoint, Event, Query, Rollups};
use ocp_metrics_server::wire::{WireEvent, answer_json, query_draft};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The groups of generated events.
pub const GROUPS: [&str; 3] = ["acme", "globex", "initech"];

pub const ADMIN_TOKEN: &str = "reliability-admin-0123456789abcdef01234";
/// The server clock starts here at every start, and advances in real time.
pub use crate::support::CLOCK_START;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn clock_start() -> jiff::Timestamp {
    CLOCK_START.parse().unwrap()
}

/// One `ocp-metrics serve` process at a time over a fixed data dir.
#[derive(Debug)]
pub struct Proc {
    pub data: PathBuf,
    logs: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    pub base_url: String,
    pub starts: usize,
}

impl Proc {
    pub fn new(data: &Path, logs: &Path, args: &[&str]) -> Proc {
        Proc {
            data: data.to_path_buf(),
            logs: logs.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            base_url: String::new(),
            starts: 0,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.logs.join(format!("server-{}.log", self.starts))
    }

    /// Starts the server and returns once it printed its `listening on` line (it may still be
    /// recovering).
    pub fn start(&mut self) -> String {
        assert!(self.child.is_none());
        self.starts += 1;
        let mut args: Vec<String> = ["--rate-per-second", "1000000", "--rate-burst", "1000000"]
            .map(String::from)
            .to_vec();
        args.extend(self.args.iter().cloned());
        let (child, url) = support::launch(&self.data, &self.log_path(), &args, Some(ADMIN_TOKEN));
        self.base_url = url.clone();
        self.child = Some(child);
        url
    }

    /// Starts and waits until `/readyz` answers 200.
    pub fn start_ready(&mut self) -> String {
        let url = self.start();
        self.wait_ready();
        url
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        // What `/readyz` last said, so that a node that never gets ready says why.
        let mut last;
        loop {
            match get(&format!("{}/readyz", self.base_url)) {
                Ok(r) if r.0 == 200 => return,
                Ok(r) => last = format!("{} {}", r.0, r.1),
                Err(e) => last = e.to_string(),
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "server exited while recovering: {status}; log:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "not ready in {READY_TIMEOUT:?}; /readyz last answered: {last}; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let status = c.wait().unwrap();
            assert!(status.success(), "exit after SIGTERM: {status}");
        }
    }

    /// Whether the process exited by itself (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last 40 lines of the log, without the access lines of `/readyz` polls (which
    /// `wait_ready` writes every 10 ms and which would otherwise be all a failure shows).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("/readyz")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A personal access token for every group with both scopes.
    pub fn create_token(&self) -> String {
        let body = json!({"name": "reliability", "groups": ["*"], "scopes": ["metrics:read", "events:write"], "expires_at": null});
        let (status, text) = post(
            &format!("{}/admin/v1/tokens", self.base_url),
            Some(ADMIN_TOKEN),
            "application/json",
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 201, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// `GET /metrics` as name -> value.
    pub fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let url = format!("{}/metrics", self.base_url);
        let scrape = agent()
            .get(&url)
            .set("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .call();
        let (status, text) = finish(scrape).unwrap();
        assert_eq!(status, 200, "{text}");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .max_idle_connections(0)
        .build()
}

/// A GET; `Err` only when no HTTP answer came.
pub fn get(url: &str) -> Result<(u16, String), String> {
    finish(agent().get(url).call())
}

/// A POST; `Err` only when no HTTP answer came.
pub fn post(
    url: &str,
    bearer: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut req = agent().post(url).set("Content-Type", content_type);
    if let Some(t) = bearer {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    finish(req.send_bytes(body))
}

fn finish(result: Result<ureq::Response, ureq::Error>) -> Result<(u16, String), String> {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let mut text = String::new();
    resp.into_reader()
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// Parses NDJSON event lines the way the server does, at the server's clock start.
pub fn parse_events<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Event> {
    lines
        .into_iter()
        .map(|l| {
            let w = WireEvent::parse(l).unwrap();
            Event::parse(&w.draft(), clock_start()).unwrap()
        })
        .collect()
}

/// The rollups a from-scratch recomputation over `events` gives.
pub fn recompute(events: &[Event]) -> Rollups {
    let mut r = Rollups::new();
    for e in events {
        r.apply(e, Horizons::at(clock_start()));
    }
    r
}

/// The answer body the server must give for `body` on `endpoint`, computed from `rollups`.
pub fn expected_answer(rollups: &Rollups, endpoint: Endpoint, body: &Value) -> String {
    let draft = query_draft(body.to_string().as_bytes()).unwrap();
    let q = Query::parse(endpoint, draft, clock_start()).unwrap();
    answer_json(&rollups.query(&q, clock_start()).unwrap())
}

/// Queries covering every endpoint and every metric, with and without drilldown, in three time
/// zones, over `groups`. Every `end` is at or before the clock start, so the buckets do not
/// depend on when the query runs.
pub fn all_queries(groups: &[&str]) -> Vec<(Endpoint, Value)> {
    let mut out = Vec::new();
    for endpoint in Endpoint::ALL {
        let family = endpoint.family();
        let metrics: Vec<&str> = endpoint.metrics().iter().map(|m| m.name).collect();
        let rt = family.is_realtime();
        let dims = family.dims();
        let (start, grans, tzs) = if rt {
            (
                "2024/03/25 20:00:00",
                ["five_min", "hour", "hour"],
                ["UTC", "Asia/Kolkata", "America/New_York"],
            )
        } else {
            (
                "2024/03/20 00:00:00",
                ["hour", "day", "week"],
                ["UTC", "Asia/Kathmandu", "America/New_York"],
            )
        };
        for (i, group) in groups.iter().enumerate() {
            let v = i % 3;
            let mut filters = serde_json::Map::new();
            let drilldown = v != 0;
            if v == 1 {
                filters.insert(dims[0].to_string(), json!([]));
                filters.insert("channel".into(), json!([]));
            } else if v == 2 {
                filters.insert("region".into(), json!(["eu1"]));
                if dims.contains(&"test_flag") {
                    filters.insert("test_flag".into(), json!(false));
                }
                filters.insert(dims[0].to_string(), json!([]));
            }
            out.push((
                endpoint,
                json!({
                    "metrics": metrics,
                    "filters": filters,
                    "start": start,
                    "end": "2024/03/27 06:00:00",
                    "group": group,
                    "downsampling": grans[v],
                    "drilldown": drilldown,
                    "timezone": tzs[v],
                }),
            ));
        }
    }
    out
}

/// How far a server answer is from the expected one, summed over every data point of the
/// series of `metrics` (all when empty): (missing, extra).
pub fn discrepancy(expected: &str, got: &str, metrics: &[&str]) -> (u64, u64) {
    let (e, g): (Value, Value) = match (serde_json::from_str(expected), serde_json::from_str(got)) {
        (Ok(e), Ok(g)) => (e, g),
        _ => return (0, 0),
    };
    let points = |v: &Value| {
        let mut m = std::collections::BTreeMap::new();
        for s in v.as_array().into_iter().flatten() {
            if !metrics.is_empty() && !metrics.iter().any(|m| s["metric"] == *m) {
                continue;
            }
            let key = format!("{}{}", s["metric"], s["tags"]);
            for (label, n) in s["dps"].as_object().into_iter().flatten() {
                m.insert(format!("{key}@{label}"), n.as_i64().unwrap_or(0));
            }
        }
        m
    };
    let (e, g) = (points(&e), points(&g));
    let (mut lost, mut dup) = (0, 0);
    let keys: std::collections::BTreeSet<&String> = e.keys().chain(g.keys()).collect();
    for k in keys {
        let (a, b) = (
            e.get(k).copied().unwrap_or(0),
            g.get(k).copied().unwrap_or(0),
        );
        if a > b {
            lost += (a - b) as u64;
        } else {
            dup += (b - a) as u64;
        }
    }
    (lost, dup)
}

/// splitmix64: small, seeded, good enough to pick test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One NDJSON event line, and whether the server must accept it.
#[derive(Clone, Debug)]
pub struct Line {
    pub json: String,
    pub valid: bool,
}

/// How often a producer repeats itself: a line twice in one request, or a request that resends
/// a part of an earlier one.
const REPEAT_CHANCE_PERCENT: u64 = 10;
/// The most lines of an earlier request a request resends.
const RESENT_LINES_MAX: usize = 20;

/// How a producer cuts its lines into requests.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Each request holds 1 to this many new lines.
    pub events_max: u64,
    /// Whether a request may hold one of its lines twice.
    pub repeats_within: bool,
}

/// Cuts `lines`, in their order, into requests as `batching` says, with the producer's own
/// duplicates (what its retries and resends would send): now and then a line twice in one
/// request, and a part of an earlier request sent again.
pub fn into_requests(rng: &mut Rng, lines: &[Line], batching: Batching) -> Vec<Vec<Line>> {
    let mut out: Vec<Vec<Line>> = Vec::new();
    let mut rest = lines;
    while !rest.is_empty() {
        let n = (rng.below(batching.events_max) as usize + 1).min(rest.len());
        let mut request = rest[..n].to_vec();
        rest = &rest[n..];
        if batching.repeats_within && rng.chance(REPEAT_CHANCE_PERCENT) {
            let dup = request[rng.below(request.len() as u64) as usize].clone();
            request.push(dup);
        }
        if rng.chance(REPEAT_CHANCE_PERCENT) && !out.is_empty() {
            let earlier = out[rng.below(out.len() as u64) as usize].clone();
            request.extend(earlier.into_iter().take(RESENT_LINES_MAX));
        }
        out.push(request);
    }
    out
}

/// Where one attempt to deliver a request goes: a server's base URL and the token to use there.
pub struct Target {
    pub url: String,
    pub token: String,
}

/// Posts `request` as NDJSON until an attempt is answered 200, checks and records what that
/// answer acknowledged ([`acknowledge`]), and returns it. `next` says where each attempt goes;
/// `failed` hears of every other outcome (a status and its text, or `None` when no answer
/// came), and the next attempt follows after `pause`. Panics once `deadline` has passed
/// without a 200, a lost request being a hung server.
pub fn deliver(
    request: &[Line],
    acked: &std::sync::Mutex<std::collections::BTreeSet<String>>,
    (deadline, pause): (Duration, Duration),
    mut next: impl FnMut() -> Target,
    mut failed: impl FnMut(Option<(u16, &str)>),
) -> Value {
    let body: String = request.iter().map(|l| format!("{}\n", l.json)).collect();
    let started = Instant::now();
    let answer = loop {
        assert!(
            started.elapsed() < deadline,
            "a request was not acknowledged in {deadline:?}"
        );
        let Target { url, token } = next();
        let target = format!("{url}/ingest/v1/events");
        match post(
            &target,
            Some(&token),
            "application/x-ndjson",
            body.as_bytes(),
        ) {
            Ok((200, text)) => break serde_json::from_str::<Value>(&text).unwrap(),
            Ok((status, text)) => failed(Some((status, &text))),
            Err(_) => failed(None),
        }
        std::thread::sleep(pause);
    };
    acknowledge(request, &answer, acked);
    answer
}

/// Checks a 200 answer to `request` (every invalid line refused by index, every valid one
/// not) and records the valid lines as acknowledged.
pub fn acknowledge(
    request: &[Line],
    answer: &Value,
    acked: &std::sync::Mutex<std::collections::BTreeSet<String>>,
) {
    let refused: std::collections::BTreeSet<u64> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    let count = |k: &str| answer[k].as_u64().unwrap() as usize;
    let invalid = request.iter().filter(|l| !l.valid).count();
    assert_eq!(
        count("accepted") + count("duplicates") + count("rejected"),
        request.len(),
        "every event of a request is accepted, a duplicate or rejected, once: {answer}"
    );
    assert_eq!(
        count("rejected"),
        invalid,
        "exactly the invalid events are rejected: {answer}"
    );
    let mut acked = acked.lock().unwrap();
    for (i, line) in request.iter().enumerate() {
        assert_eq!(
            !refused.contains(&(i as u64)),
            line.valid,
            "event {i} ({}) answered wrongly: {answer}",
            line.json
        );
        if line.valid {
            acked.insert(line.json.clone());
        }
    }
}

fn ts(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// The events of `sessions` sessions, all between 46 hours and 20 minutes before the clock
/// start, so that no retention horizon moves under them while the test runs.
pub fn generate(rng: &mut Rng, sessions: u64, tag: &str) -> Vec<Line> {
    let now = clock_start().as_millisecond();
    let mut out = Vec::new();
    for s in 0..sessions {
        let group = rng.pick(&GROUPS);
        let channel = rng.pick(&["omIVR", "chat"]);
        let region = rng.pick(&["us1", "eu1"]);
        let test = rng.chance(10);
        let session = format!("{tag}-s{s}");
        let start = now - 46 * 3_600_000 + rng.below(45 * 3_600_000) as i64;
        let mut n = 0;
        let mut push = |out: &mut Vec<Line>, mut v: Value, valid: bool| {
            n += 1;
            let base = json!({
                "id": format!("{tag}-{s}-{n}"),
                "group": group,
                "session_id": session,
                "channel": channel,
                "region": region,
                "test": test,
            });
            for (k, x) in base.as_object().unwrap() {
                v.as_object_mut().unwrap().entry(k).or_insert(x.clone());
            }
            out.push(Line {
                json: v.to_string(),
                valid,
            });
        };
        push(
            &mut out,
            json!({"type": "session_start", "time": ts(start)}),
            true,
        );
        let mut t = start + rng.below(5_000) as i64;
        if rng.chance(50) {
            push(
                &mut out,
                json!({"type": "dialog_start", "time": ts(t)}),
                true,
            );
        }
        let flow = rng.pick(&["banking", "cards", "loans", "support"]);
        let locale = rng.pick(&["en-US", "el-GR", "de-DE"]);
        for _ in 0..rng.below(5) {
            let started = t;
            t += rng.below(240_000) as i64 + 1;
            if rng.chance(30) {
                push(
                    &mut out,
                    json!({"type": "miniapp_start", "time": ts(started)}),
                    true,
                );
            }
            let name = rng.pick(&["Menu", "YesNo", "Account", "Amount", "Date", "Transfer"]);
            let result = rng.pick(&["success", "fail", "hangup", "dtmf_escape", "error", "other"]);
            push(
                &mut out,
                json!({
                    "type": "miniapp_end", "time": ts(t), "started_at": ts(started),
                    "miniapp_name": name, "miniapp_id": format!("{name}-id"),
                    "miniapp_type": rng.pick(&["Intent", "Dtmf"]), "locale": locale,
                    "flow_name": flow, "result": result,
                    "fail_reason": if result == "fail" { rng.pick(&["", "timeout", "no_match"]) } else { "" },
                    "agent_requests": rng.below(3), "no_inputs": rng.below(3),
                    "no_matches": rng.below(4), "system_errors": u64::from(rng.chance(5)),
                    "critical_errors": u64::from(rng.chance(3)),
                }),
                true,
            );
        }
        t += rng.below(60_000) as i64;
        push(
            &mut out,
            json!({
                "type": "dialog_end", "time": ts(t), "started_at": ts(start),
                "flow_name": flow, "flow_id": format!("{flow}-id"), "locale": locale,
                "root": !rng.chance(10),
                "outcome": rng.pick(&["transferred", "terminated", "error", "other"]),
                "agent_requests": rng.below(2), "no_inputs": rng.below(3),
                "no_matches": rng.below(3), "system_errors": u64::from(rng.chance(5)),
                "critical_errors": u64::from(rng.chance(3)),
            }),
            true,
        );
        if rng.chance(3) {
            // Invalid: a negative count. Rejected with a 200; never counted, never retried.
            push(
                &mut out,
                json!({"type": "miniapp_end", "time": ts(t), "started_at": ts(start),
                       "miniapp_name": "Bad", "miniapp_id": "b", "miniapp_type": "Intent",
                       "locale": locale, "result": "success", "no_inputs": -1}),
                false,
            );
        }
        push(
            &mut out,
            json!({"type": "session_end", "time": ts(t + 1_000), "started_at": ts(start)}),
            true,
        );
    }
    out
}

/// Compares the server's answer to every query of [`all_queries`] with a recomputation over
/// `lines` (the valid events that must be counted), then its batch sessions with a count by
/// hand ([`batch_sessions_by_hand`]): the recomputation proves nothing was lost or doubled, the
/// count by hand that the numbers are right. The number of queries compared, or the first
/// difference.
pub fn compare_all(proc: &Proc, token: &str, lines: &[&str]) -> Result<usize, String> {
    let queries = query_all(proc, token, lines.iter().copied(), |c| {
        if c.status == 200 && c.got == c.want {
            return Ok(());
        }
        let (lost, extra) = discrepancy(&c.want, &c.got, &[]);
        Err(format!(
            "{} {}: status {}, {lost} missing and {extra} extra over all points\n  want {}\n  got  {}",
            c.endpoint.path(),
            c.body,
            c.status,
            head(&c.want, 400),
            head(&c.got, 400)
        ))
    })?;
    compare_batch_sessions_by_hand(proc, token, lines)?;
    Ok(queries + GROUPS.len())
}

/// One query of [`all_queries`]: the server's answer beside the one a recomputation expects.
pub struct Compared<'a> {
    pub endpoint: Endpoint,
    pub body: &'a Value,
    pub status: u16,
    pub want: String,
    pub got: String,
}

/// Posts every query of [`all_queries`] and hands `check` each answer beside the answer a
/// recomputation over `lines` (the valid events that must be counted) gives. Stops at the first
/// error, of the transport or of `check`; else the number of queries.
pub fn query_all<'a>(
    proc: &Proc,
    token: &str,
    lines: impl IntoIterator<Item = &'a str>,
    mut check: impl FnMut(Compared) -> Result<(), String>,
) -> Result<usize, String> {
    let rollups = recompute(&parse_events(lines));
    let queries = all_queries(&GROUPS);
    for (endpoint, body) in &queries {
        let want = expected_answer(&rollups, *endpoint, body);
        let url = format!("{}{}", proc.base_url, endpoint.path());
        let (status, got) = post(
            &url,
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
        )
        .map_err(|e| format!("{}: {e}", endpoint.path()))?;
        let endpoint = *endpoint;
        check(Compared {
            endpoint,
            body,
            status,
            want,
            got,
        })?;
    }
    Ok(queries.len())
}

/// At most the first `max_bytes` of an answer, for a message that must stay readable.
pub fn head(text: &str, max_bytes: usize) -> &str {
    &text[..text.len().min(max_bytes)]
}

/// Per UTC day label, the batch `sessions` and `duration10sec` values.
pub type DayCounts = std::collections::BTreeMap<String, (u64, u64)>;

/// The batch sessions of each group per UTC day, counted by hand from the event lines: each
/// `session_end` is one session on the UTC day of its `started_at`, lasting its `time` minus
/// `started_at`, in 10-second units rounded up. Deliberately naive and independent of the
/// server's code (no rollups, no bucket plan, no answer encoding), so that a mistake the server
/// shares with [`recompute`] still shows.
pub fn batch_sessions_by_hand(lines: &[&str]) -> std::collections::BTreeMap<String, DayCounts> {
    let ms = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    let mut out: std::collections::BTreeMap<String, DayCounts> = Default::default();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] != "session_end" {
            continue;
        }
        let started = v["started_at"].as_str().unwrap();
        // `2024-03-25T14:03:07.123Z`: the UTC date is the first ten characters.
        let day = format!("{} 00:00:00.0", &started[..10]);
        let length_ms = u64::try_from(ms(&v["time"]) - ms(&v["started_at"])).unwrap();
        let counts = out
            .entry(v["group"].as_str().unwrap().to_string())
            .or_default()
            .entry(day)
            .or_default();
        counts.0 += 1;
        counts.1 += length_ms.div_ceil(10_000);
    }
    out
}

/// Compares the server's batch sessions per UTC day with [`batch_sessions_by_hand`].
fn compare_batch_sessions_by_hand(proc: &Proc, token: &str, lines: &[&str]) -> Result<(), String> {
    let want = batch_sessions_by_hand(lines);
    for group in GROUPS {
        let body = json!({
            "metrics": ["sessions", "duration10sec"],
            "filters": {},
            "start": "2024/03/20 00:00:00",
            "end": "2024/03/27 12:00:00",
            "group": group,
            "downsampling": "day",
            "drilldown": false,
            "timezone": "UTC",
        });
        let (status, text) = post(
            &format!("{}{}", proc.base_url, Endpoint::V3BatchSessions.path()),
            Some(token),
            "application/json",
            body.to_string().as_bytes(),
        )?;
        if status != 200 {
            return Err(format!(
                "batch sessions of {group}: status {status}: {text}"
            ));
        }
        let answer: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut got = DayCounts::new();
        for series in answer.as_array().unwrap() {
            for (label, n) in series["dps"].as_object().unwrap() {
                let n = n.as_u64().unwrap();
                if n == 0 {
                    continue;
                }
                let counts = got.entry(label.clone()).or_default();
                match series["metric"].as_str().unwrap() {
                    "sessions" => counts.0 += n,
                    "duration10sec" => counts.1 += n,
                    other => return Err(format!("unexpected metric {other}")),
                }
            }
        }
        let want = want.get(group).cloned().unwrap_or_default();
        if got != want {
            return Err(format!(
                "batch sessions of {group} per UTC day, (sessions, duration10sec):\n  counted by hand {want:?}\n  served          {got:?}"
            ));
        }
    }
    Ok(())
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The files of `dir` whose names start with `prefix`, sorted.
pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// `(start, end)` byte offsets of the framed records of a log segment (magic, len, crc,
/// payload), walking headers from the start; stops at the first thing that is not a header.
pub fn record_spans(segment: &[u8]) -> Vec<(usize, usize)> {
    const MAGIC: u32 = 0x9BE1_7AD3;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= segment.len() {
        let word = |i: usize| u32::from_le_bytes(segment[i..i + 4].try_into().unwrap());
        if word(at) != MAGIC {
            break;
        }
        let end = at + 12 + word(at + 4) as usize;
        if end > segment.len() {
            break;
        }
        out.push((at, end));
        at = end;
    }
    out
}
