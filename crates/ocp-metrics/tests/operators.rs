//! The operator endpoints speak their tools' formats, checked by the tools themselves:
//! `GET /metrics` passes `promtool check metrics` (Debian's `prometheus` package; `.ci/run`
//! installs it), with every counter family present after real traffic.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use support::*;

/// Runs `promtool check metrics` on `exposition` and returns what it printed; panics when it
/// is not installed, since a skipped check is one that cannot fail.
fn promtool_check(exposition: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is needed for this test ({e}): apt-get install -y prometheus")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn metrics_pass_promtool_after_real_traffic() {
    let server = TestServer::start();
    let token = server.acme_token();
    server.ingest_ok(&token, &[session_end("s1", "11:40", "11:45")]);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = server.request("GET", "/metrics", &[("Authorization", &auth)], None);
    assert_eq!(r.status, 200, "{}", r.text);
    for family in [
        "ocp_metrics_ingest_events_accepted_total 1",
        "ocp_metrics_commits_total",
        "ocp_metrics_live_streams_open 0",
        "ocp_metrics_auth_failures_total 0",
    ] {
        assert!(r.text.contains(family), "missing {family}:\n{}", r.text);
    }
    let (ok, said) = promtool_check(&r.text);
    assert!(ok, "promtool check metrics failed:\n{said}");
    assert_eq!(said.trim(), "", "promtool has remarks:\n{said}");
}

#[test]
fn promtool_rejects_a_broken_exposition() {
    // The check above can fail: promtool refuses what a careless change could produce.
    let (ok, said) = promtool_check("# TYPE ocp_metrics_x counter\nocp_metrics_x{ 1\n");
    assert!(!ok, "promtool accepted a broken line: {said}");
}

#[test]
fn json_logs_have_one_object_per_line_with_request_ids_and_no_secrets() {
    let server = TestServer::start_with(Options::args(&["--log-format", "json"]));
    let token = server.acme_token();
    let q = q(&["session.initiated"], "11:00", "12:00", "five_min");
    let r = server.request(
        "POST",
        "/metrics-api/v3/realtime/metrics/sessions",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        Some(q.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.headers.get("x-request-id").expect("X-Request-Id").clone();
    let log = server.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"));
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "POST");
    assert_eq!(access["path"], "/metrics-api/v3/realtime/metrics/sessions");
    assert!(access["latency_ms"].is_f64(), "{access}");
    assert!(!log.contains(&token), "a token was logged");
    assert!(!log.contains(ADMIN_TOKEN), "the admin token was logged");
}

#[test]
fn every_serve_flag_can_come_from_an_ocp_metrics_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_ocp-metrics"))
        .args(["serve", "--help"])
        .env("OCP_METRICS_CONNECTIONS_MAX", "7")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let flags: Vec<&str> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("--") && !l.starts_with("--help"))
        .collect();
    assert!(flags.len() >= 24, "too few flags found in:\n{help}");
    // clap prints each flag's variable in the flag's help paragraph; count them.
    let with_env = help.matches("[env: OCP_METRICS_").count();
    assert_eq!(
        with_env,
        flags.len(),
        "a flag without a variable in:\n{help}"
    );
    assert!(
        help.contains("[env: OCP_METRICS_CONNECTIONS_MAX=7]"),
        "the variable's value is read:\n{help}"
    );
}

#[test]
fn clickhouse_without_nats_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ocp-metrics"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--clickhouse-url",
            "http://127.0.0.1:8123",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("OCP_METRICS_NATS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--clickhouse-url needs --nats"),
        "the refusal says why:\n{err}"
    );
}
