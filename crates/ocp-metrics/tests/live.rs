//! Live updates (`GET /api/v1/live`, docs/api.md section 5.6) against the real binary: the
//! first message holds the whole window, an ingested event arrives as the one bucket it changed
//! (a late one too), tenancy and scopes as for queries, the per-token stream limit, the heartbeat
//! and a graceful shutdown with streams open.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::*;

/// The per-token stream limit of the server (`LIVE_STREAMS_PER_TOKEN_MAX`).
const STREAMS_PER_TOKEN_MAX: usize = 8;
/// How long an update may take to arrive: one second of batching plus a loaded machine.
const UPDATE_WAIT: Duration = Duration::from_secs(5);
/// A heartbeat is due after 15 s without a message; this leaves room for a loaded machine.
const HEARTBEAT_WAIT: Duration = Duration::from_secs(25);

/// One server-sent event, or a comment line.
#[derive(Debug)]
enum Sse {
    Event { name: String, data: Value },
    Comment(String),
}

/// An open stream read on a background thread; dropping it closes the connection.
struct Live {
    rx: mpsc::Receiver<Sse>,
    _reader: std::thread::JoinHandle<()>,
}

impl Live {
    /// The next event or comment, if one arrives within `wait`.
    fn next(&self, wait: Duration) -> Option<Sse> {
        self.rx.recv_timeout(wait).ok()
    }

    /// The next named event (skipping comments) within `wait`; panics on none.
    fn event(&self, wait: Duration) -> (String, Value) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(Sse::Event { name, data }) => return (name, data),
                Some(Sse::Comment(_)) => {}
                None => panic!("no event within {wait:?}"),
            }
        }
    }
}

/// Opens `GET /api/v1/live?{query}`: the stream on 200, else the status and body.
fn open(server: &TestServer, token: &str, query: &str) -> Result<Live, (u16, String)> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .build();
    let response = agent
        .get(&server.url(&format!("/api/v1/live?{query}")))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            return Err((code, r.into_string().unwrap_or_default()));
        }
        Err(e) => panic!("GET /api/v1/live: {e}"),
    };
    assert_eq!(
        response.content_type(),
        "text/event-stream",
        "content type of a live stream"
    );
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut name = String::new();
        let mut data = String::new();
        for line in BufReader::new(response.into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(c) = line.strip_prefix(':') {
                if tx.send(Sse::Comment(c.trim().to_string())).is_err() {
                    return;
                }
            } else if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            } else if line.is_empty() && !data.is_empty() {
                let value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
                let event = Sse::Event {
                    name: std::mem::take(&mut name),
                    data: value,
                };
                data.clear();
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    });
    Ok(Live {
        rx,
        _reader: reader,
    })
}

/// A stream that must open.
fn open_ok(server: &TestServer, token: &str, query: &str) -> Live {
    open(server, token, query).unwrap_or_else(|(s, b)| panic!("live {query}: {s} {b}"))
}

/// `dps` of the one series of `data["series"]` as `(label, value)` pairs.
fn only_series(data: &Value) -> (String, Vec<(String, i64)>) {
    let series = data["series"].as_array().expect("series array");
    assert_eq!(series.len(), 1, "one series: {data}");
    let s = &series[0];
    let dps = s["dps"]
        .as_object()
        .expect("dps object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().expect("integer value")))
        .collect();
    (s["metric"].as_str().expect("metric").to_string(), dps)
}

fn chat(mut e: Value) -> Value {
    e["channel"] = json!("chat");
    e
}

const KOLKATA_QUERY: &str = "group=acme&family=miniapps&metrics=miniapps_invocations\
     &filters=%7B%22channel%22%3A%5B%22chat%22%5D%7D&timezone=Asia%2FKolkata&window_minutes=60";

#[test]
fn an_ingested_event_arrives_as_the_bucket_it_changed() {
    let server = TestServer::start();
    let token = server.acme_token();
    let live = open_ok(&server, &token, KOLKATA_QUERY);

    // The snapshot: the whole window, local to Asia/Kolkata (12:00Z is 17:30 there), all zero.
    let (name, data) = live.event(UPDATE_WAIT);
    assert_eq!(name, "snapshot");
    let (metric, dps) = only_series(&data);
    assert_eq!(metric, "miniapps_invocations");
    let want: Vec<(String, i64)> = (0..13)
        .map(|i| {
            let m = 16 * 60 + 30 + i * 5;
            (format!("2024-03-27 {:02}:{:02}:00.0", m / 60, m % 60), 0)
        })
        .collect();
    assert_eq!(dps, want);
    assert_eq!(data["from"], "2024-03-27 16:30:00.0");
    assert_eq!(
        data["series"][0]["tags"],
        json!({"group": "acme", "channel": "chat"})
    );

    // One chat invocation now and one on another channel: the filter keeps the chat one, and
    // only the bucket that changed is sent.
    server.ingest_ok(
        &token,
        &[
            chat(miniapp_end("m1", "12:00", "12:00", "Menu")),
            miniapp_end("m2", "12:00", "12:00", "Menu"),
        ],
    );
    let (name, data) = live.event(UPDATE_WAIT);
    assert_eq!(name, "update");
    assert_eq!(
        only_series(&data).1,
        [("2024-03-27 17:30:00.0".to_string(), 1)]
    );
    assert_eq!(data["removed"], json!([]));

    // A late event changes a bucket forty minutes back; that bucket alone is sent.
    server.ingest_ok(&token, &[chat(miniapp_end("m3", "11:20", "12:00", "Menu"))]);
    let (name, data) = live.event(UPDATE_WAIT);
    assert_eq!(name, "update");
    assert_eq!(
        only_series(&data).1,
        [("2024-03-27 16:50:00.0".to_string(), 1)]
    );

    // A duplicate changes nothing, so nothing is sent (only heartbeats could come).
    server.ingest_ok(&token, &[chat(miniapp_end("m1", "12:00", "12:00", "Menu"))]);
    match live.next(Duration::from_secs(3)) {
        None | Some(Sse::Comment(_)) => {}
        Some(other) => panic!("nothing changed, yet the stream sent {other:?}"),
    }
}

#[test]
fn tenancy_scope_and_parameters_are_checked_like_queries() {
    let server = TestServer::start();
    let acme = server.acme_token();
    let globex = server.create_token(&["globex"], &["metrics:read"]);
    let write_only = server.create_token(&["acme"], &["events:write"]);
    let query = "group=acme&family=sessions";

    let (status, body) = open(&server, &globex, query).err().expect("refused");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not granted the group"), "{body}");
    let (status, body) = open(&server, &write_only, query).err().expect("refused");
    assert_eq!(status, 403, "{body}");
    let r = server.request("GET", &format!("/api/v1/live?{query}"), &[], None);
    assert_error(&r, 401);

    let bad = server.request(
        "GET",
        "/api/v1/live?group=acme&family=batch",
        &[("Authorization", &format!("Bearer {acme}"))],
        None,
    );
    let msg = assert_error(&bad, 400);
    assert!(msg.contains("dialogs, sessions or miniapps"), "{msg}");
    let bad = server.request(
        "GET",
        "/api/v1/live?group=acme&family=sessions&metrics=dialogs_completed",
        &[("Authorization", &format!("Bearer {acme}"))],
        None,
    );
    assert_error(&bad, 400);

    // The granted group's stream opens.
    let live = open_ok(&server, &acme, query);
    assert_eq!(live.event(UPDATE_WAIT).0, "snapshot");
}

#[test]
fn streams_per_token_are_bounded_and_given_back() {
    let server = TestServer::start();
    let token = server.acme_token();
    let query = "group=acme&family=sessions&window_minutes=5";
    let mut open_streams: Vec<Live> = (0..STREAMS_PER_TOKEN_MAX)
        .map(|_| open_ok(&server, &token, query))
        .collect();
    for live in &open_streams {
        assert_eq!(live.event(UPDATE_WAIT).0, "snapshot");
    }

    let r = server.request(
        "GET",
        &format!("/api/v1/live?{query}"),
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    );
    let msg = assert_error(&r, 429);
    assert!(
        msg.contains(&format!("{STREAMS_PER_TOKEN_MAX} live streams")),
        "{msg}"
    );
    assert_eq!(r.header("retry-after"), Some("5"));

    // Another token has its own budget, and ordinary requests of the same token still pass.
    let other = server.create_token(&["acme"], &["metrics:read"]);
    let live = open_ok(&server, &other, query);
    assert_eq!(live.event(UPDATE_WAIT).0, "snapshot");
    server.query_ok(
        &token,
        RT_SESSIONS_V3,
        q(&["session.initiated"], "11:30", "12:05", "five_min"),
    );

    // A closed stream gives its place back once the server notices the client went.
    drop(open_streams.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    let reopened = loop {
        match open(&server, &token, query) {
            Ok(live) => break live,
            Err((429, _)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err((status, body)) => panic!("reopening after a close: {status} {body}"),
        }
    };
    assert_eq!(reopened.event(UPDATE_WAIT).0, "snapshot");
}

#[test]
fn a_quiet_stream_sends_heartbeats_and_ends_at_shutdown() {
    let mut server = TestServer::start();
    let token = server.acme_token();
    let live = open_ok(&server, &token, "group=acme&family=dialogs");
    assert_eq!(live.event(UPDATE_WAIT).0, "snapshot");
    let started = Instant::now();
    let heartbeat = loop {
        match live.next(HEARTBEAT_WAIT.saturating_sub(started.elapsed())) {
            Some(Sse::Comment(c)) => break c,
            Some(Sse::Event { name, data }) => {
                // A new five-minute bucket may start meanwhile; that is an update, not a beat.
                assert_eq!(name, "update", "{data}");
            }
            None => panic!("no heartbeat within {HEARTBEAT_WAIT:?}"),
        }
    };
    assert_eq!(heartbeat, "heartbeat");
    // The open stream must not hold a graceful shutdown back.
    server.stop_gracefully();
}
