//! Black-box test harness: runs the real `ocp-metrics serve` binary on a free port over a
//! temporary data directory and talks HTTP to it (after InfluxDB's `TestServer` and zero2prod's
//! `spawn_app`).
//!
//! Every helper returns the status and body for every status: ureq 2 reports 4xx/5xx as
//! `Err(Status)`, which [`TestServer::request`] folds back into a [`Resp`].

#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The admin token every test server runs with (unless started with [`Options::no_admin`]).
pub const ADMIN_TOKEN: &str = "test-admin-0123456789abcdef0123456789";
/// The server clock starts here and advances in real time.
pub const CLOCK_START: &str = "2024-03-27T12:00:00Z";
/// Seconds of `CLOCK_START` since midnight UTC of 2024-03-27.
const CLOCK_START_SECONDS_OF_DAY: u64 = 12 * 3600;
/// How long a started server may take to print its `listening on` line, and to become ready:
/// generous, since up to six test binaries share two cores.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

pub const NDJSON: &str = "application/x-ndjson";
pub const JSON: &str = "application/json";

/// How to start a server: extra flags and whether the admin API is on.
#[derive(Debug, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub admin: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            args: Vec::new(),
            admin: true,
        }
    }
}

impl Options {
    pub fn args(args: &[&str]) -> Options {
        Options {
            args: args.iter().map(|s| s.to_string()).collect(),
            admin: true,
        }
    }

    pub fn no_admin() -> Options {
        Options {
            args: Vec::new(),
            admin: false,
        }
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Lower-case header names.
    pub headers: BTreeMap<String, String>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status, self.text
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Spawns `ocp-metrics serve` on a free port of 127.0.0.1 over `data`, with the server clock
/// starting at [`CLOCK_START`], the extra flags `args`, and the admin API on when `admin_token`
/// is given; the server's stderr goes to `log`. Returns the child and the base URL once the
/// server printed its `listening on` line; it may still be recovering, so callers that need
/// answers wait for `/readyz`. This is the one launcher of the integration tests: `TestServer`
/// (fresh temporary data dir) and the reliability harness (a data dir that outlives restarts)
/// both start the binary here.
pub fn launch(
    data: &Path,
    log: &Path,
    args: &[String],
    admin_token: Option<&str>,
) -> (Child, String) {
    let log_file = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocp-metrics"));
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .args(["--clock-start", CLOCK_START])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    // Every `serve` flag also reads an OCP_METRICS_* variable: none from the environment the
    // tests run in may change the server under test.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OCP_METRICS_") {
            cmd.env_remove(name);
        }
    }
    if let Some(token) = admin_token {
        cmd.env("OCP_METRICS_ADMIN_TOKEN", token);
    }
    let mut child = cmd.spawn().expect("spawn ocp-metrics");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Keep draining stdout for the life of the process so it never sees EPIPE.
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(url) = line.trim().strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_string());
                sent = true;
            }
        }
    });
    match rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(url) => {
            assert!(
                url.starts_with("http://"),
                "listening line has no http URL: {url}"
            );
            (child, url)
        }
        Err(e) => {
            let _ = child.kill();
            let status = child.wait().ok();
            panic!(
                "server did not print `listening on` within {STARTUP_TIMEOUT:?} ({e}); exit {status:?}; log:\n{}",
                tail(log)
            );
        }
    }
}

/// A running `ocp-metrics serve`. Dropping it kills the process.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    data: tempfile::TempDir,
    /// Logs live outside the data dir, so that the "no secret on disk" walk sees only the store.
    logs: tempfile::TempDir,
    base_url: String,
    options: Options,
    /// When the current process was spawned; the server clock is at most
    /// `CLOCK_START + started.elapsed()`.
    started: Instant,
    starts: usize,
    agent: ureq::Agent,
    pub admin_token: String,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> TestServer {
        let data = tempfile::Builder::new()
            .prefix("ocp-metrics-data")
            .tempdir()
            .expect("temp data dir");
        let logs = tempfile::Builder::new()
            .prefix("ocp-metrics-logs")
            .tempdir()
            .expect("temp log dir");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .redirects(0)
            // A fresh connection per request: the server closes a keep-alive connection after
            // an error answer to a request whose body it did not read (see
            // `api::connection_reusable_after_error_answer`), and ureq 2 does not retry a POST
            // on a stale pooled connection. Tests other than that one should not trip on it.
            .max_idle_connections(0)
            .build();
        let mut server = TestServer {
            child: None,
            data,
            logs,
            base_url: String::new(),
            options,
            started: Instant::now(),
            starts: 0,
            agent,
            admin_token: ADMIN_TOKEN.to_string(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn while a child runs");
        self.starts += 1;
        let log_path = self.logs.path().join(format!("server-{}.log", self.starts));
        let admin = self.options.admin.then_some(self.admin_token.as_str());
        self.started = Instant::now();
        let (child, url) = launch(self.data.path(), &log_path, &self.options.args, admin);
        self.base_url = url;
        self.child = Some(child);
        // Requests made while the store recovers wait only briefly before a 503; on a loaded
        // machine recovery can take longer, so every start waits for readiness.
        self.wait_ready();
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `host:port`, for tests that speak raw TCP.
    pub fn addr(&self) -> &str {
        self.base_url.trim_start_matches("http://")
    }

    /// A field of the server's `/proc/PID/status` in KiB, such as `VmRSS` (resident now) or
    /// `VmHWM` (the peak resident size so far).
    pub fn proc_status_kib(&self, field: &str) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}:\n{status}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// An upper bound of the server clock (the server starts its clock after we spawn it).
    pub fn server_now_upper_bound(&self) -> Duration {
        Duration::from_secs(CLOCK_START_SECONDS_OF_DAY) + self.started.elapsed()
    }

    /// `2024-03-27THH:MM:SS.mmmZ` for `t` since midnight UTC of 2024-03-27.
    pub fn rfc3339(t: Duration) -> String {
        let s = t.as_secs();
        format!(
            "2024-03-27T{:02}:{:02}:{:02}.{:03}Z",
            s / 3600,
            s / 60 % 60,
            s % 60,
            t.subsec_millis()
        )
    }

    /// The server clock as seconds since midnight UTC of 2024-03-27, read from the catalog
    /// (`GET /api/v1/catalog`, needs a `metrics:read` token); the spawn-time upper bound when
    /// the catalog is unavailable.
    pub fn server_now(&self, token: &str) -> Duration {
        let auth = format!("Bearer {token}");
        let r = self.request("GET", "/api/v1/catalog", &[("Authorization", &auth)], None);
        let now = (r.status == 200)
            .then(|| r.json()["now"].as_str().map(String::from))
            .flatten();
        let parsed = now.as_deref().and_then(|n| {
            let hms = n.strip_prefix("2024-03-27T")?.strip_suffix('Z')?;
            let (h, rest) = hms.split_once(':')?;
            let (m, sec) = rest.split_once(':')?;
            let secs = h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
            Some(Duration::from_secs(secs) + Duration::from_secs_f64(sec.parse::<f64>().ok()?))
        });
        parsed.unwrap_or_else(|| self.server_now_upper_bound())
    }

    /// SIGKILL (std's `Child::kill` is SIGKILL on unix) and reap.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server is running");
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }

    /// Starts the server again on the same data dir with the same flags (a new port).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.spawn();
    }

    /// SIGTERM and wait (at most 20 s); asserts exit status 0.
    pub fn stop_gracefully(&mut self) {
        self.stop_with_signal("TERM");
    }

    /// `kill -<signal>` (e.g. `TERM`, `INT`) and wait (at most 20 s); asserts exit status 0.
    pub fn stop_with_signal(&mut self, signal: &str) {
        let mut child = self.child.take().expect("server is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within 20 s of SIG{signal}; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            exit.code(),
            Some(0),
            "exit status after SIG{signal}: {exit:?}; log:\n{}",
            self.log_tail()
        );
    }

    pub fn log_tail(&self) -> String {
        tail(&self.logs.path().join(format!("server-{}.log", self.starts)))
    }

    // ---------------------------------------------------------------- HTTP

    /// Any request; every status comes back as a [`Resp`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: transport error {e}; server log:\n{}",
                    self.log_tail()
                )
            })
    }

    /// Any request; `Err` only for a transport error (no HTTP answer).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, String> {
        let mut req = self.agent.request(method, &self.url(path));
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
            Err(e) => return Err(e.to_string()),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = resp.header(&n).unwrap_or("").to_string();
                (n.to_ascii_lowercase(), v)
            })
            .collect();
        let mut text = String::new();
        resp.into_reader()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading the body: {e}"))?;
        Ok(Resp {
            status,
            headers,
            text,
        })
    }

    pub fn post_json(&self, path: &str, bearer: Option<&str>, body: &Value) -> Resp {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", JSON)];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        self.request("POST", path, &headers, Some(body.to_string().as_bytes()))
    }

    fn admin_post(&self, path: &str, body: &Value) -> Resp {
        let r = self.post_json(path, Some(&self.admin_token), body);
        assert_eq!(r.status, 201, "POST {path}: {}", r.text);
        r
    }

    /// `POST /admin/v1/tokens`; the whole answer (`id`, `token`, ...).
    pub fn create_token_full(
        &self,
        groups: &[&str],
        scopes: &[&str],
        expires_at: Option<&str>,
    ) -> Value {
        let body = json!({"name": "test token", "groups": groups, "scopes": scopes, "expires_at": expires_at});
        self.admin_post("/admin/v1/tokens", &body).json()
    }

    /// A personal access token that never expires.
    pub fn create_token(&self, groups: &[&str], scopes: &[&str]) -> String {
        let v = self.create_token_full(groups, scopes, None);
        v["token"].as_str().expect("token in answer").to_string()
    }

    /// A token for `acme` with both scopes.
    pub fn acme_token(&self) -> String {
        self.create_token(&["acme"], &["metrics:read", "events:write"])
    }

    /// `POST /admin/v1/clients` -> `(client_id, client_secret)`.
    pub fn create_client(&self, groups: &[&str], scopes: &[&str]) -> (String, String) {
        let body = json!({"name": "test client", "groups": groups, "scopes": scopes});
        let v = self.admin_post("/admin/v1/clients", &body).json();
        (
            v["client_id"].as_str().expect("client_id").to_string(),
            v["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_string(),
        )
    }

    /// `POST /oauth2/token` with a form body and optional HTTP Basic credentials.
    pub fn oauth_token(&self, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Resp {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let auth = basic.map(|(id, secret)| {
            format!(
                "Basic {}",
                base64(format!("{}:{}", urlencode(id), urlencode(secret)).as_bytes())
            )
        });
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        self.request("POST", "/oauth2/token", &headers, Some(body.as_bytes()))
    }

    /// NDJSON ingest.
    pub fn ingest(&self, token: &str, ndjson: &str) -> (u16, Value) {
        let r = self.ingest_with(Some(token), NDJSON, None, ndjson.as_bytes());
        (r.status, r.json())
    }

    /// Ingest that must succeed with nothing rejected; returns the answer.
    pub fn ingest_ok(&self, token: &str, events: &[Value]) -> Value {
        let (status, body) = self.ingest(token, &ndjson(events));
        assert_eq!(status, 200, "ingest: {body}");
        assert_eq!(body["rejected"], 0, "ingest rejected events: {body}");
        body
    }

    /// NDJSON ingest; `Err` for a transport error (e.g. the server was killed meanwhile).
    pub fn try_ingest(&self, token: &str, ndjson: &str) -> Result<(u16, Value), String> {
        let auth = format!("Bearer {token}");
        let headers = [("Content-Type", NDJSON), ("Authorization", auth.as_str())];
        let r = self.try_request(
            "POST",
            "/ingest/v1/events",
            &headers,
            Some(ndjson.as_bytes()),
        )?;
        Ok((r.status, r.json()))
    }

    pub fn ingest_with(
        &self,
        token: Option<&str>,
        content_type: &str,
        encoding: Option<&str>,
        body: &[u8],
    ) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        if let Some(e) = encoding {
            headers.push(("Content-Encoding", e));
        }
        self.request("POST", "/ingest/v1/events", &headers, Some(body))
    }

    /// A query: `(status, headers, body)`.
    pub fn query(
        &self,
        token: &str,
        path: &str,
        body: Value,
    ) -> (u16, BTreeMap<String, String>, Value) {
        let r = self.post_json(path, Some(token), &body);
        let v = r.json();
        (r.status, r.headers, v)
    }

    /// A query that must answer 200; checks the answer's shape and returns it with its dps in
    /// the order the server wrote them.
    pub fn query_ok(&self, token: &str, path: &str, body: Value) -> Answer {
        let r = self.post_json(path, Some(token), &body);
        assert_eq!(r.status, 200, "POST {path} {body}: {}", r.text);
        Answer::parse(&r.text)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- server log (last run) ----\n{}", self.log_tail());
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(6000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

// -------------------------------------------------------------------- answers

/// One series of an answer, dps in the server's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: String,
    pub tags: BTreeMap<String, String>,
    pub dps: Vec<(String, i64)>,
}

/// A checked query answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub series: Vec<Series>,
}

impl Answer {
    /// Parses an answer and checks the shape of docs/api.md section 5.4: an array of
    /// `{"metric", "tags", "dps"}`, tags all strings, `dps` keys `yyyy-MM-dd HH:mm:ss.S` in
    /// strictly ascending order, values integers >= 0, every series with the same labels.
    ///
    /// serde_json (without `preserve_order`) sorts object keys, so the order is read from the
    /// raw text.
    pub fn parse(text: &str) -> Answer {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text}"));
        let arr = v
            .as_array()
            .unwrap_or_else(|| panic!("answer is not an array: {text}"));
        let ordered = dps_in_text_order(text);
        assert_eq!(ordered.len(), arr.len(), "dps objects vs series: {text}");
        let mut series = Vec::new();
        for (s, dps) in arr.iter().zip(ordered) {
            let obj = s
                .as_object()
                .unwrap_or_else(|| panic!("series is not an object: {s}"));
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["dps", "metric", "tags"], "series fields: {s}");
            let metric = s["metric"]
                .as_str()
                .unwrap_or_else(|| panic!("metric not a string: {s}"))
                .to_string();
            let tags = s["tags"]
                .as_object()
                .unwrap_or_else(|| panic!("tags not an object: {s}"))
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .unwrap_or_else(|| panic!("tag {k} not a string: {s}"))
                            .to_string(),
                    )
                })
                .collect();
            let map = s["dps"]
                .as_object()
                .unwrap_or_else(|| panic!("dps not an object: {s}"));
            assert_eq!(map.len(), dps.len(), "dps keys: {s}");
            for (label, value) in &dps {
                assert!(
                    is_label(label),
                    "bad label {label:?} (want yyyy-MM-dd HH:mm:ss.S)"
                );
                let n = &map[label];
                assert!(
                    n.is_u64(),
                    "value of {label} is not a non-negative integer: {n}"
                );
                assert_eq!(n.as_i64(), Some(*value));
            }
            for w in dps.windows(2) {
                assert!(
                    w[0].0 < w[1].0,
                    "labels not ascending: {:?} then {:?}",
                    w[0].0,
                    w[1].0
                );
            }
            series.push(Series { metric, tags, dps });
        }
        if let Some(first) = series.first() {
            for s in &series {
                let a: Vec<&String> = s.dps.iter().map(|(l, _)| l).collect();
                let b: Vec<&String> = first.dps.iter().map(|(l, _)| l).collect();
                assert_eq!(a, b, "series have different labels");
            }
        }
        Answer { series }
    }

    pub fn labels(&self) -> Vec<String> {
        self.series
            .first()
            .map(|s| s.dps.iter().map(|(l, _)| l.clone()).collect())
            .unwrap_or_default()
    }

    pub fn metrics(&self) -> Vec<&str> {
        self.series.iter().map(|s| s.metric.as_str()).collect()
    }

    /// The only series of `metric` (panics unless exactly one).
    pub fn one(&self, metric: &str) -> &Series {
        let found: Vec<&Series> = self.series.iter().filter(|s| s.metric == metric).collect();
        assert_eq!(found.len(), 1, "series of {metric}: {:#?}", self.series);
        found[0]
    }

    /// Value of the only series of `metric` at the bucket whose label starts with `label`.
    pub fn at(&self, metric: &str, label: &str) -> i64 {
        self.one(metric).at(label)
    }

    pub fn total(&self, metric: &str) -> i64 {
        self.one(metric).dps.iter().map(|(_, v)| v).sum()
    }

    /// One line per series: `metric {k=v,...}: label=value ...`, zero buckets left out (`-` when
    /// all are zero). Label lists are checked separately.
    pub fn sparse(&self) -> String {
        let mut out = String::new();
        for s in &self.series {
            let tags = s
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let nonzero: Vec<String> = s
                .dps
                .iter()
                .filter(|(_, v)| *v != 0)
                .map(|(l, v)| format!("{}={v}", short(l)))
                .collect();
            let values = if nonzero.is_empty() {
                "-".to_string()
            } else {
                nonzero.join(" ")
            };
            out.push_str(&format!("{} {{{tags}}}: {values}\n", s.metric));
        }
        out
    }
}

impl Series {
    pub fn at(&self, label: &str) -> i64 {
        let found: Vec<i64> = self
            .dps
            .iter()
            .filter(|(l, _)| l.starts_with(label))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(found.len(), 1, "label {label} in {:?}", self.dps);
        found[0]
    }
}

/// `2024-03-27 10:05:00.0` -> `03-27 10:05` for labels on the minute, else the label.
fn short(label: &str) -> String {
    match label.get(5..16) {
        Some(md_hm) if label.ends_with(":00.0") => md_hm.to_string(),
        _ => label.to_string(),
    }
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 21
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// The `dps` objects of an answer as `(label, value)` lists in text order. Labels hold no
/// `,`, `{` or `}`, so a plain scan suffices.
fn dps_in_text_order(text: &str) -> Vec<Vec<(String, i64)>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\"dps\"") {
        rest = &rest[i + 5..];
        let open = rest.find('{').expect("dps object");
        let close = rest.find('}').expect("dps end");
        let inner = rest[open + 1..close].trim();
        let mut dps = Vec::new();
        if !inner.is_empty() {
            for pair in inner.split(',') {
                let (k, v) = pair
                    .rsplit_once(':')
                    .unwrap_or_else(|| panic!("dps entry {pair:?}"));
                let k = k.trim().trim_matches('"').to_string();
                let v = v
                    .trim()
                    .parse::<i64>()
                    .unwrap_or_else(|_| panic!("value {v:?} of {k} is not an integer"));
                dps.push((k, v));
            }
        }
        out.push(dps);
        rest = &rest[close..];
    }
    out
}

/// Labels `first, first+step, ...` (`count` of them) of 2024-03-27 UTC-clock minutes, e.g.
/// `labels_5min("10:00", 24)`.
pub fn labels_every(first_hm: &str, step_minutes: u32, count: u32) -> Vec<String> {
    let (h, m) = first_hm.split_once(':').unwrap();
    let start: u32 = h.parse::<u32>().unwrap() * 60 + m.parse::<u32>().unwrap();
    (0..count)
        .map(|i| {
            let t = start + i * step_minutes;
            format!("2024-03-27 {:02}:{:02}:00.0", t / 60, t % 60)
        })
        .collect()
}

// -------------------------------------------------------------------- events

/// `2024-03-27T{hms}Z`; `hms` is `HH:MM` or `HH:MM:SS`.
pub fn t(hms: &str) -> String {
    if hms.len() == 5 {
        format!("2024-03-27T{hms}:00Z")
    } else {
        format!("2024-03-27T{hms}Z")
    }
}

/// A base event of group `acme`, session `s1`, channel `omIVR`, region `us1`.
pub fn ev(kind: &str, id: &str, time: &str) -> Value {
    json!({
        "id": id, "type": kind, "time": t(time), "group": "acme",
        "session_id": "s1", "channel": "omIVR", "region": "us1",
    })
}

/// `base` with the fields of `extra` set (a `null` removes the field).
pub fn with(mut base: Value, extra: Value) -> Value {
    let obj = base.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    base
}

pub fn session_end(id: &str, started: &str, time: &str) -> Value {
    with(
        ev("session_end", id, time),
        json!({"started_at": t(started)}),
    )
}

pub fn miniapp_end(id: &str, started: &str, time: &str, name: &str) -> Value {
    with(
        ev("miniapp_end", id, time),
        json!({
            "started_at": t(started), "miniapp_name": name, "miniapp_id": format!("{name}-id"),
            "miniapp_type": "Ask", "locale": "en-US", "flow_name": "Banking", "result": "success",
        }),
    )
}

pub fn dialog_end(id: &str, started: &str, time: &str, outcome: &str) -> Value {
    with(
        ev("dialog_end", id, time),
        json!({
            "started_at": t(started), "flow_name": "Banking", "flow_id": "banking-1",
            "locale": "en-US", "outcome": outcome,
        }),
    )
}

pub fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

// -------------------------------------------------------------------- queries

pub const RT_DIALOGS_V3: &str = "/metrics-api/v3/realtime/metrics/dialogs";
pub const RT_SESSIONS_V3: &str = "/metrics-api/v3/realtime/metrics/sessions";
pub const RT_MINIAPPS_V3: &str = "/metrics-api/v3/realtime/metrics/miniapps";
pub const BATCH_DIALOGS_V3: &str = "/metrics-api/v3/batch/metrics/dialogs";
pub const BATCH_SESSIONS_V3: &str = "/metrics-api/v3/batch/metrics/sessions";
pub const BATCH_MINIAPPS_V3: &str = "/metrics-api/v3/batch/metrics/miniapps";
pub const RT_DIALOGS_V2: &str = "/metrics-api/v2/realtime/metrics/dialogs";
pub const RT_SESSIONS_V2: &str = "/metrics-api/v2/realtime/metrics/sessions";
pub const BATCH_DIALOGS_V2: &str = "/metrics-api/v2/batch/metrics/dialogs";
pub const BATCH_SESSIONS_V2: &str = "/metrics-api/v2/batch/metrics/sessions";
pub const BATCH_MINIAPPS_V2: &str = "/metrics-api/v2/batch/metrics/miniapps";

/// Every query endpoint with every metric it serves (docs/api.md section 6).
pub const ENDPOINTS: &[(&str, &[&str])] = &[
    (
        RT_DIALOGS_V3,
        &[
            "dialogs_completed",
            "dialogs_transferred",
            "dialogs_terminated",
            "root_system_errors",
            "root_agent_requests",
            "root_critical_error",
            "root_no_inputs",
            "root_no_matches",
        ],
    ),
    (RT_SESSIONS_V3, &["session.initiated"]),
    (
        RT_MINIAPPS_V3,
        &[
            "miniapps_invocations",
            "miniapps_invocations_successful",
            "miniapps_system_errors",
            "miniapps_critical_error",
            "miniapps_agent_requests",
            "miniapps_no_inputs",
            "miniapps_no_matches",
        ],
    ),
    (
        BATCH_DIALOGS_V3,
        &["dialogs", "error", "transferred", "terminated", "other"],
    ),
    (
        BATCH_SESSIONS_V3,
        &["sessions", "duration10sec", "invocations"],
    ),
    (
        BATCH_MINIAPPS_V3,
        &[
            "totalinvocations",
            "errortasks",
            "successfultasks",
            "failedtasks",
            "hangeduptasks",
            "dtmfescapekeytasks",
            "othertasks",
        ],
    ),
    (
        RT_DIALOGS_V2,
        &[
            "miniapps_invocations",
            "miniapps_system_errors",
            "miniapps_critical_error",
            "miniapps_invocations_successful",
            "no_inputs",
            "no_matches",
            "dialogs_completed",
            "dialogs_transferred",
            "dialogs_terminated",
        ],
    ),
    (RT_SESSIONS_V2, &["session.initiated"]),
    (
        BATCH_DIALOGS_V2,
        &["dialogs", "error", "transferred", "terminated", "other"],
    ),
    (
        BATCH_SESSIONS_V2,
        &["sessions", "duration10sec", "invocations"],
    ),
    (
        BATCH_MINIAPPS_V2,
        &[
            "totalinvocations",
            "errortasks",
            "successfultasks",
            "failedtasks",
            "hangeduptasks",
            "dtmfescapekeytasks",
            "othertasks",
        ],
    ),
];

pub fn is_realtime(path: &str) -> bool {
    path.contains("/realtime/")
}

/// A query body for group `acme` over 2024/03/27 `start`..`end` (`HH:mm`) with no filters.
pub fn q(metrics: &[&str], start: &str, end: &str, downsampling: &str) -> Value {
    json!({
        "metrics": metrics, "filters": {}, "group": "acme", "downsampling": downsampling,
        "start": format!("2024/03/27 {start}:00"), "end": format!("2024/03/27 {end}:00"),
    })
}

/// Asserts an error answer: the status and a JSON body `{"message": non-empty string}`.
pub fn assert_error(r: &Resp, status: u16) -> String {
    assert_eq!(
        r.status, status,
        "want {status}, got {}: {}",
        r.status, r.text
    );
    let v = r.json();
    let msg = v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error body without a string `message`: {}", r.text));
    assert!(!msg.trim().is_empty(), "empty error message: {}", r.text);
    msg.to_string()
}

// -------------------------------------------------------------------- encodings

pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out
}

// -------------------------------------------------------------------- start-up refusals

/// How a `serve` that should refuse to start ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit code; `None` when the server was still running at the deadline (and killed).
    pub code: Option<i32>,
    pub stderr: String,
}

/// Runs `ocp-metrics serve --listen 127.0.0.1:0` over a fresh data dir with `args`, the
/// `OCP_METRICS_*` token variables removed and then `env` set, and waits up to `timeout` for it
/// to exit.
pub fn serve_until_exit(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Exit {
    let data = tempfile::tempdir().expect("temp data dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocp-metrics"));
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .args(args)
        .env_remove("OCP_METRICS_ADMIN_TOKEN")
        .env_remove("OCP_METRICS_METRICS_TOKEN")
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ocp-metrics");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exit {
        code,
        stderr: reader.join().unwrap_or_default(),
    }
}

/// Every directory under `dir` (not `dir` itself), recursively.
pub fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                out.push(p.clone());
                stack.push(p);
            }
        }
    }
    out
}

impl TestServer {
    /// The whole log of the current (or last) run of the server.
    pub fn log_text(&self) -> String {
        let path = self.logs.path().join(format!("server-{}.log", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Waits (at most 20 s) until `/readyz` answers 200: the store has recovered.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let r = self.request("GET", "/readyz", &[], None);
            if r.status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready within {STARTUP_TIMEOUT:?}: {}",
                r.text
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
