//! Durability against the real binary (docs/api.md section 3.2): "a 200 means every accepted
//! event is durable: it survives kill -9 of the server right after the answer", nothing is
//! half-applied, dedupe survives restarts, and SIGTERM drains, flushes and exits 0.

mod support;

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A batch of `size` events with ids `{tag}-{i}`: every even one a `session_end` of its own
/// session, every odd one a `miniapp_end`, spread over 10:00-11:59.
fn batch(tag: &str, size: usize) -> Vec<Value> {
    (0..size)
        .map(|i| {
            let minute = (i * 7) % 110;
            let started = format!("{:02}:{:02}", 10 + minute / 60, minute % 60);
            let ended = format!("{:02}:{:02}", 10 + (minute + 1) / 60, (minute + 1) % 60);
            let id = format!("{tag}-{i}");
            let e = if i % 2 == 0 {
                session_end(&id, &started, &ended)
            } else {
                miniapp_end(&id, &started, &ended, "Menu")
            };
            with(e, json!({"session_id": format!("{tag}-s{}", i / 2)}))
        })
        .collect()
}

/// How many of the events are session ends and miniApp ends.
fn kinds(events: &[Value]) -> (i64, i64) {
    let sessions = events.iter().filter(|e| e["type"] == "session_end").count() as i64;
    (sessions, events.len() as i64 - sessions)
}

/// Batch totals of the day: (`sessions`, `invocations`); and the RT miniApp invocations.
fn counts(server: &TestServer, token: &str) -> (i64, i64, i64) {
    let body = json!({
        "metrics": ["sessions", "invocations"], "filters": {}, "group": "acme", "downsampling": "day",
        "start": "2024/03/27 00:00:00", "end": "2024/03/28 00:00:00",
    });
    let a = server.query_ok(token, BATCH_SESSIONS_V3, body);
    let rt = server.query_ok(
        token,
        RT_MINIAPPS_V3,
        q(&["miniapps_invocations"], "10:00", "12:00", "hour"),
    );
    (
        a.total("sessions"),
        a.total("invocations"),
        rt.total("miniapps_invocations"),
    )
}

#[test]
fn acknowledged_events_survive_kill9() {
    let mut server = TestServer::start();
    let token = server.acme_token();
    let (mut sessions, mut invocations) = (0, 0);
    let mut first_batch = None;
    for cycle in 0..5 {
        for b in 0..3 {
            let events = batch(&format!("c{cycle}b{b}"), 150 + 50 * b);
            let (status, answer) = server.ingest(&token, &ndjson(&events));
            assert_eq!(status, 200, "{answer}");
            assert_eq!(
                answer["accepted"].as_u64(),
                Some(events.len() as u64),
                "{answer}"
            );
            let (s, m) = kinds(&events);
            sessions += s;
            invocations += m;
            first_batch.get_or_insert(events);
        }
        // Right after the last 200: kill -9, then start again on the same data dir.
        server.kill9();
        server.restart();
        assert_eq!(
            counts(&server, &token),
            (sessions, invocations, invocations),
            "cycle {cycle}: every acknowledged event counted exactly once after kill -9"
        );
    }
    // Recovery is idempotent: kill -9 right after each start, several times over.
    for _ in 0..3 {
        server.restart();
    }
    assert_eq!(
        counts(&server, &token),
        (sessions, invocations, invocations),
        "after repeated recoveries"
    );
    // Re-sending an acknowledged batch after the restarts: all duplicates, no count changes.
    let again = first_batch.unwrap();
    let (status, answer) = server.ingest(&token, &ndjson(&again));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(again.len() as u64)),
        "{answer}"
    );
    assert_eq!(
        counts(&server, &token),
        (sessions, invocations, invocations)
    );
}

/// kill -9 while a producer is sending: every acknowledged event counts, an unacknowledged
/// request is all-or-nothing, and re-sending everything ends at the exact totals.
#[test]
fn kill9_during_ingest_then_resend_everything() {
    let mut server = TestServer::start();
    let token = server.acme_token();
    let url = server.url("/ingest/v1/events");
    // Every batch sent, with its status (`None`: no answer, the server was killed).
    type Sent = Vec<(Vec<Value>, Option<u16>)>;
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (sent, stop, token) = (sent.clone(), stop.clone(), token.clone());
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build();
            for b in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let events = batch(&format!("live{b}"), 100);
                let result = agent
                    .post(&url)
                    .set("Content-Type", NDJSON)
                    .set("Authorization", &format!("Bearer {token}"))
                    .send_string(&ndjson(&events));
                let status = match result {
                    Ok(r) => Some(r.status()),
                    Err(ureq::Error::Status(code, _)) => Some(code),
                    Err(_) => None,
                };
                sent.lock().unwrap().push((events, status));
                if status.is_none() {
                    break;
                }
            }
        })
    };
    // Let some batches through, then pull the plug mid-stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sent.lock().unwrap().len() < 8 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    assert!(
        sent.len() >= 8,
        "the producer got {} batches through",
        sent.len()
    );
    assert!(
        sent.iter().all(|(_, s)| matches!(s, None | Some(200))),
        "statuses: {:?}",
        sent.iter().map(|(_, s)| s).collect::<Vec<_>>()
    );

    server.restart();
    let acked: Vec<&Vec<Value>> = sent
        .iter()
        .filter(|(_, s)| *s == Some(200))
        .map(|(e, _)| e)
        .collect();
    let (acked_s, acked_m) = acked
        .iter()
        .map(|e| kinds(e))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let (s, m, rt) = counts(&server, &token);
    let unacked: Vec<&Vec<Value>> = sent
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(e, _)| e)
        .collect();
    let (extra_s, extra_m) = unacked
        .iter()
        .map(|e| kinds(e))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(
        s == acked_s || s == acked_s + extra_s,
        "sessions {s}: acknowledged {acked_s}, unacknowledged {extra_s}"
    );
    assert!(
        m == acked_m || m == acked_m + extra_m,
        "invocations {m}: acknowledged {acked_m}, unacknowledged {extra_m}"
    );
    assert_eq!(rt, m, "RT and batch saw the same miniApp ends");
    eprintln!(
        "kill -9 mid-stream: {} batches acknowledged, {} unacknowledged; sessions {s} (acknowledged {acked_s})",
        acked.len(),
        unacked.len()
    );

    // The producer retries everything: acknowledged batches are all duplicates; the
    // unacknowledged one is either all duplicates or all new.
    let (mut total_s, mut total_m) = (0, 0);
    for (events, status) in &sent {
        let (st, answer) = server.ingest(&token, &ndjson(events));
        assert_eq!(st, 200, "{answer}");
        let (accepted, dups) = (
            answer["accepted"].as_u64().unwrap(),
            answer["duplicates"].as_u64().unwrap(),
        );
        assert_eq!(accepted + dups, events.len() as u64, "{answer}");
        if *status == Some(200) {
            assert_eq!(
                accepted, 0,
                "an acknowledged batch was not remembered: {answer}"
            );
        } else {
            assert!(
                accepted == 0 || dups == 0,
                "half of an unacknowledged batch was applied: {answer}"
            );
        }
        let (a, b) = kinds(events);
        total_s += a;
        total_m += b;
    }
    assert_eq!(
        counts(&server, &token),
        (total_s, total_m, total_m),
        "exact totals after the retry"
    );
}

#[test]
fn sigterm_exits_0_and_keeps_the_data() {
    let mut server = TestServer::start();
    let token = server.acme_token();
    let first = batch("graceful", 300);
    server.ingest_ok(&token, &first);
    let (s, m) = kinds(&first);

    // A large request in flight when SIGTERM arrives is either answered 200 and kept, or never
    // reached the server: never half-applied.
    let big = batch("inflight", 10_000);
    let body = ndjson(&big);
    let (url, auth) = (server.url("/ingest/v1/events"), format!("Bearer {token}"));
    let inflight = std::thread::spawn(move || {
        let r = ureq::post(&url)
            .set("Content-Type", NDJSON)
            .set("Authorization", &auth)
            .send_string(&body);
        match r {
            Ok(r) => Some(r.status()),
            Err(ureq::Error::Status(code, _)) => Some(code),
            Err(_) => None,
        }
    });
    std::thread::sleep(Duration::from_millis(30));
    server.stop_gracefully();
    let status = inflight.join().unwrap();
    eprintln!("in-flight request during SIGTERM: {status:?}");

    server.restart();
    let (bs, bm) = kinds(&big);
    let got = counts(&server, &token);
    match status {
        Some(200) => assert_eq!(
            got,
            (s + bs, m + bm, m + bm),
            "the in-flight request was answered 200"
        ),
        Some(code) => panic!("the in-flight request got {code} during shutdown"),
        None => assert!(
            got == (s, m, m) || got == (s + bs, m + bm, m + bm),
            "half-applied: {got:?}"
        ),
    }
    // SIGINT is a graceful stop too; data written just before it is kept.
    let last = batch("before-sigint", 50);
    server.ingest_ok(&token, &last);
    server.stop_with_signal("INT");
    server.restart();
    let (ls, lm) = kinds(&last);
    assert_eq!(
        counts(&server, &token),
        (got.0 + ls, got.1 + lm, got.2 + lm)
    );
}
