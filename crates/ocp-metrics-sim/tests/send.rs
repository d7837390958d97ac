//! The driver against a scripted local HTTP server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use ocp_metrics_sim::send::{LiveOptions, SendError, post_ndjson, run_live_with};
use ocp_metrics_sim::{SimConfig, Simulator};

#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn ndjson(&self) -> String {
        if self.header("content-encoding") == Some("gzip") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(self.body.clone()).unwrap()
        }
    }
}

/// A response: status, extra headers, body.
type Reply = (u16, Vec<(&'static str, String)>, String);

/// Serves `script` replies in order (then 200s counting every line as accepted), recording
/// every request.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        headers,
        body,
    })
}

fn serve(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let recorded = requests.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let recorded = recorded.clone();
            let script = script.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                while let Some(req) = read_request(&mut r) {
                    let lines = req.ndjson().lines().count();
                    recorded.lock().unwrap().push(req);
                    let (status, headers, body) = script.lock().unwrap().next().unwrap_or_else(|| {
                        (200, vec![], format!(r#"{{"accepted":{lines},"duplicates":0,"rejected":0,"errors":[]}}"#))
                    });
                    let mut resp =
                        format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                    for (k, v) in headers {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str("\r\n");
                    resp.push_str(&body);
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server { url, requests }
}

#[test]
fn posts_ndjson_with_bearer_and_gzip_and_parses_the_reply() {
    let server = serve(vec![(
        200,
        vec![],
        r#"{"accepted":1,"duplicates":1,"rejected":1,"errors":[{"index":2,"message":"time: bad timestamp"}]}"#.into(),
    )]);
    let body = b"{\"a\":1}\n{\"a\":1}\n{\"b\":2}\n";
    let reply = post_ndjson(&format!("{}/", server.url), Some("tok"), body, true).unwrap();
    assert_eq!(
        (reply.accepted, reply.duplicates, reply.rejected),
        (1, 1, 1)
    );
    assert_eq!(reply.errors[0].index, 2);
    assert_eq!(reply.errors[0].message, "time: bad timestamp");
    let reqs = server.requests.lock().unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/ingest/v1/events");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer tok"));
    assert_eq!(reqs[0].header("content-type"), Some("application/x-ndjson"));
    assert_eq!(reqs[0].ndjson().as_bytes(), body);
}

#[test]
fn retries_busy_answers_respecting_retry_after() {
    let server = serve(vec![
        (
            429,
            vec![("Retry-After", "0".into())],
            r#"{"message":"slow down"}"#.into(),
        ),
        (503, vec![], r#"{"message":"not ready"}"#.into()),
    ]);
    let started = Instant::now();
    let reply = post_ndjson(&server.url, None, b"{}\n", false).unwrap();
    assert_eq!(reply.accepted, 1);
    assert_eq!(server.requests.lock().unwrap().len(), 3);
    assert!(
        server.requests.lock().unwrap()[0]
            .header("authorization")
            .is_none()
    );
    // Retry-After 0, then one backoff step.
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn client_errors_are_not_retried_and_carry_the_message() {
    let server = serve(vec![(401, vec![], r#"{"message":"token expired"}"#.into())]);
    let err = post_ndjson(&server.url, Some("old"), b"{}\n", false).unwrap_err();
    match err {
        SendError::Status {
            status: 401,
            attempts: 1,
            ref message,
            ..
        } => assert_eq!(message, "token expired"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[test]
fn a_dead_server_is_a_transport_error_after_bounded_attempts() {
    // Bind and drop, so the port refuses connections.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = post_ndjson(&format!("http://127.0.0.1:{port}"), None, b"{}\n", false).unwrap_err();
    assert!(
        matches!(err, SendError::Transport { attempts: 6, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn live_catches_up_from_the_past_in_order_then_stops() {
    let server = serve(vec![]);
    let sim = Simulator::new(SimConfig {
        seed: 4,
        sessions_per_hour_peak: 600.0,
        ..SimConfig::default()
    })
    .unwrap();
    let from = Timestamp::now() - SignedDuration::from_hours(2);
    let stop = Arc::new(AtomicBool::new(false));
    let opts = LiveOptions {
        from: Some(from),
        rate_events_per_sec: None,
        batch_events: 500,
        gzip: true,
    };
    let handle = {
        let (url, sim, stop) = (server.url.clone(), sim.clone(), stop.clone());
        std::thread::spawn(move || run_live_with(&url, Some("t"), &sim, &opts, &stop))
    };
    // Wait for the catch-up (everything emitted up to now) to arrive, then stop.
    let expected: Vec<String> = sim
        .emitted_between(from, Timestamp::now())
        .map(|e| e.json)
        .collect();
    assert!(expected.len() > 500, "{}", expected.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: usize = server
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.ndjson().lines().count())
            .sum();
        if got >= expected.len() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().unwrap().unwrap();
    let got: Vec<String> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.ndjson().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert!(got.len() >= expected.len());
    assert_eq!(
        got[..expected.len()],
        expected[..],
        "sent in emission order, nothing skipped"
    );
    assert_eq!(stats.events_sent as usize, got.len());
    assert_eq!(stats.accepted, stats.events_sent);
    assert!(
        server
            .requests
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.ndjson().lines().count() <= 500)
    );
}

#[test]
fn fixed_rate_is_held_and_never_sends_the_future() {
    let server = serve(vec![]);
    let sim = Simulator::new(SimConfig::for_event_rate(8, 2000.0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = LiveOptions {
        from: Some(Timestamp::now() - SignedDuration::from_mins(10)),
        rate_events_per_sec: Some(1000.0),
        batch_events: 10_000,
        gzip: false,
    };
    let started = Instant::now();
    let handle = {
        let (url, sim, stop) = (server.url.clone(), sim.clone(), stop.clone());
        std::thread::spawn(move || run_live_with(&url, None, &sim, &opts, &stop))
    };
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().unwrap().unwrap();
    let secs = started.elapsed().as_secs_f64();
    // The rate is held (loosely: a busy test machine may lag), and never exceeded.
    assert!(
        stats.events_sent as f64 <= 1000.0 * secs + 200.0,
        "{} in {secs} s",
        stats.events_sent
    );
    assert!(stats.events_sent >= 700, "{}", stats.events_sent);
    assert!(stats.batches >= 5, "batches of ~200 ms: {}", stats.batches);
    assert!(stats.last_emit_at.unwrap() <= Timestamp::now());
}
