//! The public HTTP API against the real binary (docs/api.md sections 3 to 8): ingest formats
//! and validation, every query endpoint and metric, bucketing, filters, drilldown, time zones,
//! v2 deprecation headers, and every error status that needs no auth details.

mod support;

use expect_test::{Expect, expect};
use serde_json::{Value, json};
use support::*;

// ------------------------------------------------------------------------------------ data

/// The worked example of docs/api.md section 4.5 (the public API's Example 3): a call
/// 10:01-10:08 with three miniApps (session `s1`).
fn example3() -> Vec<Value> {
    vec![
        ev("session_start", "x3-ss", "10:01"),
        ev("miniapp_start", "x3-m1s", "10:01"),
        miniapp_end("x3-m1", "10:01", "10:02", "miniApp1"),
        ev("miniapp_start", "x3-m2s", "10:02"),
        miniapp_end("x3-m2", "10:02", "10:06", "miniApp2"),
        ev("miniapp_start", "x3-m3s", "10:06"),
        miniapp_end("x3-m3", "10:06", "10:08", "miniApp3"),
        dialog_end("x3-d", "10:01", "10:08", "terminated"),
        session_end("x3-se", "10:01", "10:08"),
    ]
}

/// A second session `s2` (chat, eu1, test) 11:00-11:05 that exercises every outcome, result and
/// count, plus a non-root dialog that must count nowhere.
fn session2() -> Vec<Value> {
    let s2 = json!({"session_id": "s2", "channel": "chat", "region": "eu1", "test": true});
    let m = |id: &str, started: &str, time: &str, name: &str, extra: Value| {
        with(
            with(miniapp_end(id, started, time, name), s2.clone()),
            extra,
        )
    };
    let d = |id: &str, started: &str, time: &str, outcome: &str, extra: Value| {
        with(
            with(dialog_end(id, started, time, outcome), s2.clone()),
            extra,
        )
    };
    vec![
        with(ev("session_start", "s2-ss", "11:00"), s2.clone()),
        m(
            "s2-m1",
            "11:00",
            "11:01",
            "Pay",
            json!({"result": "fail", "fail_reason": "no_account", "no_inputs": 2, "no_matches": 1}),
        ),
        m(
            "s2-m2",
            "11:01",
            "11:02",
            "Pay",
            json!({"result": "error", "system_errors": 1}),
        ),
        m(
            "s2-m3",
            "11:01",
            "11:02",
            "Pay",
            json!({"result": "success", "critical_errors": 1, "agent_requests": 2}),
        ),
        m(
            "s2-m4",
            "11:02",
            "11:03",
            "Menu",
            json!({"result": "hangup"}),
        ),
        m(
            "s2-m5",
            "11:02",
            "11:03",
            "Menu",
            json!({"result": "dtmf_escape"}),
        ),
        m(
            "s2-m6",
            "11:03",
            "11:04",
            "Menu",
            json!({"result": "other", "miniapp_type": "Inform"}),
        ),
        d(
            "s2-d1",
            "11:00",
            "11:04",
            "transferred",
            json!({"agent_requests": 3, "no_inputs": 1, "no_matches": 4}),
        ),
        d(
            "s2-d2",
            "11:00",
            "11:04",
            "error",
            json!({"critical_errors": 2}),
        ),
        d("s2-d3", "11:01", "11:04", "other", json!({})),
        d(
            "s2-d4",
            "11:01",
            "11:04",
            "terminated",
            json!({"system_errors": 1}),
        ),
        d(
            "s2-d5",
            "11:01",
            "11:04",
            "transferred",
            json!({"root": false}),
        ),
        with(session_end("s2-se", "11:00", "11:05"), s2.clone()),
    ]
}

fn check(actual: &str, expected: Expect) {
    expected.assert_eq(actual);
}

// ---------------------------------------------------------------------------------- ingest

#[test]
fn ingest_accepts_ndjson_json_array_and_gzip() {
    let server = TestServer::start();
    let token = server.acme_token();
    let events = |prefix: &str| -> Vec<Value> {
        (0..3)
            .map(|i| miniapp_end(&format!("{prefix}-{i}"), "10:00", "10:01", prefix))
            .collect()
    };
    let array = |evs: &[Value]| Value::Array(evs.to_vec()).to_string();
    let cases: Vec<(&str, &str, Option<&str>, Vec<u8>)> = vec![
        (
            "ndjson",
            NDJSON,
            None,
            ndjson(&events("ndjson")).into_bytes(),
        ),
        ("array", JSON, None, array(&events("array")).into_bytes()),
        (
            "ndjson-gzip",
            NDJSON,
            Some("gzip"),
            gzip(ndjson(&events("ndjson-gzip")).as_bytes()),
        ),
        (
            "array-gzip",
            JSON,
            Some("gzip"),
            gzip(array(&events("array-gzip")).as_bytes()),
        ),
    ];
    let mut answers = String::new();
    for (name, ct, enc, body) in &cases {
        let r = server.ingest_with(Some(&token), ct, *enc, body);
        answers.push_str(&format!("{name}: {} {}\n", r.status, r.text));
    }
    check(
        &answers,
        expect![[r#"
            ndjson: 200 {"accepted":3,"duplicates":0,"rejected":0,"errors":[]}
            array: 200 {"accepted":3,"duplicates":0,"rejected":0,"errors":[]}
            ndjson-gzip: 200 {"accepted":3,"duplicates":0,"rejected":0,"errors":[]}
            array-gzip: 200 {"accepted":3,"duplicates":0,"rejected":0,"errors":[]}
        "#]],
    );
    let body = json!({
        "metrics": ["miniapps_invocations"], "filters": {"miniapp_name": []}, "drilldown": true,
        "group": "acme", "downsampling": "five_min", "start": "2024/03/27 10:00:00", "end": "2024/03/27 10:10:00",
    });
    let a = server.query_ok(&token, RT_MINIAPPS_V3, body);
    check(
        &a.sparse(),
        expect![[r#"
            miniapps_invocations {group=acme,miniapp_name=array}: 03-27 10:00=3
            miniapps_invocations {group=acme,miniapp_name=array-gzip}: 03-27 10:00=3
            miniapps_invocations {group=acme,miniapp_name=ndjson}: 03-27 10:00=3
            miniapps_invocations {group=acme,miniapp_name=ndjson-gzip}: 03-27 10:00=3
        "#]],
    );
}

/// Each invalid event is rejected with its index and a message naming the field; the valid
/// events of the same request are accepted.
#[test]
fn ingest_rejects_invalid_events_individually() {
    let server = TestServer::start();
    let token = server.acme_token();
    let good = |i: usize| miniapp_end(&format!("good-{i}"), "10:00", "10:01", "Menu");
    let bad = |id: &str, extra: Value| with(miniapp_end(id, "10:00", "10:01", "Menu"), extra);
    let long = "x".repeat(300);
    // (event line, field the message must name; "" for a valid event)
    let lines: Vec<(String, &str)> = vec![
        (good(0).to_string(), ""),
        (
            bad("b-missing", json!({"session_id": null})).to_string(),
            "session_id",
        ),
        (
            bad("b-missing-end", json!({"started_at": null})).to_string(),
            "started_at",
        ),
        (
            bad("b-time", json!({"time": "2024-03-27T25:61:00Z"})).to_string(),
            "time",
        ),
        (
            bad("b-offset", json!({"time": "2024-03-27T10:01:00"})).to_string(),
            "time",
        ),
        (good(1).to_string(), ""),
        (
            bad("b-type", json!({"type": "call_start"})).to_string(),
            "type",
        ),
        (
            bad("b-negative", json!({"no_inputs": -1})).to_string(),
            "no_inputs",
        ),
        (
            bad(
                "b-order",
                json!({"started_at": t("10:02"), "time": t("10:01")}),
            )
            .to_string(),
            "started_at",
        ),
        (
            bad("b-mistyped", json!({"test": "yes"})).to_string(),
            "test",
        ),
        (bad("b-long", json!({"locale": long})).to_string(), "locale"),
        (
            bad(
                "b-future",
                json!({"started_at": t("12:29"), "time": t("12:30")}),
            )
            .to_string(),
            "time",
        ),
        (
            bad(
                "b-old",
                json!({"started_at": "2022-01-01T00:00:00Z", "time": "2022-01-01T00:01:00Z"}),
            )
            .to_string(),
            "started_at",
        ),
        (
            bad("b-result", json!({"result": "great"})).to_string(),
            "result",
        ),
        (
            with(
                dialog_end("b-outcome", "10:00", "10:01", "escalated"),
                json!({}),
            )
            .to_string(),
            "outcome",
        ),
        (
            with(ev("session_end", "b-se", "10:05"), json!({})).to_string(),
            "started_at",
        ),
        (bad("", json!({})).to_string(), "id"),
        ("{not json".to_string(), ""),
        ("[1, 2]".to_string(), ""),
        (bad(&"i".repeat(129), json!({})).to_string(), "id"),
        (good(2).to_string(), ""),
        // Unknown extra fields are ignored; 4 minutes ahead of the server clock is fine.
        (
            with(good(3), json!({"colour": "red", "nested": {"a": [1]}})).to_string(),
            "",
        ),
        (
            with(
                good(4),
                json!({"started_at": t("12:03"), "time": t("12:04")}),
            )
            .to_string(),
            "",
        ),
    ];
    let body: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    let (status, answer) = server.ingest(&token, &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 5, "{answer}");
    assert_eq!(answer["duplicates"], 0);
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(answer["rejected"].as_u64().unwrap() as usize, errors.len());
    let want: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, (l, _))| !l.contains("good-"))
        .map(|(i, _)| i)
        .collect();
    let got: Vec<usize> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got, want, "rejected indexes");
    for e in errors {
        let i = e["index"].as_u64().unwrap() as usize;
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains(lines[i].1),
            "error {i} should name `{}`: {msg}",
            lines[i].1
        );
    }
    let rendered: String = errors
        .iter()
        .map(|e| format!("{}: {}\n", e["index"], e["message"].as_str().unwrap()))
        .collect();
    check(
        &rendered,
        expect![[r#"
        1: `session_id`: is required for miniapp_end and missing
        2: `started_at`: is required for miniapp_end and missing
        3: `time`: `2024-03-27T25:61:00Z` is not an RFC 3339 timestamp with an offset, e.g. 2024-03-27T12:00:00Z
        4: `time`: `2024-03-27T10:01:00` is not an RFC 3339 timestamp with an offset, e.g. 2024-03-27T12:00:00Z
        6: `type`: unknown event type `call_start`; use one of session_start, session_end, dialog_start, dialog_end, miniapp_start, miniapp_end
        7: `no_inputs`: is -1; counts must be 0 or more
        8: `started_at`: is after `time`; an end event must start no later than it ends
        9: `test`: must be a boolean (true or false), got a string
        10: `locale`: is 300 bytes long; the limit is 256 bytes
        11: `time`: is more than 5 minutes ahead of the server clock; send events when they happen, with a correct clock
        12: `started_at`: is older than the 720-day batch retention; such events can no longer be counted
        13: `result`: unknown result `great`; use one of success, fail, hangup, dtmf_escape, error, other
        14: `outcome`: unknown outcome `escalated`; use one of transferred, terminated, error, other
        15: `started_at`: is required for session_end and missing
        16: `id`: must be 1 to 128 characters long; it is 0
        17: not valid JSON (key must be a string at line 1 column 2); send one JSON object per line
        18: an event must be a JSON object
        19: `id`: must be 1 to 128 characters long; it is 129
    "#]],
    );
    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        q(&["miniapps_invocations"], "10:00", "12:10", "five_min"),
    );
    check(
        &a.sparse(),
        expect![[r#"
        miniapps_invocations {group=acme}: 03-27 10:00=4 03-27 12:00=1
    "#]],
    );
}

#[test]
fn ingest_deduplicates_within_and_across_requests() {
    let server = TestServer::start();
    let token = server.acme_token();
    let all_groups = server.create_token(&["*"], &["metrics:read", "events:write"]);
    let e = |id: &str| miniapp_end(id, "10:00", "10:01", "Menu");
    let mut answers = String::new();
    let mut send = |tok: &str, events: &[Value]| {
        let (status, body) = server.ingest(tok, &ndjson(events));
        answers.push_str(&format!("{status} {body}\n"));
    };
    send(&token, &[e("a"), e("b"), e("a")]);
    send(&token, &[e("a"), e("c"), e("b")]);
    // A rejected event does not take its id: the corrected resend is accepted.
    send(&token, &[with(e("d"), json!({"no_inputs": -5}))]);
    send(&token, &[e("d")]);
    // The dedupe key is (group, id): the same id in another group is a new event.
    send(&all_groups, &[with(e("a"), json!({"group": "globex"}))]);
    check(
        &answers,
        expect![[r#"
            200 {"accepted":2,"duplicates":1,"errors":[],"rejected":0}
            200 {"accepted":1,"duplicates":2,"errors":[],"rejected":0}
            200 {"accepted":0,"duplicates":0,"errors":[{"index":0,"message":"`no_inputs`: is -5; counts must be 0 or more"}],"rejected":1}
            200 {"accepted":1,"duplicates":0,"errors":[],"rejected":0}
            200 {"accepted":1,"duplicates":0,"errors":[],"rejected":0}
        "#]],
    );
    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        q(&["miniapps_invocations"], "10:00", "10:10", "five_min"),
    );
    assert_eq!(a.total("miniapps_invocations"), 4, "a, b, c, d once each");
    let mut body = q(&["totalinvocations"], "10:00", "11:00", "hour");
    body["group"] = json!("globex");
    let a = server.query_ok(&all_groups, BATCH_MINIAPPS_V3, body);
    assert_eq!(a.total("totalinvocations"), 1);
}

/// 413 for a body over `--body-bytes-max` as sent and for a gzip bomb over
/// `--decoded-bytes-max`; bodies under both limits still work.
#[test]
fn ingest_body_limits_413() {
    let server = TestServer::start_with(Options::args(&[
        "--body-bytes-max",
        "1000",
        "--decoded-bytes-max",
        "20000",
    ]));
    let token = server.acme_token();
    let one = ndjson(&[miniapp_end("small", "10:00", "10:01", "Menu")]);
    assert!(one.len() < 1000);
    let (status, body) = server.ingest(&token, &one);
    assert_eq!(status, 200, "{body}");

    let many: Vec<Value> = (0..6)
        .map(|i| miniapp_end(&format!("big-{i}"), "10:00", "10:01", "Menu"))
        .collect();
    let big = ndjson(&many);
    assert!(big.len() > 1000 && big.len() < 20000);
    let r = server.ingest_with(Some(&token), NDJSON, None, big.as_bytes());
    assert_error(&r, 413);

    // The same events gzip-compressed fit both limits.
    let packed = gzip(big.as_bytes());
    assert!(packed.len() < 1000, "{}", packed.len());
    let r = server.ingest_with(Some(&token), NDJSON, Some("gzip"), &packed);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["accepted"], 6);

    // A gzip bomb: a few hundred bytes that decompress past the decoded limit.
    let mut bomb_text = big.clone();
    bomb_text.push_str(&" ".repeat(500_000));
    bomb_text.push('\n');
    let bomb = gzip(bomb_text.as_bytes());
    assert!(bomb.len() < 1000, "{}", bomb.len());
    let r = server.ingest_with(Some(&token), NDJSON, Some("gzip"), &bomb);
    assert_error(&r, 413);

    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        q(&["miniapps_invocations"], "10:00", "10:10", "five_min"),
    );
    assert_eq!(
        a.total("miniapps_invocations"),
        7,
        "nothing of the refused bodies counts"
    );
}

#[test]
fn ingest_unsupported_media_415() {
    let server = TestServer::start();
    let token = server.acme_token();
    let body = ndjson(&[miniapp_end("csv", "10:00", "10:01", "Menu")]);
    let r = server.ingest_with(Some(&token), "text/csv", None, body.as_bytes());
    assert_error(&r, 415);
    let r = server.ingest_with(Some(&token), NDJSON, Some("br"), body.as_bytes());
    assert_error(&r, 415);
    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        q(&["miniapps_invocations"], "10:00", "10:10", "five_min"),
    );
    assert_eq!(a.total("miniapps_invocations"), 0);
}

// ----------------------------------------------------------------------------------- query

/// Every endpoint with every metric: 200, one series per metric in the requested order, tags
/// `{group}`, every bucket present in ascending order, integer values; v2 answers carry
/// `Deprecation` and `Sunset`, v3 answers do not.
#[test]
fn every_endpoint_every_metric() {
    let server = TestServer::start();
    let token = server.acme_token();
    let mut events = example3();
    events.extend(session2());
    server.ingest_ok(&token, &events);

    let mut out = String::new();
    for (path, metrics) in ENDPOINTS {
        let (body, labels) = if is_realtime(path) {
            (
                q(metrics, "10:00", "12:00", "five_min"),
                labels_every("10:00", 5, 24),
            )
        } else {
            (
                q(metrics, "10:00", "12:00", "hour"),
                labels_every("10:00", 60, 2),
            )
        };
        let r = server.post_json(path, Some(&token), &body);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let deprecated = path.contains("/v2/");
        for h in ["deprecation", "sunset"] {
            assert_eq!(
                r.header(h).is_some(),
                deprecated,
                "{path}: header {h}: {:?}",
                r.headers
            );
        }
        let a = Answer::parse(&r.text);
        assert_eq!(a.metrics(), metrics.to_vec(), "{path}: series order");
        assert_eq!(a.labels(), labels, "{path}: labels");
        for s in &a.series {
            assert_eq!(
                s.tags,
                [("group".to_string(), "acme".to_string())].into(),
                "{path}"
            );
        }
        out.push_str(&format!("{path}\n{}", a.sparse()));
    }
    check(
        &out,
        expect![[r#"
        /metrics-api/v3/realtime/metrics/dialogs
        dialogs_completed {group=acme}: 03-27 10:00=1 03-27 11:00=4
        dialogs_transferred {group=acme}: 03-27 11:00=1
        dialogs_terminated {group=acme}: 03-27 10:00=1 03-27 11:00=1
        root_system_errors {group=acme}: 03-27 11:00=1
        root_agent_requests {group=acme}: 03-27 11:00=3
        root_critical_error {group=acme}: 03-27 11:00=2
        root_no_inputs {group=acme}: 03-27 11:00=1
        root_no_matches {group=acme}: 03-27 11:00=4
        /metrics-api/v3/realtime/metrics/sessions
        session.initiated {group=acme}: 03-27 10:00=1 03-27 10:05=1 03-27 11:00=1 03-27 11:05=1
        /metrics-api/v3/realtime/metrics/miniapps
        miniapps_invocations {group=acme}: 03-27 10:00=2 03-27 10:05=1 03-27 11:00=6
        miniapps_invocations_successful {group=acme}: 03-27 10:00=2 03-27 10:05=1 03-27 11:00=1
        miniapps_system_errors {group=acme}: 03-27 11:00=1
        miniapps_critical_error {group=acme}: 03-27 11:00=1
        miniapps_agent_requests {group=acme}: 03-27 11:00=2
        miniapps_no_inputs {group=acme}: 03-27 11:00=2
        miniapps_no_matches {group=acme}: 03-27 11:00=1
        /metrics-api/v3/batch/metrics/dialogs
        dialogs {group=acme}: 03-27 10:00=1 03-27 11:00=4
        error {group=acme}: 03-27 11:00=2
        transferred {group=acme}: 03-27 11:00=1
        terminated {group=acme}: 03-27 10:00=1
        other {group=acme}: 03-27 11:00=1
        /metrics-api/v3/batch/metrics/sessions
        sessions {group=acme}: 03-27 10:00=1 03-27 11:00=1
        duration10sec {group=acme}: 03-27 10:00=42 03-27 11:00=30
        invocations {group=acme}: 03-27 10:00=3 03-27 11:00=6
        /metrics-api/v3/batch/metrics/miniapps
        totalinvocations {group=acme}: 03-27 10:00=3 03-27 11:00=6
        errortasks {group=acme}: 03-27 11:00=2
        successfultasks {group=acme}: 03-27 10:00=3
        failedtasks {group=acme}: 03-27 11:00=1
        hangeduptasks {group=acme}: 03-27 11:00=1
        dtmfescapekeytasks {group=acme}: 03-27 11:00=1
        othertasks {group=acme}: 03-27 11:00=1
        /metrics-api/v2/realtime/metrics/dialogs
        miniapps_invocations {group=acme}: 03-27 10:00=2 03-27 10:05=1 03-27 11:00=6
        miniapps_system_errors {group=acme}: 03-27 11:00=1
        miniapps_critical_error {group=acme}: 03-27 11:00=1
        miniapps_invocations_successful {group=acme}: 03-27 10:00=2 03-27 10:05=1 03-27 11:00=1
        no_inputs {group=acme}: 03-27 11:00=2
        no_matches {group=acme}: 03-27 11:00=1
        dialogs_completed {group=acme}: 03-27 10:00=1 03-27 11:00=4
        dialogs_transferred {group=acme}: 03-27 11:00=1
        dialogs_terminated {group=acme}: 03-27 10:00=1 03-27 11:00=1
        /metrics-api/v2/realtime/metrics/sessions
        session.initiated {group=acme}: 03-27 10:00=1 03-27 10:05=1 03-27 11:00=1 03-27 11:05=1
        /metrics-api/v2/batch/metrics/dialogs
        dialogs {group=acme}: 03-27 10:00=1 03-27 11:00=4
        error {group=acme}: 03-27 11:00=2
        transferred {group=acme}: 03-27 11:00=1
        terminated {group=acme}: 03-27 10:00=1
        other {group=acme}: 03-27 11:00=1
        /metrics-api/v2/batch/metrics/sessions
        sessions {group=acme}: 03-27 10:00=1 03-27 11:00=1
        duration10sec {group=acme}: 03-27 10:00=42 03-27 11:00=30
        invocations {group=acme}: 03-27 10:00=3 03-27 11:00=6
        /metrics-api/v2/batch/metrics/miniapps
        totalinvocations {group=acme}: 03-27 10:00=3 03-27 11:00=6
        errortasks {group=acme}: 03-27 11:00=2
        successfultasks {group=acme}: 03-27 10:00=3
        failedtasks {group=acme}: 03-27 11:00=1
        hangeduptasks {group=acme}: 03-27 11:00=1
        dtmfescapekeytasks {group=acme}: 03-27 11:00=1
        othertasks {group=acme}: 03-27 11:00=1
    "#]],
    );

    // Batch invariants of docs/api.md section 6, bucket by bucket.
    let a = server.query_ok(
        &token,
        BATCH_DIALOGS_V3,
        q(
            &["dialogs", "error", "transferred", "terminated", "other"],
            "10:00",
            "12:00",
            "hour",
        ),
    );
    for label in a.labels() {
        let sum: i64 = ["error", "transferred", "terminated", "other"]
            .iter()
            .map(|m| a.at(m, &label))
            .sum();
        assert_eq!(
            a.at("dialogs", &label),
            sum,
            "dialogs = error + transferred + terminated + other at {label}"
        );
    }
}

/// docs/api.md section 4 with the worked example (4.5), step by step as the events arrive.
#[test]
fn seed_example_3_over_http() {
    let server = TestServer::start();
    let token = server.acme_token();
    let events = example3();
    let mini = || {
        server.query_ok(
            &token,
            RT_MINIAPPS_V3,
            q(&["miniapps_invocations"], "10:00", "10:15", "five_min"),
        )
    };
    let sess = || {
        server.query_ok(
            &token,
            RT_SESSIONS_V3,
            q(&["session.initiated"], "10:00", "10:15", "five_min"),
        )
    };
    let dia = || {
        server.query_ok(
            &token,
            RT_DIALOGS_V3,
            q(&["dialogs_completed"], "10:00", "10:15", "five_min"),
        )
    };
    let state = || format!("{}{}{}", mini().sparse(), sess().sparse(), dia().sparse());

    // Up to 10:02: session start, miniApp1 starts and ends.
    server.ingest_ok(&token, &events[..3]);
    check(
        &state(),
        expect![[r#"
            miniapps_invocations {group=acme}: 03-27 10:00=1
            session.initiated {group=acme}: 03-27 10:00=1
            dialogs_completed {group=acme}: -
        "#]],
    );
    // Up to 10:06: miniApp2 (started 10:02) ends at 10:06 and lands in A; the session is now
    // also active in B.
    server.ingest_ok(&token, &events[3..6]);
    check(
        &state(),
        expect![[r#"
            miniapps_invocations {group=acme}: 03-27 10:00=2
            session.initiated {group=acme}: 03-27 10:00=1 03-27 10:05=1
            dialogs_completed {group=acme}: -
        "#]],
    );
    // Up to 10:08: miniApp3 lands in B; the dialog (started 10:01) completes in A.
    server.ingest_ok(&token, &events[6..]);
    let final_state = state();
    check(
        &final_state,
        expect![[r#"
            miniapps_invocations {group=acme}: 03-27 10:00=2 03-27 10:05=1
            session.initiated {group=acme}: 03-27 10:00=1 03-27 10:05=1
            dialogs_completed {group=acme}: 03-27 10:00=1
        "#]],
    );
    assert_eq!(mini().labels(), labels_every("10:00", 5, 3));

    // Hour roll-up of sessions is the sum of the 5-minute values (docs/api.md section 4.2).
    let a = server.query_ok(
        &token,
        RT_SESSIONS_V3,
        q(&["session.initiated"], "10:00", "11:00", "hour"),
    );
    check(
        &a.sparse(),
        expect![[r#"
        session.initiated {group=acme}: 03-27 10:00=2
    "#]],
    );
    // Batch: the session counts once at its start, 7 minutes = 42 x 10 s; three invocations.
    let a = server.query_ok(
        &token,
        BATCH_SESSIONS_V3,
        q(
            &["sessions", "duration10sec", "invocations"],
            "10:00",
            "11:00",
            "hour",
        ),
    );
    check(
        &a.sparse(),
        expect![[r#"
            sessions {group=acme}: 03-27 10:00=1
            duration10sec {group=acme}: 03-27 10:00=42
            invocations {group=acme}: 03-27 10:00=3
        "#]],
    );
}

/// RT sessions are active from the interval of their earliest to that of their latest known
/// instant (including an end event's `started_at`, and late arrivals); batch sessions count
/// once at `started_at` with `duration10sec = ceil(seconds / 10)`.
#[test]
fn rt_session_spans_and_batch_durations() {
    let server = TestServer::start();
    let token = server.acme_token();
    let s = |e: Value, session: &str| with(e, json!({"session_id": session}));
    server.ingest_ok(
        &token,
        &[
            // A: known only from its end: 10:01-10:18.
            s(session_end("a-end", "10:01", "10:18"), "A"),
            // B: seen at 10:20 first, then its end says it started at 10:01.
            s(ev("miniapp_start", "b-ma", "10:20"), "B"),
            // C: chat, 11 seconds, two events in one interval.
            with(
                s(ev("session_start", "c-start", "10:40"), "C"),
                json!({"channel": "chat"}),
            ),
            with(
                s(session_end("c-end", "10:40:00", "10:40:11"), "C"),
                json!({"channel": "chat"}),
            ),
            // D: exactly 10 seconds; E: zero seconds.
            s(session_end("d-end", "10:50:00", "10:50:10"), "D"),
            s(session_end("e-end", "10:55:00", "10:55:00"), "E"),
        ],
    );
    server.ingest_ok(&token, &[s(session_end("b-end", "10:01", "10:22"), "B")]);
    let rt = server.query_ok(
        &token,
        RT_SESSIONS_V3,
        q(&["session.initiated"], "10:00", "11:00", "five_min"),
    );
    let hour = server.query_ok(
        &token,
        RT_SESSIONS_V3,
        q(&["session.initiated"], "10:00", "11:00", "hour"),
    );
    let chat = server.query_ok(
        &token,
        RT_SESSIONS_V3,
        with(
            q(&["session.initiated"], "10:00", "11:00", "five_min"),
            json!({"filters": {"channel": ["chat"]}}),
        ),
    );
    let batch = server.query_ok(
        &token,
        BATCH_SESSIONS_V3,
        q(&["sessions", "duration10sec"], "10:00", "11:00", "hour"),
    );
    check(
        &format!(
            "{}{}{}{}",
            rt.sparse(),
            hour.sparse(),
            chat.sparse(),
            batch.sparse()
        ),
        expect![[r#"
        session.initiated {group=acme}: 03-27 10:00=2 03-27 10:05=2 03-27 10:10=2 03-27 10:15=2 03-27 10:20=1 03-27 10:40=1 03-27 10:50=1 03-27 10:55=1
        session.initiated {group=acme}: 03-27 10:00=12
        session.initiated {channel=chat,group=acme}: 03-27 10:40=1
        sessions {group=acme}: 03-27 10:00=5
        duration10sec {group=acme}: 03-27 10:00=231
    "#]],
    );
}

/// drilldown true: one series per metric and per combination of the filter dimensions that has
/// events in range, ordered by metric then tag values; tags hold group and those dimensions.
#[test]
fn drilldown_series_per_combination() {
    let server = TestServer::start();
    let token = server.acme_token();
    let at = |id: &str, channel: &str, region: &str, started: &str| {
        with(
            miniapp_end(id, started, started, "Menu"),
            json!({"channel": channel, "region": region}),
        )
    };
    server.ingest_ok(
        &token,
        &[
            at("a", "omIVR", "us1", "10:00"),
            at("b", "omIVR", "us1", "10:07"),
            at("c", "chat", "us1", "10:01"),
            at("d", "chat", "eu1", "10:11"),
            at("e", "web", "eu1", "09:00"), // before the range: no series
        ],
    );
    let body = |filters: Value, drilldown: bool| {
        json!({
            "metrics": ["miniapps_invocations", "miniapps_invocations_successful"], "filters": filters,
            "drilldown": drilldown, "group": "acme", "downsampling": "five_min",
            "start": "2024/03/27 10:00:00", "end": "2024/03/27 10:15:00",
        })
    };
    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        body(json!({"channel": [], "region": []}), true),
    );
    check(
        &a.sparse(),
        expect![[r#"
            miniapps_invocations {channel=chat,group=acme,region=eu1}: 03-27 10:10=1
            miniapps_invocations {channel=chat,group=acme,region=us1}: 03-27 10:00=1
            miniapps_invocations {channel=omIVR,group=acme,region=us1}: 03-27 10:00=1 03-27 10:05=1
            miniapps_invocations_successful {channel=chat,group=acme,region=eu1}: 03-27 10:10=1
            miniapps_invocations_successful {channel=chat,group=acme,region=us1}: 03-27 10:00=1
            miniapps_invocations_successful {channel=omIVR,group=acme,region=us1}: 03-27 10:00=1 03-27 10:05=1
        "#]],
    );
    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        body(json!({"channel": ["omIVR", "chat", "web"]}), true),
    );
    check(
        &a.sparse(),
        expect![[r#"
            miniapps_invocations {channel=chat,group=acme}: 03-27 10:00=1 03-27 10:10=1
            miniapps_invocations {channel=omIVR,group=acme}: 03-27 10:00=1 03-27 10:05=1
            miniapps_invocations_successful {channel=chat,group=acme}: 03-27 10:00=1 03-27 10:10=1
            miniapps_invocations_successful {channel=omIVR,group=acme}: 03-27 10:00=1 03-27 10:05=1
        "#]],
    );
    // The same filters without drilldown: one series per metric, no multi-valued tag.
    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        body(json!({"channel": ["omIVR", "chat", "web"]}), false),
    );
    check(
        &a.sparse(),
        expect![[r#"
            miniapps_invocations {group=acme}: 03-27 10:00=2 03-27 10:05=1 03-27 10:10=1
            miniapps_invocations_successful {group=acme}: 03-27 10:00=2 03-27 10:05=1 03-27 10:10=1
        "#]],
    );
    // No combination has events: no series.
    let a = server.query_ok(
        &token,
        RT_MINIAPPS_V3,
        body(json!({"channel": ["sms"]}), true),
    );
    assert!(a.series.is_empty(), "{:?}", a.series);
    // Batch drilldown over a batch dimension name (language = locale).
    let b = json!({
        "metrics": ["totalinvocations"], "filters": {"language": [], "channel": []}, "drilldown": true,
        "group": "acme", "downsampling": "day", "start": "2024/03/27 00:00:00", "end": "2024/03/28 00:00:00",
    });
    let a = server.query_ok(&token, BATCH_MINIAPPS_V3, b);
    check(
        &a.sparse(),
        expect![[r#"
            totalinvocations {channel=chat,group=acme,language=en-US}: 03-27 00:00=2
            totalinvocations {channel=omIVR,group=acme,language=en-US}: 03-27 00:00=2
            totalinvocations {channel=web,group=acme,language=en-US}: 03-27 00:00=1
        "#]],
    );
}

/// drilldown false: a filter key with exactly one value appears in tags (test_flag as
/// "true"/"false"); filters select what is counted.
#[test]
fn single_value_filters_appear_in_tags() {
    let server = TestServer::start();
    let token = server.acme_token();
    let m = |id: &str, extra: Value| with(miniapp_end(id, "10:00", "10:01", "Menu"), extra);
    server.ingest_ok(
        &token,
        &[
            m("a", json!({})),
            m("b", json!({"test": true})),
            m("c", json!({"region": "eu1"})),
            m("d", json!({"channel": "chat"})),
            m("e", json!({"test": false, "locale": "el-GR"})),
        ],
    );
    let body = |filters: Value| {
        json!({
            "metrics": ["miniapps_invocations"], "filters": filters, "group": "acme",
            "downsampling": "five_min", "start": "2024/03/27 10:00:00", "end": "2024/03/27 10:05:00",
        })
    };
    let cases = [
        json!({"channel": ["omIVR"], "test_flag": false, "region": ["us1", "eu1"], "locale": []}),
        json!({"test_flag": true}),
        json!({"locale": ["el-GR"]}),
        json!({"region": ["eu1"], "channel": ["omIVR"]}),
        json!({"miniapp_name": ["Nope"]}),
    ];
    let mut out = String::new();
    for f in cases {
        out.push_str(&format!(
            "{f}\n  {}",
            server
                .query_ok(&token, RT_MINIAPPS_V3, body(f.clone()))
                .sparse()
        ));
    }
    check(
        &out,
        expect![[r#"
        {"channel":["omIVR"],"locale":[],"region":["us1","eu1"],"test_flag":false}
          miniapps_invocations {channel=omIVR,group=acme,test_flag=false}: 03-27 10:00=3
        {"test_flag":true}
          miniapps_invocations {group=acme,test_flag=true}: 03-27 10:00=1
        {"locale":["el-GR"]}
          miniapps_invocations {group=acme,locale=el-GR}: 03-27 10:00=1
        {"channel":["omIVR"],"region":["eu1"]}
          miniapps_invocations {channel=omIVR,group=acme,region=eu1}: 03-27 10:00=1
        {"miniapp_name":["Nope"]}
          miniapps_invocations {group=acme,miniapp_name=Nope}: -
    "#]],
    );
}

/// Buckets are aligned in the query's time zone: Asia/Kolkata is UTC+05:30.
#[test]
fn timezone_asia_kolkata() {
    let server = TestServer::start();
    let token = server.acme_token();
    let d = |id: &str, at: &str| {
        with(
            dialog_end(id, "10:00", "10:00", "transferred"),
            json!({"started_at": at, "time": at}),
        )
    };
    server.ingest_ok(
        &token,
        &[
            d("late-26th-ist", "2024-03-26T18:00:00Z"), // 23:30 IST on the 26th
            d("early-27th-ist", "2024-03-26T19:00:00Z"), // 00:30 IST on the 27th
            d("morning", "2024-03-27T10:01:00Z"),       // 15:31 IST
        ],
    );
    let body = |tz: &str, start: &str, end: &str, ds: &str| {
        json!({
            "metrics": ["dialogs"], "filters": {}, "group": "acme", "downsampling": ds,
            "start": start, "end": end, "timezone": tz,
        })
    };
    let a = server.query_ok(
        &token,
        BATCH_DIALOGS_V3,
        body(
            "Asia/Kolkata",
            "2024/03/26 00:00:00",
            "2024/03/28 00:00:00",
            "day",
        ),
    );
    check(
        &a.sparse(),
        expect![[r#"
        dialogs {group=acme}: 03-26 00:00=1 03-27 00:00=2
    "#]],
    );
    assert_eq!(
        a.labels(),
        ["2024-03-26 00:00:00.0", "2024-03-27 00:00:00.0"],
        "the 28th is at `end`, excluded"
    );
    let a = server.query_ok(
        &token,
        BATCH_DIALOGS_V3,
        body("UTC", "2024/03/26 00:00:00", "2024/03/28 00:00:00", "day"),
    );
    check(
        &a.sparse(),
        expect![[r#"
        dialogs {group=acme}: 03-26 00:00=2 03-27 00:00=1
    "#]],
    );
    // Real-time five-minute buckets on the Kolkata clock: 10:01Z is in 15:30 IST.
    let mut b = body(
        "Asia/Kolkata",
        "2024/03/27 15:20:00",
        "2024/03/27 15:45:00",
        "five_min",
    );
    b["metrics"] = json!(["dialogs_completed"]);
    let a = server.query_ok(&token, RT_DIALOGS_V3, b);
    check(
        &a.sparse(),
        expect![[r#"
        dialogs_completed {group=acme}: 03-27 15:30=1
    "#]],
    );
    assert_eq!(a.labels().len(), 5);
    // A 45-minute offset: Asia/Kathmandu is UTC+05:45, so 10:01Z is 15:46 local, in 15:45.
    let mut b = body(
        "Asia/Kathmandu",
        "2024/03/27 15:40:00",
        "2024/03/27 16:00:00",
        "five_min",
    );
    b["metrics"] = json!(["dialogs_completed"]);
    let a = server.query_ok(&token, RT_DIALOGS_V3, b);
    check(
        &a.sparse(),
        expect![[r#"
        dialogs_completed {group=acme}: 03-27 15:45=1
    "#]],
    );
    assert_eq!(
        a.labels().first().map(String::as_str),
        Some("2024-03-27 15:40:00.0")
    );
}

/// Bucket ranges: `[floor(start), end)`, nothing after the current time (the server clock is at
/// 12:00 and a bit), week on Monday, month on the 1st, year on January 1.
#[test]
fn bucket_ranges_and_calendar_alignment() {
    let server = TestServer::start();
    let token = server.acme_token();
    server.ingest_ok(
        &token,
        &[
            dialog_end("d1", "10:01", "10:02", "other"),
            dialog_end("d2", "11:59", "11:59", "other"),
        ],
    );
    let rt = |start: &str, end: &str, ds: &str| json!({"metrics": ["dialogs_completed"], "filters": {}, "group": "acme", "downsampling": ds, "start": start, "end": end});
    let batch = |start: &str, end: &str, ds: &str| json!({"metrics": ["dialogs"], "filters": {}, "group": "acme", "downsampling": ds, "start": start, "end": end});
    let cases = [
        (
            "floor(start), millis",
            RT_DIALOGS_V3,
            rt("2024/03/27 10:03:00.500", "2024/03/27 10:12:00", "five_min"),
        ),
        (
            "end exclusive",
            RT_DIALOGS_V3,
            rt("2024/03/27 10:00:00", "2024/03/27 10:10:00", "five_min"),
        ),
        (
            "not after now (5 min)",
            RT_DIALOGS_V3,
            rt("2024/03/27 11:50:00", "2024/03/27 13:00:00", "five_min"),
        ),
        (
            "not after now (hour)",
            RT_DIALOGS_V3,
            rt("2024/03/27 09:30:00", "2024/03/27 14:00:00", "hour"),
        ),
        (
            "batch hour",
            BATCH_DIALOGS_V3,
            batch("2024/03/27 09:00:00", "2024/03/27 18:00:00", "hour"),
        ),
        (
            "week on Monday",
            BATCH_DIALOGS_V3,
            batch("2024/03/01 00:00:00", "2024/03/28 00:00:00", "week"),
        ),
        (
            "month on the 1st",
            BATCH_DIALOGS_V3,
            batch("2024/01/15 00:00:00", "2024/04/01 00:00:00", "month"),
        ),
        (
            "year on January 1",
            BATCH_DIALOGS_V3,
            batch("2023/06/01 00:00:00", "2024/12/31 00:00:00", "year"),
        ),
    ];
    let mut out = String::new();
    for (name, path, body) in cases {
        let a = server.query_ok(&token, path, body);
        out.push_str(&format!(
            "{name}: [{}]\n  {}",
            a.labels().join(", "),
            a.sparse()
        ));
    }
    check(
        &out,
        expect![[r#"
        floor(start), millis: [2024-03-27 10:00:00.0, 2024-03-27 10:05:00.0, 2024-03-27 10:10:00.0]
          dialogs_completed {group=acme}: 03-27 10:00=1
        end exclusive: [2024-03-27 10:00:00.0, 2024-03-27 10:05:00.0]
          dialogs_completed {group=acme}: 03-27 10:00=1
        not after now (5 min): [2024-03-27 11:50:00.0, 2024-03-27 11:55:00.0, 2024-03-27 12:00:00.0]
          dialogs_completed {group=acme}: 03-27 11:55=1
        not after now (hour): [2024-03-27 09:00:00.0, 2024-03-27 10:00:00.0, 2024-03-27 11:00:00.0, 2024-03-27 12:00:00.0]
          dialogs_completed {group=acme}: 03-27 10:00=1 03-27 11:00=1
        batch hour: [2024-03-27 09:00:00.0, 2024-03-27 10:00:00.0, 2024-03-27 11:00:00.0, 2024-03-27 12:00:00.0]
          dialogs {group=acme}: 03-27 10:00=1 03-27 11:00=1
        week on Monday: [2024-02-26 00:00:00.0, 2024-03-04 00:00:00.0, 2024-03-11 00:00:00.0, 2024-03-18 00:00:00.0, 2024-03-25 00:00:00.0]
          dialogs {group=acme}: 03-25 00:00=2
        month on the 1st: [2024-01-01 00:00:00.0, 2024-02-01 00:00:00.0, 2024-03-01 00:00:00.0]
          dialogs {group=acme}: 03-01 00:00=2
        year on January 1: [2023-01-01 00:00:00.0, 2024-01-01 00:00:00.0]
          dialogs {group=acme}: 01-01 00:00=2
    "#]],
    );
}

/// DST fall-back in Europe/Athens (2023-10-29 04:00 EEST -> 03:00 EET): the two 03:00 hours
/// are summed under one label, and that day has 25 hours.
#[test]
fn dst_fall_back_sums_under_one_label() {
    let server = TestServer::start();
    let token = server.acme_token();
    let d = |id: &str, at: &str| {
        with(
            dialog_end(id, "10:00", "10:00", "other"),
            json!({"started_at": at, "time": at}),
        )
    };
    server.ingest_ok(
        &token,
        &[
            d("eest-0330", "2023-10-29T00:30:00Z"), // 03:30 EEST
            d("eet-0330", "2023-10-29T01:30:00Z"),  // 03:30 EET
            d("eet-0430", "2023-10-29T02:30:00Z"),  // 04:30 EET
            d("next-day", "2023-10-29T22:30:00Z"),  // 00:30 EET on the 30th
        ],
    );
    let body = |start: &str, end: &str, ds: &str| {
        json!({
            "metrics": ["dialogs"], "filters": {}, "group": "acme", "downsampling": ds,
            "start": start, "end": end, "timezone": "Europe/Athens",
        })
    };
    let hours = server.query_ok(
        &token,
        BATCH_DIALOGS_V3,
        body("2023/10/29 02:00:00", "2023/10/29 06:00:00", "hour"),
    );
    let days = server.query_ok(
        &token,
        BATCH_DIALOGS_V3,
        body("2023/10/28 00:00:00", "2023/10/31 00:00:00", "day"),
    );
    check(
        &format!(
            "[{}]\n{}[{}]\n{}",
            hours.labels().join(", "),
            hours.sparse(),
            days.labels().join(", "),
            days.sparse()
        ),
        expect![[r#"
            [2023-10-29 02:00:00.0, 2023-10-29 03:00:00.0, 2023-10-29 04:00:00.0, 2023-10-29 05:00:00.0]
            dialogs {group=acme}: 10-29 03:00=2 10-29 04:00=1
            [2023-10-28 00:00:00.0, 2023-10-29 00:00:00.0, 2023-10-30 00:00:00.0]
            dialogs {group=acme}: 10-29 00:00=3 10-30 00:00=1
        "#]],
    );
}

/// docs/api.md section 5.4: at most 10,000 series in one answer.
#[test]
fn answer_series_limit() {
    let server = TestServer::start();
    let token = server.acme_token();
    let events: Vec<Value> = (0..10_000)
        .map(|i| miniapp_end(&format!("n{i}"), "10:00", "10:01", &format!("app{i:05}")))
        .collect();
    server.ingest_ok(&token, &events);
    let body = json!({
        "metrics": ["miniapps_invocations"], "filters": {"miniapp_name": []}, "drilldown": true, "group": "acme",
        "downsampling": "hour", "start": "2024/03/27 10:00:00", "end": "2024/03/27 11:00:00",
    });
    let a = server.query_ok(&token, RT_MINIAPPS_V3, body.clone());
    assert_eq!(a.series.len(), 10_000);
    assert_eq!(a.series[0].tags["miniapp_name"], "app00000");
    assert_eq!(a.series[9_999].tags["miniapp_name"], "app09999");
    server.ingest_ok(
        &token,
        &[miniapp_end("n10000", "10:00", "10:01", "app10000")],
    );
    let r = server.post_json(RT_MINIAPPS_V3, Some(&token), &body);
    assert_error(&r, 400);
    // Two metrics over 5,001 combinations is also over the limit.
    let mut two = body;
    two["metrics"] = json!(["miniapps_invocations", "miniapps_no_inputs"]);
    two["filters"] = json!({"miniapp_name": [], "locale": []});
    assert_error(&server.post_json(RT_MINIAPPS_V3, Some(&token), &two), 400);
}

// ---------------------------------------------------------------------------------- errors

/// Every error status of docs/api.md section 8 that needs no auth details; every error body is
/// `{"message": non-empty}`; the server survives all of them.
#[test]
fn error_statuses() {
    let server = TestServer::start();
    let token = server.acme_token();
    let auth = format!("Bearer {token}");
    let base = || q(&["dialogs_completed"], "10:00", "11:00", "five_min");
    let edit = |patch: Value| with(base(), patch);
    // (name, method, path, body, status)
    let cases: Vec<(&str, &str, &str, Option<String>, u16)> = vec![
        (
            "bad metric name",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"metrics": ["dialogs_exploded"]})).to_string()),
            400,
        ),
        (
            "metric of another endpoint",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"metrics": ["session.initiated"]})).to_string()),
            400,
        ),
        (
            "empty metrics",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"metrics": []})).to_string()),
            400,
        ),
        (
            "unknown filter key",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"filters": {"colour": ["red"]}})).to_string()),
            400,
        ),
        (
            "filter key of another endpoint",
            "POST",
            RT_SESSIONS_V3,
            Some(
                with(
                    q(&["session.initiated"], "10:00", "11:00", "five_min"),
                    json!({"filters": {"flow_name": []}}),
                )
                .to_string(),
            ),
            400,
        ),
        (
            "test_flag not a boolean",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"filters": {"test_flag": ["true"]}})).to_string()),
            400,
        ),
        (
            "bad date format",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"start": "2024-03-27T10:00:00Z"})).to_string()),
            400,
        ),
        (
            "empty group",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"group": ""})).to_string()),
            400,
        ),
        (
            "wildcard group (`*` means every group only in grants)",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"group": "*"})).to_string()),
            400,
        ),
        (
            "impossible date",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"start": "2024/02/30 10:00:00"})).to_string()),
            400,
        ),
        (
            "end before start",
            "POST",
            RT_DIALOGS_V3,
            Some(
                edit(json!({"start": "2024/03/27 11:00:00", "end": "2024/03/27 10:00:00"}))
                    .to_string(),
            ),
            400,
        ),
        (
            "end equals start",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"end": "2024/03/27 10:00:00"})).to_string()),
            400,
        ),
        (
            "RT start older than 48 h",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"start": "2024/03/25 10:00:00"})).to_string()),
            400,
        ),
        (
            "batch start older than 720 days",
            "POST",
            BATCH_DIALOGS_V3,
            Some(
                with(
                    q(&["dialogs"], "10:00", "11:00", "hour"),
                    json!({"start": "2022/03/01 00:00:00"}),
                )
                .to_string(),
            ),
            400,
        ),
        (
            "bad downsampling",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"downsampling": "minute"})).to_string()),
            400,
        ),
        (
            "batch downsampling on RT",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"downsampling": "day"})).to_string()),
            400,
        ),
        (
            "RT downsampling on batch",
            "POST",
            BATCH_DIALOGS_V3,
            Some(with(q(&["dialogs"], "10:00", "11:00", "five_min"), json!({})).to_string()),
            400,
        ),
        (
            "bad timezone",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"timezone": "Mars/Olympus_Mons"})).to_string()),
            400,
        ),
        (
            "missing group",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"group": null})).to_string()),
            400,
        ),
        (
            "metrics not an array",
            "POST",
            RT_DIALOGS_V3,
            Some(edit(json!({"metrics": "dialogs_completed"})).to_string()),
            400,
        ),
        (
            "malformed JSON",
            "POST",
            RT_DIALOGS_V3,
            Some("{\"metrics\": [".to_string()),
            400,
        ),
        (
            "JSON not an object",
            "POST",
            RT_DIALOGS_V3,
            Some("[]".to_string()),
            400,
        ),
        (
            "empty body",
            "POST",
            RT_DIALOGS_V3,
            Some(String::new()),
            400,
        ),
        (
            "unknown path",
            "POST",
            "/metrics-api/v3/realtime/metrics/calls",
            Some(base().to_string()),
            404,
        ),
        (
            "unknown version",
            "POST",
            "/metrics-api/v4/realtime/metrics/dialogs",
            Some(base().to_string()),
            404,
        ),
        ("unknown path GET", "GET", "/nothing/here", None, 404),
        ("GET ingest", "GET", "/ingest/v1/events", None, 405),
    ];
    let mut out = String::new();
    for (name, method, path, body, status) in &cases {
        let r = server.request(
            method,
            path,
            &[("Authorization", &auth), ("Content-Type", JSON)],
            body.as_deref().map(str::as_bytes),
        );
        let msg = assert_error(&r, *status);
        out.push_str(&format!("{name}: {status} {msg}\n"));
    }
    check(
        &out,
        expect![[r#"
            bad metric name: 400 unknown metric `dialogs_exploded` for /metrics-api/v3/realtime/metrics/dialogs; this endpoint serves: root_agent_requests, root_system_errors, root_critical_error, root_no_inputs, root_no_matches, dialogs_completed, dialogs_transferred, dialogs_terminated
            metric of another endpoint: 400 unknown metric `session.initiated` for /metrics-api/v3/realtime/metrics/dialogs; this endpoint serves: root_agent_requests, root_system_errors, root_critical_error, root_no_inputs, root_no_matches, dialogs_completed, dialogs_transferred, dialogs_terminated
            empty metrics: 400 `metrics` must be a non-empty array of metric names; this endpoint serves: root_agent_requests, root_system_errors, root_critical_error, root_no_inputs, root_no_matches, dialogs_completed, dialogs_transferred, dialogs_terminated
            unknown filter key: 400 filter `colour` is not supported by /metrics-api/v3/realtime/metrics/dialogs; supported filters: flow_name, locale, channel, test_flag, region
            filter key of another endpoint: 400 filter `flow_name` is not supported by /metrics-api/v3/realtime/metrics/sessions; supported filters: channel, test_flag, region
            test_flag not a boolean: 400 filter `test_flag` takes a boolean, e.g. "test_flag": false
            bad date format: 400 `start` `2024-03-27T10:00:00Z` is not a valid date of the form yyyy/MM/dd HH:mm:ss or yyyy/MM/dd HH:mm:ss.SSS (years 0001 to 9998), e.g. 2024/03/27 12:00:00
            empty group: 400 `group` must not be empty
            wildcard group (`*` means every group only in grants): 400 `group` must not be `*`: in grants `*` means every group; name the group differently
            impossible date: 400 `start` `2024/02/30 10:00:00` is not a valid date of the form yyyy/MM/dd HH:mm:ss or yyyy/MM/dd HH:mm:ss.SSS (years 0001 to 9998), e.g. 2024/03/27 12:00:00
            end before start: 400 `end` must be after `start`; swap them or widen the range
            end equals start: 400 `end` must be after `start`; swap them or widen the range
            RT start older than 48 h: 400 `start` is too far in the past: real-time metrics are kept for 48 hours; use the batch endpoints for older data; move `start` later
            batch start older than 720 days: 400 `start` is too far in the past: batch metrics are kept for 720 days; move `start` later
            bad downsampling: 400 `downsampling` `minute` is not valid for /metrics-api/v3/realtime/metrics/dialogs; use one of five_min, hour
            batch downsampling on RT: 400 `downsampling` `day` is not valid for /metrics-api/v3/realtime/metrics/dialogs; use one of five_min, hour
            RT downsampling on batch: 400 `downsampling` `five_min` is not valid for /metrics-api/v3/batch/metrics/dialogs; use one of hour, day, week, month, year
            bad timezone: 400 `timezone` `Mars/Olympus_Mons` is not an IANA time zone name; use one like UTC, Europe/Athens or Asia/Kolkata
            missing group: 400 `group` is required: name the OCP group (organization) whose metrics you want
            metrics not an array: 400 `metrics` must be an array of strings
            malformed JSON: 400 the body is not valid JSON (EOF while parsing a list at line 1 column 13); send a JSON object like {"metrics": [...], "filters": {}, ...}
            JSON not an object: 400 the body must be a JSON object with the fields metrics, filters, start, end, group, downsampling
            empty body: 400 the body is not valid JSON (EOF while parsing a value at line 1 column 0); send a JSON object like {"metrics": [...], "filters": {}, ...}
            unknown path: 404 no such endpoint; see the API documentation for the paths under /metrics-api/v3 and /ingest/v1
            unknown version: 404 no such endpoint; see the API documentation for the paths under /metrics-api/v3 and /ingest/v1
            unknown path GET: 404 no such endpoint; see the API documentation for the paths under /metrics-api/v3 and /ingest/v1
            GET ingest: 405 this method is not allowed here; query endpoints take POST with a JSON body
        "#]],
    );
    // 405 for GET on every query endpoint, with or without a token.
    for (path, _) in ENDPOINTS {
        assert_error(
            &server.request("GET", path, &[("Authorization", &auth)], None),
            405,
        );
        assert_error(&server.request("GET", path, &[], None), 405);
    }
    // Nothing of that hurt the server.
    assert_eq!(server.request("GET", "/healthz", &[], None).status, 200);
    let a = server.query_ok(&token, RT_DIALOGS_V3, base());
    assert_eq!(a.labels().len(), 12);
}

/// One raw HTTP/1.1 connection, for what a pooling client sees of keep-alive.
struct RawConnection(std::net::TcpStream);

/// One answer read off a [`RawConnection`]: status, lower-case headers, body.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RawConnection {
    fn open(server: &TestServer) -> RawConnection {
        let addr = server.base_url().trim_start_matches("http://");
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        RawConnection(s)
    }

    /// Sends one request and reads exactly its answer (the server sends `Content-Length`).
    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> RawAnswer {
        use std::io::{Read, Write};
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.0.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = self.0.read(&mut byte).unwrap();
            assert_eq!(
                n,
                1,
                "the connection closed inside an answer head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()["HTTP/1.1 ".len()..][..3]
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .unwrap_or_else(|| panic!("no content-length: {head}"))
            .1
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).unwrap();
        RawAnswer {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    /// Whether the server closed its side (a read sees the end of the stream).
    fn closed_by_server(&mut self) -> bool {
        use std::io::Read;
        // A reset is a close too: the server closed with part of the request body unread.
        match self.0.read(&mut [0u8; 1]) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// Keep-alive after an error answer. An error answered before the body is read (401 on
/// ingest, 401 on an admin DELETE with a body) cannot leave the connection usable, so it says
/// `Connection: close` and closes: a pooling client then opens a new one instead of failing on
/// a dead socket. A 400 is answered after the body was read, so it keeps the connection, and
/// the next requests on it are served.
#[test]
fn connection_reusable_after_error_answer() {
    let server = TestServer::start();
    let body = ndjson(
        &(0..200)
            .map(|i| miniapp_end(&format!("k{i}"), "10:00", "10:01", "Menu"))
            .collect::<Vec<_>>(),
    );
    for (method, path) in [
        ("POST", "/ingest/v1/events"),
        ("DELETE", "/admin/v1/tokens/abc"),
    ] {
        let mut c = RawConnection::open(&server);
        let a = c.exchange(method, path, &[("Content-Type", NDJSON)], &body);
        assert_eq!(a.status, 401, "{method} {path}: {}", a.body);
        assert_eq!(a.header("connection"), Some("close"), "{method} {path}");
        assert!(
            c.closed_by_server(),
            "{method} {path}: still open after `Connection: close`"
        );
    }

    let token = server.acme_token();
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", JSON)];
    let query = q(&["dialogs_completed"], "10:00", "11:00", "five_min").to_string();
    let mut c = RawConnection::open(&server);
    for round in 0..2 {
        let bad = c.exchange("POST", RT_DIALOGS_V3, &headers, "{\"metrics\": [");
        assert_eq!(bad.status, 400, "round {round}: {}", bad.body);
        assert_eq!(
            bad.header("connection"),
            None,
            "round {round}: a 400 must keep the connection"
        );
        let good = c.exchange("POST", RT_DIALOGS_V3, &headers, &query);
        assert_eq!(good.status, 200, "round {round}: {}", good.body);
        assert_eq!(
            Answer::parse(&good.body).labels().len(),
            12,
            "round {round}"
        );
    }
    assert_eq!(c.exchange("GET", "/healthz", &[], "").status, 200);
}
