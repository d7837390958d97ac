//! The server's life cycle and its server-level limits, in process: it binds before the store
//! recovers (`/healthz` 200, `/readyz` 503, everything else 503 with Retry-After), becomes ready,
//! reports itself on `/metrics`, makes room for a new connection by closing an idle one, refuses
//! connections past its limit with a 503 when every slot serves a request, and refuses
//! events past the state bounds per event, naming the dimension.

use ocp_metrics_auth::{ClientName, GroupGrant, OperatorToken, ScopeSet};
use ocp_metrics_core::{Clock, ManualClock};
use ocp_metrics_server::{BackendOpener, Limits, Server, ServerConfig};
use ocp_metrics_store::{EngineConfig, StateLimits};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const NOW: &str = "2024-03-27T12:00:00Z";
const METRICS_TOKEN: &str = "lifecycle-metrics-token-0123456789abcdef";
/// The connection limit of the connection tests: small, so that a test can fill every slot.
const CONNECTIONS_MAX: usize = 2;
/// How long a raw connection waits for an answer the server sends at once.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

struct Running {
    rt: tokio::runtime::Runtime,
    base: String,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(limits: Limits, engine: EngineConfig, hold: Option<Arc<Notify>>) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW.parse().unwrap()));
        let config = ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            admin_token: None,
            metrics_token: Some(OperatorToken::parse("metrics token", METRICS_TOKEN).unwrap()),
            clock: clock.clone(),
            limits,
            registry: ocp_metrics_server::open_file_registry(
                dir.path(),
                Default::default(),
                clock.clone(),
            )
            .unwrap()
            .into(),
            backend: BackendOpener(ocp_metrics_store::open_embedded(
                dir.path().to_path_buf(),
                engine,
                clock,
            )),
            recovery_hold: hold,
        };
        let server = rt.block_on(Server::bind(config)).unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let (_, token) = rt
            .block_on(server.app().auth().unwrap().create_token(
                ClientName::parse("test").unwrap(),
                GroupGrant::parse(&["*"]).unwrap(),
                ScopeSet::parse(&["metrics:read", "events:write"]).unwrap(),
                None,
            ))
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = rt.spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running {
            rt,
            base,
            token,
            stop: Some(stop),
            done: Some(done),
            _dir: dir,
        }
    }

    /// A server whose connection limit is `connections_max`, ready to serve.
    fn ready_with_connections_max(connections_max: usize) -> Running {
        let limits = Limits {
            connections_max,
            ..Limits::default()
        };
        let s = Running::start(limits, EngineConfig::default(), None);
        s.wait_ready();
        s
    }

    /// The `host:port` to open raw connections to.
    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    fn get(&self, path: &str) -> (u16, Option<String>, String) {
        answer(ureq::get(&format!("{}{path}", self.base)).call())
    }

    fn ingest(&self, ndjson: &str) -> (u16, Option<String>, String) {
        answer(
            ureq::post(&format!("{}/ingest/v1/events", self.base))
                .set("Authorization", &format!("Bearer {}", self.token))
                .set("Content-Type", "application/x-ndjson")
                .send_string(ndjson),
        )
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get("/readyz").0 != 200 {
            assert!(Instant::now() < deadline, "never ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, _, text) = answer(
            ureq::get(&format!("{}/metrics", self.base))
                .set("Authorization", &format!("Bearer {METRICS_TOKEN}"))
                .call(),
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
            .parse()
            .unwrap()
    }

    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let done = self.done.take().unwrap();
        self.rt.block_on(done).unwrap().unwrap();
    }
}

/// Opens a raw connection whose reads give up after `read_timeout`.
fn connect(addr: &str, read_timeout: Duration) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(read_timeout)).unwrap();
    c
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Option<String>, String) {
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport: {e}"),
    };
    let retry = r.header("retry-after").map(String::from);
    (r.status(), retry, r.into_string().unwrap())
}

fn event(id: &str, name: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"miniapp_end","time":"2024-03-27T11:00:00Z","started_at":"2024-03-27T10:59:00Z","group":"acme","session_id":"s-{id}","channel":"chat","region":"eu1","miniapp_name":"{name}","miniapp_id":"m","miniapp_type":"Intent","locale":"en-US","result":"success"}}"#
    )
}

#[test]
fn while_recovering_healthz_is_up_readyz_and_the_api_answer_503_then_all_is_served() {
    let hold = Arc::new(Notify::new());
    let limits = Limits {
        recovery_request_wait_ms: 0,
        ..Limits::default()
    };
    let s = Running::start(limits, EngineConfig::default(), Some(hold.clone()));
    assert_eq!(s.get("/healthz").0, 200);
    let (status, retry, body) = s.get("/readyz");
    assert_eq!((status, retry.as_deref()), (503, Some("2")), "{body}");
    assert!(body.contains("\"status\":\"recovering\""), "{body}");
    for (status, retry, body) in [s.ingest(&event("1", "Menu")), s.get("/api/v1/catalog")] {
        assert_eq!((status, retry.as_deref()), (503, Some("2")), "{body}");
        assert!(body.starts_with("{\"message\":\"recovering: "), "{body}");
    }
    assert_eq!(s.metric("ocp_metrics_ready"), 0.0);

    hold.notify_one();
    s.wait_ready();
    assert_eq!(s.metric("ocp_metrics_ready"), 1.0);
    let (status, _, body) = s.ingest(&event("1", "Menu"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.metric("ocp_metrics_ingest_events_accepted_total"), 1.0);
    assert_eq!(
        s.metric("ocp_metrics_recovery_corrupt_records_skipped"),
        0.0
    );
    s.stop();
}

#[test]
fn a_request_during_a_short_recovery_waits_for_it_instead_of_failing() {
    let hold = Arc::new(Notify::new());
    let s = Running::start(
        Limits::default(),
        EngineConfig::default(),
        Some(hold.clone()),
    );
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        hold.notify_one();
    });
    let (status, _, body) = s.ingest(&event("1", "Menu"));
    assert_eq!(status, 200, "{body}");
    release.join().unwrap();
    s.stop();
}

/// Opens a connection and starts an ingest whose body never comes: the server answers
/// `100 Continue` once the handler, past authentication, waits for the body, so the
/// connection then serves a request in progress.
fn request_in_progress(addr: &str, token: &str) -> std::net::TcpStream {
    let mut c = connect(addr, Duration::from_secs(10));
    let head = format!(
        "POST /ingest/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    c
}

#[test]
fn an_idle_connection_makes_room_for_a_new_one_and_busy_ones_are_never_evicted() {
    let s = Running::ready_with_connections_max(CONNECTIONS_MAX);
    let addr = s.addr();
    // Two idle keep-alive connections hold both slots; a new connection is served anyway, and
    // the one idle the longest is closed by the server.
    let mut idle: Vec<std::net::TcpStream> = (0..CONNECTIONS_MAX)
        .map(|_| {
            let mut c = connect(&addr, ANSWER_WAIT);
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 512];
            let n = c.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            c
        })
        .collect();
    assert_eq!(s.get("/healthz").0, 200);
    let mut buf = [0u8; 16];
    assert_eq!(
        idle[0].read(&mut buf).unwrap(),
        0,
        "the oldest idle one is closed"
    );
    assert!(s.metric("ocp_metrics_http_connections_open") <= 2.0);
    assert!(s.metric("ocp_metrics_http_connections_evicted_total") >= 1.0);
    drop(idle);
    s.stop();
}

#[test]
fn connections_past_the_limit_are_answered_503_when_every_slot_serves_a_request() {
    let s = Running::ready_with_connections_max(CONNECTIONS_MAX);
    let addr = s.addr();
    let held: Vec<std::net::TcpStream> = (0..CONNECTIONS_MAX)
        .map(|_| request_in_progress(&addr, &s.token))
        .collect();
    let mut third = connect(&addr, ANSWER_WAIT);
    let mut text = String::new();
    third.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    assert!(text.contains("serving requests (its limit)"), "{text}");
    drop(held);
    // Slots come back once the server notices the connections closed (until then a new
    // connection may be refused too).
    let deadline = Instant::now() + Duration::from_secs(5);
    while ureq::get(&format!("{}/healthz", s.base)).call().is_err() {
        assert!(Instant::now() < deadline, "slots never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.metric("ocp_metrics_http_connections_refused_total") >= 1.0);
    s.stop();
}

#[test]
fn events_past_the_dimension_limit_are_rejected_per_event_with_the_request_index() {
    let engine = EngineConfig {
        limits: StateLimits {
            dimension_values_max: 2,
            ..StateLimits::default()
        },
        ..EngineConfig::default()
    };
    let s = Running::start(Limits::default(), engine, None);
    s.wait_ready();
    let body = [
        event("1", "Menu"),
        "{\"not\": \"an event\"}".to_string(),
        event("2", "YesNo"),
        event("3", "Account"),
        event("4", "Menu"),
    ]
    .join("\n");
    let (status, _, text) = s.ingest(&body);
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["accepted"], 3, "{text}");
    assert_eq!(v["rejected"], 2, "{text}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors[0]["index"], 1, "{text}");
    assert_eq!(errors[1]["index"], 3, "{text}");
    let message = errors[1]["message"].as_str().unwrap();
    assert!(
        message.starts_with("`miniapp_name`: group `acme` already has 2 distinct values"),
        "{message}"
    );
    assert!(message.contains("--dimension-values-max"), "{message}");
    assert_eq!(
        s.metric("ocp_metrics_ingest_events_limit_rejected_total"),
        1.0
    );
    s.stop();
}
